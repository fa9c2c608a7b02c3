"""Filing manifests into ops-db: all or nothing, idempotent, with clear rejections."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import (
    DataLocation,
    ExecutedObsUnit,
    FiledManifest,
    RawDataFile,
    RawDataFilePhysicalCopy,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import PhysicalCopyState, RawDataFileState
from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import table_counts

TABLES = (
    "executed_obs_unit",
    "raw_data_file",
    "physical_copy",
    "raw_data_file_physical_copy",
    "filed_manifest",
)
PRIMECAM = SyntheticObservation(
    "PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 5, 1000
)


def observe(data_root: Path, spec: SyntheticObservation = PRIMECAM, **kw: Any) -> dict[str, Any]:
    return write_observation(spec, data_root / spec.location, **kw)


def drop(manifest: dict[str, Any], folder: Path, name: str = "m") -> Path:
    return drop_manifest(manifest, folder, name)


def test_filing_creates_execution_files_and_source_copies(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    manifest = observe(data_root)
    manifest["weather"] = {"pwv_mm": 0.7}
    outcome = file_path(loaded_factory, drop(manifest, tmp_path))
    assert outcome.status == "filed", outcome.message
    with loaded_factory() as session:
        execution = session.get(ExecutedObsUnit, uuid.UUID(manifest["executed_obs_unit"]["id"]))
        assert execution is not None and execution.obs_unit.name == "ECDFS-deep-001"
        assert execution.extra_metadata["manifest"]["weather"] == {"pwv_mm": 0.7}
        files = session.scalars(select(RawDataFile).order_by(RawDataFile.relative_path)).all()
        assert [f.relative_path for f in files] == [e["path"] for e in manifest["files"]]
        assert [f.checksum for f in files] == [e["xxh3_128"] for e in manifest["files"]]
        assert all(f.state is RawDataFileState.FILED and f.size == 1000 for f in files)
        copies = session.scalars(select(RawDataFilePhysicalCopy)).all()
        assert len(copies) == 5
        assert {c.data_location.name for c in copies} == {"chile-source-primecam"}
        assert {c.state for c in copies} == {PhysicalCopyState.PRESENT}
        assert {c.raw_data_file_id for c in copies} == {f.id for f in files}


def test_identical_manifest_again_is_a_noop(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    manifest = observe(data_root)
    assert file_path(loaded_factory, drop(manifest, tmp_path, "a")).status == "filed"
    before = table_counts(loaded_factory, *TABLES)
    reordered = dict(reversed(list(manifest.items())))
    again = file_path(loaded_factory, drop(reordered, tmp_path, "b"))
    assert again.status == "unchanged", again.message
    assert table_counts(loaded_factory, *TABLES) == before


def test_reused_execution_id_with_other_content_is_a_conflict(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    manifest = observe(data_root)
    file_path(loaded_factory, drop(manifest, tmp_path, "a"))
    before = table_counts(loaded_factory, *TABLES)
    changed = json.loads(json.dumps(manifest))
    changed["files"] = changed["files"][:3]
    outcome = file_path(loaded_factory, drop(changed, tmp_path, "b"))
    assert outcome.status == "rejected"
    assert "already filed" in outcome.message and "different content" in outcome.message
    assert table_counts(loaded_factory, *TABLES) == before


def test_second_module_of_the_same_execution_is_added(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    execution = uuid.uuid4()
    first = observe(data_root, execution_id=execution)
    spec_350 = SyntheticObservation(
        "PrimeCam", "350GHz", "ECDFS-deep-001", "chile-source-primecam", 3, 100
    )
    start = first["executed_obs_unit"]["start_time"]
    second = observe(
        data_root,
        spec_350,
        execution_id=execution,
        start_time=datetime.fromisoformat(start.replace("Z", "+00:00")),
    )
    assert file_path(loaded_factory, drop(first, tmp_path, "a")).status == "filed"
    assert file_path(loaded_factory, drop(second, tmp_path, "b")).status == "filed"
    counts = table_counts(loaded_factory, *TABLES)
    assert counts["executed_obs_unit"] == 1 and counts["raw_data_file"] == 8
    assert counts["filed_manifest"] == 2
    spec_850 = SyntheticObservation(
        "PrimeCam", "850GHz", "ECDFS-deep-001", "chile-source-primecam", 2, 100
    )
    third_manifest = observe(
        data_root,
        spec_850,
        execution_id=execution,
        start_time=datetime.fromisoformat(start.replace("Z", "+00:00")),
    )
    third_manifest["executed_obs_unit"]["status"] = "failed"
    third = file_path(loaded_factory, drop(third_manifest, tmp_path, "c"))
    assert third.status == "rejected"
    assert "already filed with different status" in third.message
    with loaded_factory() as session:
        modules = {m.instrument_module_id for m in session.scalars(select(FiledManifest))}
        assert len(modules) == 2


def _mutations(data_root: Path) -> list[tuple[str, Any, str]]:
    def missing_file(m: dict[str, Any]) -> None:
        os.unlink(data_root / m["location"] / m["files"][2]["path"])

    def wrong_size(m: dict[str, Any]) -> None:
        m["files"][1]["size"] = 999

    def escaping_link(m: dict[str, Any]) -> None:
        target = data_root / "outside.bin"
        target.write_bytes(b"x" * 1000)
        path = data_root / m["location"] / m["files"][0]["path"]
        path.unlink()
        path.symlink_to(target)

    def escaping_folder(m: dict[str, Any]) -> None:
        outside = data_root / "elsewhere"
        outside.mkdir()
        (outside / "f.g3").write_bytes(b"y" * 1000)
        (data_root / m["location"] / "linkdir").symlink_to(outside)
        m["files"].append({"path": "linkdir/f.g3", "size": 1000})

    def a_folder(m: dict[str, Any]) -> None:
        (data_root / m["location"] / "adir").mkdir()
        m["files"].append({"path": "adir", "size": 0})

    def set_key(key: str, value: Any) -> Any:
        return lambda m: m.update({key: value})

    return [
        ("missing file", missing_file, "det_000002.g3: no such file"),
        ("wrong size", wrong_size, "is 1000 bytes on disk, the manifest says 999"),
        ("link escapes", escaping_link, "symbolic link that leaves the location root"),
        ("folder link escapes", escaping_folder, "linkdir/f.g3: a folder on its path is a link"),
        ("not a file", a_folder, "adir: is a folder, not a regular file"),
        ("dotdot", lambda m: m["files"][0].update(path="../x"), "must not contain '..'"),
        (
            "unknown instrument",
            set_key("instrument", "NoCam"),
            "instrument: unknown instrument 'NoCam' (known: CHAI, PrimeCam)",
        ),
        (
            "misspelt instrument",
            set_key("instrument", "PrimeKam"),
            "unknown instrument 'PrimeKam'; did you mean 'PrimeCam'?",
        ),
        (
            "unknown module",
            set_key("instrument_module", "LFA"),
            "unknown PrimeCam module 'LFA' (known: 280GHz, 350GHz, 850GHz, EoR-Spec)",
        ),
        ("unknown obs unit", set_key("obs_unit", "nope"), "unknown obs unit 'nope'"),
        (
            "obs unit of another instrument",
            set_key("obs_unit", "OrionKL-map-001"),
            "observed with CHAI, not PrimeCam",
        ),
        ("unknown location", set_key("location", "nowhere"), "unknown location 'nowhere'"),
        (
            "misspelt location",
            set_key("location", "chile-source-primcam"),
            "did you mean 'chile-source-primecam'?",
        ),
        ("not a source", set_key("location", "chile-buffer-01"), "is a BUFFER, not a SOURCE"),
        (
            "another instrument's source",
            set_key("location", "chile-source-chai"),
            "holds CHAI data, not PrimeCam",
        ),
        ("bad version", set_key("manifest_version", 7), "manifest_version"),
    ]


@pytest.mark.parametrize("case", range(16))
def test_rejections_name_the_problem_and_leave_ops_db_untouched(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, case: int
) -> None:
    name, mutate, message = _mutations(data_root)[case]
    manifest = observe(data_root)
    mutate(manifest)
    before = table_counts(loaded_factory, *TABLES)
    outcome = file_path(loaded_factory, drop(manifest, tmp_path))
    assert outcome.status == "rejected", name
    assert message in outcome.message, outcome.message
    assert table_counts(loaded_factory, *TABLES) == before


def test_inactive_location_is_rejected(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    with transaction(loaded_factory) as session:
        location = session.scalars(
            select(DataLocation).filter_by(name="chile-source-primecam")
        ).one()
        location.active = False
    outcome = file_path(loaded_factory, drop(observe(data_root), tmp_path))
    assert outcome.status == "rejected" and "is not active" in outcome.message


def test_many_problems_are_summarised_on_one_line(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    manifest = observe(
        data_root,
        SyntheticObservation(
            "PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 12, 10
        ),
    )
    for entry in manifest["files"]:
        entry["size"] = 11
    outcome = file_path(loaded_factory, drop(manifest, tmp_path))
    assert outcome.status == "rejected"
    assert "(and 7 more)" in outcome.message and "\n" not in outcome.message
