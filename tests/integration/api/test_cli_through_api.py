"""The CLI through the REST API (`--api URL`, a token, no database credentials) against
a real `ccat-hpc api serve` process: stage, status, trace, file and watch; token files
with owner-only permissions; a refused token; no token in the server's log."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import REPO
from tests.integration.api.conftest import SQLITE, Served, serve
from tests.integration.test_cli import InProcess
from tests.integration.test_executors import slurm_ready
from tests.integration.test_sbatch_wrappers import CCAT_BIN, job_end
from tests.integration.test_staging import PROCESSING, stage_now


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


def as_user(served: Served, user: str, **extra: str) -> dict[str, str]:
    """The environment of someone who has a token and the API's address, no ops-db."""
    env = {k: v for k, v in os.environ.items() if k != "CCAT_HPC_DB"}
    return env | {"CCAT_HPC_TOKEN": served.tokens[user], "CCAT_HPC_API": served.url} | extra


@SQLITE
def test_a_scientist_stages_through_the_api_with_no_database(
    served: Served, cli: InProcess, tmp_path: Path
) -> None:
    alice = as_user(served, "alice")
    made = cli(None, "stage", "request", "--obs-unit", "ECDFS-deep-001", "--id-only", env=alice)
    assert made.returncode == 0, made.stderr
    staging_id = made.stdout.strip()
    waited = cli(None, "stage", "wait", staging_id, "--timeout", "0.5", env=alice)
    assert waited.returncode == 75 and "still pending" in waited.stderr
    assert stage_now(served.factory, tmp_path) is not None
    ready = cli(None, "stage", "wait", staging_id, env=alice)
    assert ready.returncode == 0 and ready.stdout.startswith("READY: ")
    folder = cli(None, "stage", "status", staging_id, "--folder", env=alice).stdout.strip()
    assert (Path(folder) / "READY").exists()
    listed = json.loads(cli(None, "stage", "list", "--json", env=alice).stdout)
    assert [r["id"] for r in listed] == [int(staging_id)]
    other = cli(None, "stage", "status", staging_id, env=as_user(served, "bob"))
    assert other.returncode == 4 and "own staging requests" in other.stderr
    released = cli(None, "stage", "release", staging_id, env=alice)
    assert released.returncode == 0 and "released" in released.stdout

    status = cli(None, "status", env=alice)
    assert status.returncode == 0 and "archived" in status.stdout
    traced = json.loads(cli(None, "trace", "1", "--json", env=alice).stdout)
    assert traced["file"]["id"] == 1

    server_log = served.log.read_text()
    assert "GET /api/v1/staging/" in server_log
    assert not any(token in server_log for token in served.tokens.values())


