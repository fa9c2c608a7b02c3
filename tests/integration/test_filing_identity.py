"""One file on SOURCE storage is filed once: by path, and by what it is on disk."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import RawDataFile
from ccat_hpc.db.session import transaction
from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.pipeline.source_check import as_signed64
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import table_counts
from tests.integration.test_concurrency import file_at_once

SPEC = SyntheticObservation("PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 3, 100)
LOCATION = SPEC.location


def observe(data_root: Path) -> dict[str, Any]:
    return write_observation(SPEC, data_root / LOCATION)


def another_execution(manifest: dict[str, Any]) -> dict[str, Any]:
    """The same files, claimed by a second execution (a copy-paste mistake at the instrument)."""
    second = {**manifest, "executed_obs_unit": dict(manifest["executed_obs_unit"])}
    second["executed_obs_unit"]["id"] = str(uuid.uuid4())
    return second


def file_it(factory: sessionmaker[Session], manifest: dict[str, Any], folder: Path, name: str):  # type: ignore[no-untyped-def]
    return file_path(factory, drop_manifest(manifest, folder, name))


def test_second_execution_listing_the_same_path_is_a_conflict(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    first = observe(data_root)
    assert file_it(loaded_factory, first, tmp_path, "a").status == "filed"
    before = table_counts(loaded_factory, "executed_obs_unit", "raw_data_file")
    outcome = file_it(loaded_factory, another_execution(first), tmp_path, "b")
    assert outcome.status == "rejected"
    holder = first["executed_obs_unit"]["id"]
    assert f"{first['files'][0]['path']}: already filed for execution {holder}" in outcome.message
    assert table_counts(loaded_factory, "executed_obs_unit", "raw_data_file") == before
    assert file_it(loaded_factory, first, tmp_path, "c").status == "unchanged"


def test_database_refuses_a_second_file_row_at_the_same_path(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    first = observe(data_root)
    assert file_it(loaded_factory, first, tmp_path, "a").status == "filed"
    second = another_execution(first)
    second["files"] = first["files"][:1]
    second_id = uuid.UUID(second["executed_obs_unit"]["id"])
    with loaded_factory() as session:  # bypasses every check of filing: only the schema stands
        original = session.scalars(select(RawDataFile)).first()
        assert original is not None
        execution = original.executed_obs_unit
        session.add(
            type(execution)(
                id=second_id,
                obs_unit_id=execution.obs_unit_id,
                start_time=execution.start_time,
                end_time=execution.end_time,
                status=execution.status,
            )
        )
        session.flush()
        session.add(_row_like(original, second_id, inode_offset=12345))
        with pytest.raises(IntegrityError):
            session.flush()


def test_database_refuses_the_same_inode_under_another_path(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    assert file_it(loaded_factory, observe(data_root), tmp_path, "a").status == "filed"
    with loaded_factory() as session:
        original = session.scalars(select(RawDataFile)).first()
        assert original is not None and original.source_inode is not None
        twin = _row_like(original, original.executed_obs_unit_id, inode_offset=0)
        twin.relative_path = original.relative_path + ".twin"
        session.add(twin)
        with pytest.raises(IntegrityError):
            session.flush()


def _row_like(original: RawDataFile, execution_id: uuid.UUID, inode_offset: int) -> RawDataFile:
    return RawDataFile(
        name=original.name,
        relative_path=original.relative_path,
        source_location_id=original.source_location_id,
        source_device=original.source_device,
        source_inode=(original.source_inode or 0) + inode_offset,
        size=original.size,
        executed_obs_unit_id=execution_id,
        instrument_module_id=original.instrument_module_id,
    )


def test_filed_rows_record_the_files_device_and_inode(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    manifest = observe(data_root)
    assert file_it(loaded_factory, manifest, tmp_path, "a").status == "filed"
    with transaction(loaded_factory) as session:
        rows = {f.relative_path: f for f in session.scalars(select(RawDataFile))}
    for entry in manifest["files"]:
        info = os.stat(data_root / LOCATION / entry["path"])
        row = rows[entry["path"]]
        assert (row.source_device, row.source_inode) == (
            as_signed64(info.st_dev),
            as_signed64(info.st_ino),
        )


def test_symbolic_link_to_a_filed_file_is_refused(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    first = observe(data_root)
    assert file_it(loaded_factory, first, tmp_path, "a").status == "filed"
    root = data_root / LOCATION
    (root / "alias.g3").symlink_to(root / first["files"][1]["path"])
    second = another_execution(first)
    second["files"] = [{"path": "alias.g3", "size": 100}]
    outcome = file_it(loaded_factory, second, tmp_path, "b")
    assert outcome.status == "rejected"
    assert (
        f"alias.g3: is the same file on disk as {first['files'][1]['path']}, already filed "
        f"for execution {first['executed_obs_unit']['id']}"
    ) in outcome.message


def test_hard_link_of_a_file_outside_the_root_is_refused(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    outside = data_root / "outside.bin"
    outside.write_bytes(b"z" * 100)
    manifest = observe(data_root)
    os.link(outside, data_root / LOCATION / "inside.g3")
    manifest["files"].append({"path": "inside.g3", "size": 100})
    outcome = file_it(loaded_factory, manifest, tmp_path, "a")
    assert outcome.status == "rejected"
    assert "inside.g3: has 2 names on disk (hard links)" in outcome.message
    assert table_counts(loaded_factory, "raw_data_file")["raw_data_file"] == 0


def test_two_entries_of_one_manifest_naming_the_same_file_are_refused(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    manifest = observe(data_root)
    root = data_root / LOCATION
    (root / "again.g3").symlink_to(root / manifest["files"][0]["path"])
    manifest["files"].append({"path": "again.g3", "size": 100})
    outcome = file_it(loaded_factory, manifest, tmp_path, "a")
    assert outcome.status == "rejected"
    assert f"again.g3: is the same file on disk as files[0] {manifest['files'][0]['path']}" in (
        outcome.message
    )


def test_concurrent_filers_of_one_path_under_different_executions_file_it_once(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    first = observe(data_root)
    workers = 4
    manifests = [first] + [another_execution(first) for _ in range(workers - 1)]
    paths = [drop_manifest(m, tmp_path, f"m{i}") for i, m in enumerate(manifests)]
    outcomes = file_at_once(db_url, paths)
    assert sorted(status for status, _ in outcomes) == ["filed"] + ["rejected"] * (workers - 1)
    for status, message in outcomes:
        assert status == "filed" or "already filed for execution" in message, message
    counts = table_counts(loaded_factory, "executed_obs_unit", "raw_data_file")
    assert counts == {"executed_obs_unit": 1, "raw_data_file": 3}


def test_a_reused_inode_of_a_deleted_filed_file_does_not_block_new_data(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    first = observe(data_root)
    assert file_it(loaded_factory, first, tmp_path, "a").status == "filed"
    root = data_root / LOCATION
    gone = root / first["files"][0]["path"]
    gone.unlink()  # deleted on SOURCE without ops-db knowing …
    new = root / "later/new.g3"
    new.parent.mkdir()
    new.write_bytes(b"n" * 100)
    info = os.stat(new)
    with transaction(loaded_factory) as session:  # … and the file system gave its inode away
        holder = session.scalars(
            select(RawDataFile).filter_by(relative_path=first["files"][0]["path"])
        ).one()
        holder.source_device, holder.source_inode = (
            as_signed64(info.st_dev),
            as_signed64(info.st_ino),
        )
    second = another_execution(first)
    second["files"] = [{"path": "later/new.g3", "size": 100}]
    outcome = file_it(loaded_factory, second, tmp_path, "b")
    assert outcome.status == "filed", outcome.message
    with loaded_factory() as session:
        stale = session.get(RawDataFile, holder.id)
        assert stale is not None and stale.source_device is None
        assert stale.source_inode == as_signed64(info.st_ino)  # kept for the checksum step


def test_a_filed_file_found_through_another_path_while_its_own_is_away_is_refused(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    """A folder link re-pointed for a moment must not let the same file be filed twice."""
    root = data_root / LOCATION
    (root / "real").mkdir()
    (root / "real/f1.g3").write_bytes(b"r" * 100)
    (root / "link").symlink_to("real", target_is_directory=True)
    first = observe(data_root)
    first["files"] = [{"path": "link/f1.g3", "size": 100}]
    assert file_it(loaded_factory, first, tmp_path, "a").status == "filed"
    (root / "elsewhere").mkdir()
    (root / "link").unlink()
    (root / "link").symlink_to("elsewhere", target_is_directory=True)  # the path goes away …
    second = another_execution(first)
    second["files"] = [{"path": "real/f1.g3", "size": 100}]  # … the same file, by its own path
    outcome = file_it(loaded_factory, second, tmp_path, "b")
    assert outcome.status == "rejected"
    assert "is the same file on disk as link/f1.g3, already filed" in outcome.message
