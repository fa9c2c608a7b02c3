"""The manifest watcher: files, moves aside, leaves partial manifests alone, survives kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.pipeline.watcher import ready_manifests, watch_once
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import REPO, table_counts

SPEC = SyntheticObservation("PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 3, 10)


def new_manifest(data_root: Path, inbox: Path, name: str) -> Path:
    return drop_manifest(write_observation(SPEC, data_root / SPEC.location), inbox, name)


def test_good_and_bad_manifests_are_moved_aside(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    new_manifest(data_root, inbox, "good")
    (inbox / "broken.json").write_text("{not json")
    (inbox / "writing.json.tmp").write_text("{")
    outcomes = watch_once(loaded_factory, inbox, stable_seconds=0).outcomes
    assert sorted((o.path.name, o.status) for o in outcomes) == [
        ("broken.json", "rejected"),
        ("good.json", "filed"),
    ]
    assert (inbox / "filed/good.json").is_file()
    assert (inbox / "rejected/broken.json").is_file()
    error = (inbox / "rejected/broken.error.txt").read_text()
    assert error.startswith("broken.json: invalid JSON at line 1")
    assert (inbox / "writing.json.tmp").is_file()
    assert sorted(p.name for p in inbox.iterdir()) == ["filed", "rejected", "writing.json.tmp"]


def test_recently_modified_manifest_waits(tmp_path: Path) -> None:
    (tmp_path / "fresh.json").write_text("{}")
    old = tmp_path / "old.json"
    old.write_text("{}")
    past = time.time() - 60
    os.utime(old, (past, past))
    assert ready_manifests(tmp_path, time.time(), stable_seconds=5) == [old]


def test_same_name_again_does_not_overwrite_filed_copy(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    new_manifest(data_root, inbox, "obs")
    watch_once(loaded_factory, inbox, stable_seconds=0)
    new_manifest(data_root, inbox, "obs")
    watch_once(loaded_factory, inbox, stable_seconds=0)
    assert sorted(p.name for p in (inbox / "filed").iterdir()) == ["obs.1.json", "obs.json"]
    assert table_counts(loaded_factory, "executed_obs_unit")["executed_obs_unit"] == 2


def test_crash_between_filing_and_moving_is_harmless(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    path = new_manifest(data_root, inbox, "obs")
    assert file_path(loaded_factory, path).status == "filed"  # then the job "dies"
    outcomes = watch_once(loaded_factory, inbox, stable_seconds=0).outcomes
    assert [o.status for o in outcomes] == ["unchanged"]
    assert (inbox / "filed/obs.json").is_file() and not path.exists()
    assert table_counts(loaded_factory, "executed_obs_unit")["executed_obs_unit"] == 1


def _cli(db_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "ccat_hpc", "--db", db_url, *args]


def test_killed_watcher_resumes_without_double_filing(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    count = 25
    for index in range(count):
        new_manifest(data_root, inbox, f"obs-{index:02d}")
    watcher = subprocess.Popen(
        _cli(db_url, "watch", str(inbox), "--interval", "0.2", "--stable-seconds", "0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    filed = inbox / "filed"
    while time.monotonic() < deadline and len(list(filed.glob("*.json"))) < 3:
        time.sleep(0.02)
    watcher.send_signal(signal.SIGKILL)
    watcher.wait(10)
    assert 0 < len(list(filed.glob("*.json"))) < count, "the kill should land mid-batch"
    rerun = subprocess.run(
        _cli(db_url, "watch", str(inbox), "--once", "--stable-seconds", "0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert len(list(filed.glob("*.json"))) == count
    assert not list(inbox.glob("*.json"))
    counts = table_counts(loaded_factory, "executed_obs_unit", "filed_manifest", "raw_data_file")
    assert counts == {
        "executed_obs_unit": count,
        "filed_manifest": count,
        "raw_data_file": 3 * count,
    }


def test_max_runtime_ends_the_watcher(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    new_manifest(data_root, inbox, "one")
    run = subprocess.run(
        _cli(
            db_url,
            "watch",
            str(inbox),
            "--interval",
            "0.1",
            "--stable-seconds",
            "0",
            "--max-runtime",
            "0.5",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0
    assert "filed one.json" in run.stdout
    assert json.loads((inbox / "filed/one.json").read_text())["instrument"] == "PrimeCam"


def _wrapper_env(db_url: str) -> dict[str, str]:
    return os.environ | {
        "CCAT_HPC_BIN": str(Path(sys.executable).with_name("ccat-hpc")),
        "CCAT_HPC_DB": db_url,
        "CCAT_WATCH_REQUEUE": "0",
        "CCAT_WATCH_INTERVAL": "0.2",
    }


def test_sbatch_wrapper_files_manifests(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    new_manifest(data_root, inbox, "one")
    run = subprocess.run(
        [
            "bash",
            str(REPO / "sbatch/watch-manifests.sbatch"),
            str(inbox),
            "--once",
            "--stable-seconds",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=_wrapper_env(db_url),
    )
    assert run.returncode == 0, run.stderr
    assert (inbox / "filed/one.json").is_file()
    assert table_counts(loaded_factory, "executed_obs_unit")["executed_obs_unit"] == 1


@pytest.mark.parametrize("through_wrapper", [False, True], ids=["cli", "sbatch-wrapper"])
def test_sigterm_stops_the_watcher_cleanly(
    loaded_factory: sessionmaker[Session], db_url: str, tmp_path: Path, through_wrapper: bool
) -> None:
    """Slurm's SIGTERM before the time limit: finish, say so, exit 0 (also via the wrapper)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    if through_wrapper:
        command = ["bash", str(REPO / "sbatch/watch-manifests.sbatch"), str(inbox)]
    else:
        command = _cli(db_url, "watch", str(inbox), "--interval", "0.2")
    watcher = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_wrapper_env(db_url),
    )
    assert watcher.stderr is not None
    try:
        first = watcher.stderr.readline()  # printed once the signal handlers are in place
        assert " watch: watching " in first and first[:4].isdigit(), first  # timestamped
        watcher.send_signal(signal.SIGTERM)
        _, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:  # never leave a watcher behind, whatever failed
            watcher.kill()
            watcher.wait(10)
    assert watcher.returncode == 0, err
    assert "stopping after the current manifest" in err and "stopped after" in err