@SQLITE
def test_token_files_and_refused_tokens(served: Served, cli: InProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(served.tokens["alice"] + "\n")
    token_file.chmod(0o644)
    env = as_user(served, "alice") | {"CCAT_HPC_TOKEN": ""}
    loose = cli(None, "status", "--token-file", str(token_file), env=env)
    assert loose.returncode == 3 and "chmod 600" in loose.stderr
    token_file.chmod(0o600)
    assert cli(None, "status", "--token-file", str(token_file), env=env).returncode == 0
    missing = cli(None, "status", env=env)
    assert missing.returncode == 3 and "CCAT_HPC_TOKEN" in missing.stderr
    wrong = cli(None, "status", env=env | {"CCAT_HPC_TOKEN": "ccat_00000000_" + "A" * 43})
    assert wrong.returncode == 4 and "not known" in wrong.stderr
    down = cli(
        None, "status", env=as_user(served, "alice") | {"CCAT_HPC_API": "http://127.0.0.1:9"}
    )
    assert down.returncode == 6 and "cannot reach the API" in down.stderr
    bad_url = cli(None, "status", env=as_user(served, "alice") | {"CCAT_HPC_API": "file:///etc"})
    assert bad_url.returncode == 3
    clear = cli(
        None, "status", env=as_user(served, "alice") | {"CCAT_HPC_API": "http://db.example"}
    )
    assert clear.returncode == 3 and "clear text" in clear.stderr


@SQLITE
def test_an_instrument_files_and_watches_through_the_api(
    served: Served, cli: InProcess, data_root: Path, tmp_path: Path
) -> None:
    daq = as_user(served, "primecam-daq")
    spec = SyntheticObservation(
        "PrimeCam", "850GHz", "ECDFS-deep-001", "chile-source-primecam", 2, 100
    )
    manifest = drop_manifest(write_observation(spec, data_root / spec.location), tmp_path, "one")
    filed = cli(None, "file", str(manifest), env=daq)
    assert filed.returncode == 0 and filed.stdout.startswith("filed one.json: 2 files")
    again = cli(None, "file", str(manifest), "--json", env=daq)
    assert json.loads(again.stdout)["status"] == "unchanged"
    chai = SyntheticObservation("CHAI", "LFA", "OrionKL-map-001", "chile-source-chai", 1, 100)
    (data_root / chai.location).mkdir(exist_ok=True)
    other = drop_manifest(write_observation(chai, data_root / chai.location), tmp_path, "chai")
    refused = cli(None, "file", str(other), env=daq)
    assert refused.returncode == 5 and "files observations of PrimeCam" in refused.stderr

    inbox = tmp_path / "inbox"
    second = SyntheticObservation("PrimeCam", "EoR-Spec", "ECDFS-deep-001", spec.location, 2, 100)
    drop_manifest(write_observation(second, data_root / spec.location), inbox, "two")
    drop_manifest(write_observation(chai, data_root / chai.location), inbox, "three")
    watched = cli(None, "watch", str(inbox), "--once", "--stable-seconds", "0", env=daq)
    assert watched.returncode == 0, watched.stderr
    assert [p.name for p in (inbox / "filed").iterdir()] == ["two.json"]
    # a token that may not file at all stops the watcher: nothing is moved aside
    third = SyntheticObservation("PrimeCam", "350GHz", "ECDFS-deep-001", spec.location, 1, 100)
    drop_manifest(write_observation(third, data_root / spec.location), inbox, "four")
    scientist = cli(
        None, "watch", str(inbox), "--once", "--stable-seconds", "0", env=as_user(served, "alice")
    )
    assert scientist.returncode == 4 and "observations:file" in scientist.stderr
    assert (inbox / "four.json").exists()
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == [
        "three.error.txt",
        "three.json",
    ]


@SQLITE
@pytest.mark.slurm
def test_stage_sbatch_runs_on_slurm_with_a_scientists_token_and_no_database(
    served: Served, data_root: Path, tmp_path: Path
) -> None:
    slurm_ready()
    token_file = tmp_path / "alice.token"
    token_file.write_text(served.tokens["alice"])
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in ("CCAT_HPC_DB", "CCAT_HPC_TOKEN")}
    env |= {
        "CCAT_HPC_API": served.url,
        "CCAT_HPC_TOKEN_FILE": str(token_file),
        "CCAT_HPC_BIN": CCAT_BIN,
    }
    stage_job = sbatch_parsable(
        [str(REPO / "sbatch/stage.sbatch"), "--obs-unit", "ECDFS-deep-001"], env, tmp_path
    )
    analysis = sbatch_parsable(
        [
            f"--dependency=afterok:{stage_job}",
            "--wrap",
            f'cd "$({CCAT_BIN} stage status "$(cat ccat-stage-{stage_job}.id)" --folder)"'
            " && xxh128sum -c READY > checked.txt",
        ],
        env,
        tmp_path,
    )
    id_file = tmp_path / f"ccat-stage-{stage_job}.id"
    deadline = time.monotonic() + 120
    while not (id_file.exists() and id_file.read_text().strip()):
        assert time.monotonic() < deadline, (tmp_path / f"ccat-stage-{stage_job}.log").read_text()
        time.sleep(0.5)
    result = stage_now(served.factory, tmp_path)  # the data center stages it
    assert result is not None and result["staged"] == 1
    assert job_end(stage_job) == ("COMPLETED", "0:0")
    assert job_end(analysis) == ("COMPLETED", "0:0")
    staging_id = int(id_file.read_text())
    checked = data_root / PROCESSING / "requests" / "alice" / str(staging_id) / "checked.txt"
    assert checked.read_text().count(": OK") == 5
    job_log = (tmp_path / f"ccat-stage-{stage_job}.log").read_text()
    assert "READY" in job_log and served.tokens["alice"] not in job_log


def sbatch_parsable(args: list[str], env: dict[str, str], cwd: Path) -> str:
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--mem=500M", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
    )
    return submitted.stdout.strip().split(";")[0]


@SQLITE
def test_several_server_processes_serve_the_same_ops_db(
    sites: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    for served in serve(db_url, sites, tmp_path, "--workers", "2"):
        answers = set()
        for _ in range(6):
            request = urllib.request.Request(
                f"{served.url}/api/v1/me",
                headers={"Authorization": f"Bearer {served.tokens['alice']}"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                answers.add(json.loads(answer.read())["username"])
        assert answers == {"alice"}
        deadline = time.monotonic() + 30  # the second process may start after the first
        while served.log.read_text().count("Started server process") < 2:
            assert time.monotonic() < deadline, served.log.read_text()
            time.sleep(0.2)
