"""No manifest stops the watcher; a broken inbox is one clear error at start-up."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.cli.main import main
from ccat_hpc.errors import ManifestError
from ccat_hpc.pipeline.filing import file_manifest
from ccat_hpc.pipeline.manifest import parse_manifest
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import table_counts
from tests.unit.test_manifest_hostile import JSON_VALUES, PLACES, _put

SPEC = SyntheticObservation("PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 2, 10)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def hostile_texts(good: dict[str, Any]) -> dict[str, str]:
    """Manifests that once stopped the watcher with an internal error, by name."""
    text = json.dumps(good)
    year_one = copy.deepcopy(good)
    year_one["executed_obs_unit"]["start_time"] = "0001-01-01T00:00:00+01:00"
    return {
        "deep": "[" * 100_000 + "]" * 100_000,
        "digits": text.replace('"size": 10', '"size": ' + "7" * 5000, 1),
        "surrogate": text.replace('"success"', '"\\udc80"'),
        "year-one": json.dumps(year_one),
        "nan": text.replace('"size": 10', '"size": NaN', 1),
        "nul": text.replace('"PrimeCam"', '"Prime\\u0000Cam"'),
        "not-utf8": "\udcff",
    }


def test_hostile_manifests_are_rejected_and_the_good_one_filed(
    capsys: pytest.CaptureFixture[str],
    loaded_factory: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    good = write_observation(SPEC, data_root / SPEC.location)
    inbox.mkdir()
    for name, body in hostile_texts(good).items():
        (inbox / f"{name}.json").write_bytes(body.encode("utf-8", "surrogateescape"))
    drop_manifest(good, inbox, "zz-good")
    code, out, err = run_cli(
        capsys, "--db", db_url, "watch", str(inbox), "--once", "--stable-seconds", "0"
    )
    assert code == 0, err
    assert "internal error" not in err + out
    assert (inbox / "filed/zz-good.json").is_file()
    rejected = sorted(p.name for p in (inbox / "rejected").glob("*.json"))
    assert rejected == sorted(f"{name}.json" for name in hostile_texts(good))
    for error_file in (inbox / "rejected").glob("*.error.txt"):
        lines = error_file.read_text().splitlines()
        assert len(lines) == 1 and lines[0].startswith(error_file.name.split(".")[0])
    assert table_counts(loaded_factory, "raw_data_file")["raw_data_file"] == 2
    assert "7 rejected" in out and "1 filed" in out


def test_a_plain_file_named_rejected_is_one_error_at_start_up(
    capsys: pytest.CaptureFixture[str],
    loaded_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "rejected").write_text("not a folder")
    (inbox / "a.json").write_text("{}")
    code, _, err = run_cli(capsys, "--db", db_url, "watch", str(inbox), "--once")
    assert code == 3
    assert (
        err.strip() == f"error: inbox {inbox}: 'rejected' exists and is not a folder; move it away"
    )
    assert (inbox / "a.json").is_file()


def test_a_missing_inbox_is_one_error(
    capsys: pytest.CaptureFixture[str],
    loaded_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
) -> None:
    code, _, err = run_cli(capsys, "--db", db_url, "watch", str(tmp_path / "nowhere"), "--once")
    assert code == 3 and "does not exist or is not a folder" in err


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[None]:
    """``folder`` as a read-only file system (even root cannot write there)."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a read-only tmpfs: run it as root (as CI does)")
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_an_inbox_it_cannot_write_to_is_one_error(
    capsys: pytest.CaptureFixture[str],
    loaded_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    with read_only_folder(inbox):
        code, _, err = run_cli(capsys, "--db", db_url, "watch", str(inbox), "--once")
    assert code == 3
    assert err.startswith(f"error: inbox {inbox}: cannot create filed/") and err.count("\n") == 1


def test_a_fixed_manifest_leaves_no_old_copy_in_rejected(
    capsys: pytest.CaptureFixture[str],
    loaded_factory: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    good = write_observation(SPEC, data_root / SPEC.location)
    broken = copy.deepcopy(good)
    broken["instrument"] = "PrimeKam"
    drop_manifest(broken, inbox, "obs")
    argv = ("--db", db_url, "watch", str(inbox), "--once", "--stable-seconds", "0")
    assert run_cli(capsys, *argv)[0] == 0
    assert (inbox / "rejected/obs.json").is_file()
    reason = (inbox / "rejected/obs.error.txt").read_text()
    assert "did you mean 'PrimeCam'?" in reason
    drop_manifest(good, inbox, "obs")  # the instrument team fixes it and drops it again
    assert run_cli(capsys, *argv)[0] == 0
    assert (inbox / "filed/obs.json").is_file()
    assert list((inbox / "rejected").iterdir()) == []


def test_once_says_how_many_manifests_are_still_being_written(
    capsys: pytest.CaptureFixture[str],
    loaded_factory: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    drop_manifest(write_observation(SPEC, data_root / SPEC.location), inbox, "fresh")
    code, out, _ = run_cli(capsys, "--db", db_url, "watch", str(inbox), "--once")
    assert code == 0
    assert "0 manifest(s) processed (none); 1 left waiting (not yet stable)" in out
    assert out[:4].isdigit()  # log lines are timestamped


def test_an_unusable_ops_db_is_exit_6_and_keeps_the_manifests(
    capsys: pytest.CaptureFixture[str], data_root: Path, tmp_path: Path, sqlite_template: Path
) -> None:
    no_schema = tmp_path / "empty.sqlite"
    no_schema.write_bytes(b"")  # an SQLite file without the schema
    inbox = tmp_path / "inbox"
    path = drop_manifest(write_observation(SPEC, data_root / SPEC.location), inbox, "obs")
    watch = run_cli(
        capsys, "--db", str(no_schema), "watch", str(inbox), "--once", "--stable-seconds", "0"
    )
    filed = run_cli(capsys, "--db", str(no_schema), "file", str(path))
    for code, _, err in (watch, filed):
        assert code == 6, err
        assert err.startswith("error: ") and "internal error" not in err
    assert path.is_file()


@pytest.fixture
def good_manifest(data_root: Path) -> dict[str, Any]:
    return write_observation(SPEC, data_root / SPEC.location, execution_id=uuid.UUID(int=99))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(place=st.sampled_from(PLACES), value=JSON_VALUES)
def test_filing_any_value_anywhere_is_filed_or_a_manifest_error(
    loaded_factory: sessionmaker[Session],
    good_manifest: dict[str, Any],
    place: tuple[Any, ...],
    value: Any,
) -> None:
    raw = copy.deepcopy(good_manifest)
    _put(raw, place, value)
    with contextlib.suppress(ManifestError), loaded_factory() as session:  # nothing else
        try:
            file_manifest(session, parse_manifest(raw), "0" * 32)
        finally:
            session.rollback()  # keep ops-db as it was for the next example


def _one_pass(factory: sessionmaker[Session], inbox: Path) -> Any:
    from ccat_hpc.pipeline.watcher import watch_once

    warnings: list[str] = []
    result = watch_once(factory, inbox, stable_seconds=0, warn=warnings.append)
    return result, warnings


def test_a_link_planted_at_the_reason_file_is_never_written_through(
    loaded_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    inbox, victim = tmp_path / "inbox", tmp_path / "victim.txt"
    (inbox / "rejected").mkdir(parents=True)
    victim.write_text("precious")
    (inbox / "bad.json").write_text("{")
    (inbox / "rejected/bad.error.txt").symlink_to(victim)
    result, warnings = _one_pass(loaded_factory, inbox)
    assert [o.status for o in result.outcomes] == ["rejected"] and warnings == []
    assert victim.read_text() == "precious"
    assert (inbox / "rejected/bad.1.json").read_text() == "{"
    assert (inbox / "rejected/bad.1.error.txt").read_text().startswith("bad.json: invalid JSON")


def test_a_rejected_folder_turned_into_a_link_is_not_followed(
    loaded_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    inbox.mkdir()
    elsewhere.mkdir()
    (inbox / "rejected").symlink_to(elsewhere, target_is_directory=True)
    (inbox / "bad.json").write_text("{")
    result, warnings = _one_pass(loaded_factory, inbox)
    assert result.move_errors == 1 and "cannot move bad.json aside" in warnings[0]
    assert list(elsewhere.iterdir()) == [] and (inbox / "bad.json").is_file()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda path, other: os.mkfifo(path), "manifest is not a regular file"),
        (lambda path, other: path.mkdir(), "manifest is not a regular file"),
        (lambda path, other: path.symlink_to(other), "manifest is a symbolic link, not a file"),
    ],
)
def test_entries_that_are_not_files_are_rejected_not_opened(
    loaded_factory: sessionmaker[Session], tmp_path: Path, make: Any, reason: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    other = tmp_path / "other.json"
    other.write_text("{}")
    make(inbox / "odd.json", other)
    result, _ = _one_pass(loaded_factory, inbox)
    assert [(o.status, o.message) for o in result.outcomes] == [("rejected", reason)]
    assert os.path.lexists(inbox / "rejected/odd.json") and not os.path.lexists(inbox / "odd.json")
    assert other.read_text() == "{}"


def test_manifests_with_very_long_names_are_moved_aside_every_time(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    name = "x" * 250 + ".json"  # 255 bytes: the longest name there is
    for attempt in range(3):
        (inbox / name).write_text("{")
        result, warnings = _one_pass(loaded_factory, inbox)
        assert warnings == [] and [o.status for o in result.outcomes] == ["rejected"], attempt
    rejected = sorted((inbox / "rejected").iterdir())
    assert len(rejected) == 6 and all(len(p.name.encode()) <= 255 for p in rejected)
    reasons = [p for p in rejected if p.name.endswith(".error.txt")]
    assert all(r.read_text().startswith(name + ": invalid JSON") for r in reasons)
    for _ in range(2):  # the same long name filed twice: both land in filed/
        manifest = write_observation(SPEC, data_root / SPEC.location)
        (inbox / ("y" * 250 + ".json")).write_text(json.dumps(manifest))
        assert [o.status for o in _one_pass(loaded_factory, inbox)[0].outcomes] == ["filed"]
    assert len(list((inbox / "filed").iterdir())) == 2 and not list(inbox.glob("*.json"))


def test_odd_manifest_names_stay_one_line_in_logs_and_reasons(
    capsys: pytest.CaptureFixture[str],
    loaded_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "two\nlines.json").write_text("{")
    code, _, err = run_cli(
        capsys, "--db", db_url, "watch", str(inbox), "--once", "--stable-seconds", "0"
    )
    assert code == 0
    assert next(line for line in err.splitlines() if "rejected" in line).endswith(
        "rejected 'two\\nlines.json': invalid JSON at line 1 column 2: Expecting property name "
        "enclosed in double quotes"
    )
    [reason] = list((inbox / "rejected").glob("*.error.txt"))
    assert reason.read_text().count("\n") == 1


def test_filing_a_fixed_manifest_keeps_unrelated_rejections_of_the_same_name(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    unrelated = write_observation(SPEC, data_root / SPEC.location)
    unrelated["instrument"] = "NoCam"
    drop_manifest(unrelated, inbox, "obs")
    _one_pass(loaded_factory, inbox)
    good = write_observation(SPEC, data_root / SPEC.location)
    drop_manifest(good, inbox, "obs")
    result, _ = _one_pass(loaded_factory, inbox)
    assert [o.status for o in result.outcomes] == ["filed"]
    assert (inbox / "rejected/obs.json").is_file()  # another execution: kept


def test_a_manifest_another_watcher_took_meanwhile_is_not_counted_rejected(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    from ccat_hpc.pipeline import watcher

    inbox = tmp_path / "inbox"
    drop_manifest(write_observation(SPEC, data_root / SPEC.location), inbox, "taken")
    real = watcher.file_path

    def taken_by_the_other_watcher(factory: Any, path: Path, **kwargs: Any) -> Any:
        os.replace(path, tmp_path / "elsewhere.json")  # the other watcher moved it first
        return real(factory, path, **kwargs)

    monkeypatch.setattr(watcher, "file_path", taken_by_the_other_watcher)
    result, warnings = _one_pass(loaded_factory, inbox)
    assert result.outcomes == [] and warnings == []
    assert not (inbox / "rejected").exists() or list((inbox / "rejected").iterdir()) == []


def test_sigterm_stops_file_between_manifests(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    many = dataclasses.replace(SPEC, file_count=300, file_size=1)
    paths = [
        drop_manifest(write_observation(many, data_root / SPEC.location), tmp_path, f"m{i:02d}")
        for i in range(30)
    ]
    command = [sys.executable, "-m", "ccat_hpc", "--db", db_url, "file", *map(str, paths)]
    filing = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert filing.stdout is not None
    first = filing.stdout.readline()  # one manifest filed: the next is under way
    assert first.startswith("filed m00.json"), first
    filing.send_signal(signal.SIGTERM)
    out, err = filing.communicate(timeout=120)
    assert filing.returncode == 143, err
    assert "stopping after the current manifest" in err and "terminated" in err
    assert "Traceback" not in err and "internal error" not in err
    filed = 1 + out.count("filed ")
    assert 1 <= filed < 30
    counts = table_counts(loaded_factory, "filed_manifest", "raw_data_file")
    assert counts == {"filed_manifest": filed, "raw_data_file": 300 * filed}  # whole manifests