def test_sbatch_wrapper_usage() -> None:
    script = REPO / "sbatch/watch-manifests.sbatch"
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "Usage: sbatch" in shown.stdout
    missing = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert missing.returncode == 2


def test_unreachable_ops_db_defers_and_keeps_the_manifest(tmp_path: Path) -> None:
    from ccat_hpc.db.session import make_engine, make_session_factory

    inbox = tmp_path / "inbox"
    manifest = {
        "manifest_version": 1,
        "instrument": "PrimeCam",
        "instrument_module": "280GHz",
        "obs_unit": "ECDFS-deep-001",
        "executed_obs_unit": {
            "id": "00000000-0000-0000-0000-000000000001",
            "start_time": "2026-11-23T03:00:00Z",
            "end_time": "2026-11-23T03:30:00Z",
            "status": "success",
        },
        "location": "chile-source-primecam",
        "files": [{"path": "a.g3", "size": 1}],
    }
    path = drop_manifest(manifest, inbox, "waiting")
    no_schema = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}"))
    outcomes = watch_once(no_schema, inbox, stable_seconds=0).outcomes
    assert [o.status for o in outcomes] == ["deferred"]
    assert "ops-db unavailable" in outcomes[0].message
    assert path.is_file() and not (inbox / "rejected").exists()


def test_manifest_removed_during_the_pass_is_skipped(tmp_path: Path) -> None:
    from ccat_hpc.pipeline.intake import IntakeOutcome, IntakeStatus
    from ccat_hpc.pipeline.watcher import settle

    gone = tmp_path / "gone.json"
    settle(IntakeOutcome(gone, IntakeStatus.REJECTED, "cannot read manifest"))
    assert not (tmp_path / "rejected").exists()
