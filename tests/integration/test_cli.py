"""The ccat-hpc command line, run as operators run it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ccat_hpc.catalog.loader import example_catalog_path
from ccat_hpc.cli.main import main
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import SITE_CONFIGS

SITES = [str(SITE_CONFIGS / "chile.yaml"), str(SITE_CONFIGS / "cologne.yaml")]


class InProcess:
    """Runs ``ccat-hpc`` through its real entry point (``main``) inside the test process."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(
        self,
        db_url: str | None,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = (["--db", db_url] if db_url else []) + list(args)
        saved_env, saved_cwd = os.environ.copy(), os.getcwd()
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        self.capsys.readouterr()
        try:
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)
        out, err = self.capsys.readouterr()
        return subprocess.CompletedProcess(argv, int(exit_info.value.code or 0), out, err)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_operator_chain_from_empty_database(
    run: InProcess, empty_db_url: str, data_root: Path, tmp_path: Path
) -> None:
    upgrade = run(empty_db_url, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    current = run(empty_db_url, "db", "current")
    assert "(up to date)" in current.stdout
    loaded = run(empty_db_url, "sites", "load", *SITES)
    assert loaded.returncode == 0 and "created" in loaded.stdout
    again = run(empty_db_url, "sites", "load", *SITES)
    assert again.stdout.strip().endswith("unchanged") and "created" not in again.stdout
    catalog = run(empty_db_url, "catalog", "load", str(example_catalog_path()))
    assert catalog.returncode == 0, catalog.stderr
    spec = SyntheticObservation("CHAI", "HFA", "OrionKL-map-001", "chile-source-chai", 4, 50)
    manifest = drop_manifest(write_observation(spec, data_root / spec.location), tmp_path)
    filed = run(empty_db_url, "file", str(manifest))
    assert filed.returncode == 0 and filed.stdout.startswith("filed "), filed.stderr
    listing = run(empty_db_url, "sites", "list")
    assert "chile-source-chai" in listing.stdout and "route chile-to-cologne" in listing.stdout
    status = json.loads(run(empty_db_url, "status", "--json").stdout)
    assert status["executed_obs_units"] == {"success": 1}
    assert status["raw_data_files"]["filed"] == {"count": 4, "bytes": 200}
    assert status["physical_copies"][0]["location"] == "chile-source-chai"
    text = run(empty_db_url, "status").stdout
    assert "raw data files" in text and "chile-source-chai" in text
    down = run(empty_db_url, "db", "downgrade", "base", "--yes")
    assert down.returncode == 0 and "base (empty)" in down.stdout


def test_bad_site_config_is_one_line_and_changes_nothing(
    run: InProcess, empty_db_url: str, data_root: Path, tmp_path: Path
) -> None:
    assert run(empty_db_url, "db", "upgrade").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(SITES[0]).read_text().replace("type: BUFFER", "type: BUFFR"))
    result = run(empty_db_url, "sites", "load", str(bad), SITES[1])
    assert result.returncode == 3
    line = one_line_error(result)
    assert "bad.yaml" in line and "locations[2].type" in line
    status = json.loads(run(empty_db_url, "status", "--json").stdout)
    assert status["physical_copies"] == []
    checked = run(empty_db_url, "sites", "load", "--check", *SITES)
    assert checked.returncode == 0 and "2 site config(s) valid" in checked.stdout


def test_rejected_manifest_exit_code_and_message(
    run: InProcess, empty_db_url: str, data_root: Path, tmp_path: Path
) -> None:
    for args in (("db", "upgrade"), ("sites", "load", *SITES), ("catalog", "load")):
        assert run(empty_db_url, *args).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"manifest_version": 1}')
    missing = tmp_path / "absent.json"
    result = run(empty_db_url, "file", str(bad), str(missing))
    assert result.returncode == 5
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("rejected bad.json: instrument: Field required")
    assert lines[1].startswith("rejected absent.json: cannot read manifest")
    assert lines[2] == "error: 2 of 2 manifest(s) rejected"


def test_unreachable_database_is_one_line(run: InProcess) -> None:
    result = run("postgresql://nobody@127.0.0.1:1/none", "status")
    assert result.returncode == 6
    line = one_line_error(result)
    assert "cannot use ops-db at postgresql+psycopg://nobody@127.0.0.1:1/none" in line


def test_schema_not_created_hints_at_upgrade(run: InProcess, tmp_path: Path) -> None:
    result = run(str(tmp_path / "new.sqlite"), "status")
    assert result.returncode == 6
    assert "run `ccat-hpc db upgrade`" in one_line_error(result)


def test_verbose_adds_traceback(run: InProcess, tmp_path: Path) -> None:
    result = run(str(tmp_path / "new.sqlite"), "--verbose", "status")
    assert "Traceback" in result.stderr and result.returncode == 6


def test_default_database_is_a_file_in_the_current_folder(run: InProcess, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CCAT_HPC_DB"}
    result = run(None, "db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ccat-hpc.sqlite").is_file()
    env["CCAT_HPC_DB"] = str(tmp_path / "other.sqlite")
    assert run(None, "db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    assert (tmp_path / "other.sqlite").is_file()


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_commands(run: InProcess, flag: str) -> None:
    result = run(None, flag)
    for command in ("db", "sites", "catalog", "file", "watch", "status", "demo"):
        assert f"  {command}" in result.stdout


def test_demo_runs_end_to_end_on_the_embedded_default(run: InProcess, tmp_path: Path) -> None:
    """The README's first command runs the demo through the installed console script,
    in its own folder whatever the shell exports, and its next steps work as printed."""
    elsewhere = tmp_path / "elsewhere"
    embedded = {k: v for k, v in os.environ.items() if not k.startswith("CCAT_S3_")}
    env = embedded | {  # no S3 configured: the embedded default archives into a folder
        "CCAT_HPC_DB": str(elsewhere / "production.sqlite"),  # never touched by the demo
        "CCAT_DATA_ROOT": str(elsewhere / "data"),
    }
    script = Path(sys.executable).with_name("ccat-hpc")
    result = subprocess.run(
        [str(script), "demo", "--workdir", "demo", "--files", "3", "--file-size", "1000"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\nfiled ") == 2
    assert (tmp_path / "demo/ccat-hpc.sqlite").is_file() and not elsewhere.exists()
    assert len(list((tmp_path / "demo/manifests/filed").glob("*.json"))) == 2
    status = run(str(tmp_path / "demo/ccat-hpc.sqlite"), "status", "--json")
    snapshot = json.loads(status.stdout)
    assert snapshot["raw_data_files"] == {"archived": {"count": 6, "bytes": 6000}}
    assert snapshot["raw_data_packages"] == {"archived": 2}
    assert snapshot["data_transfer_packages"] == {"archived": 1}
    archive = [r for r in snapshot["physical_copies"] if r["location"] == "cologne-archive"]
    assert [(r["kind"], r["state"], r["count"]) for r in archive] == [
        ("raw_data_package", "verified", 2)
    ]
    # the scheduler loop ran every step, and stopped once idle
    for step in ("checksum", "package", "bundle", "transfer", "archive"):
        assert f"did: submit {step}:" in result.stdout, step
    assert "did: submit checksum: 6 item(s) waiting → batch 1" in result.stdout
    assert "the scheduler is idle after" in result.stdout
    assert "files: 6 of 6 archived" in result.stdout
    assert "per step: checksum 6.0 KB in " in result.stdout
    archived = sorted((tmp_path / "demo/data/cologne-archive").rglob("*.tar"))
    assert len(archived) == 2
    # the lifecycle: a scientist stages 3 + 3 files, releases them, and cleanup frees
    # every copy outside the archive (6 files at SOURCE and PROCESSING, 2 RDPs and the
    # DTP in each buffer); the archive keeps its two packages
    assert "stage: 2 request(s) staged: 6 files, 6.0 KB staged" in result.stdout
    assert "release: 2 request(s)" in result.stdout
    assert "cleanup: 18 copies" in result.stdout
    # the scheduler's scrub read the archive again and found nothing wrong
    assert "scrub of the cologne archive: 2 of 2 copies verified" in result.stdout
    assert "0 damaged or missing" in result.stdout
    data = tmp_path / "demo/data"
    left = sorted(p.relative_to(data).parts[0] for p in data.rglob("*") if p.is_file())
    assert left == ["cologne-archive", "cologne-archive"]
    _follow_the_next_steps(result.stdout, tmp_path)


def _follow_the_next_steps(printed: str, cwd: Path) -> None:
    """Run the demo's printed export lines and a few of its commands, as a newcomer would."""
    steps = printed.split("==> next: go on with the demo's ops-db", 1)[1]
    exports = [line.strip() for line in steps.splitlines() if line.strip().startswith("export ")]
    commands = [
        "ccat-hpc status",
        "ccat-hpc obs list",
        "ccat-hpc files show 1",
        "ccat-hpc job status 1",
        "ccat-hpc trace 1",
        "ccat-hpc step checksum --wait",
        "ccat-hpc scheduler run --once",
    ]
    for command in commands:
        assert command.split()[1] in steps  # the demo suggests it
        script = "set -e\n" + "\n".join(exports) + f"\n{command}\n"
        done = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=300,
            env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"
    _browse_the_demo_through_its_api(steps, exports, cwd)


def _browse_the_demo_through_its_api(steps: str, exports: list[str], cwd: Path) -> None:
    """The printed `api serve` and the operator's token file reach the demo's ops-db."""
    from tests.integration.api.conftest import wait_until_ready

    assert "ccat-hpc api serve" in steps
    token_file = re.search(r"cat (\S+)\s+# the operator's token", steps)
    assert token_file is not None and Path(token_file.group(1)).stat().st_mode & 0o077 == 0
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    script = "\n".join(exports) + "\nexec ccat-hpc api serve --port 0\n"
    log = cwd / "api.log"
    with log.open("w") as out:
        server = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stderr=out)
    try:
        url = wait_until_ready(server, log)
        command = f"ccat-hpc status --api {url} --token-file {token_file.group(1)}"
        done = subprocess.run(
            ["bash", "-c", "\n".join(exports) + f"\nunset CCAT_HPC_DB\n{command}\n"],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0 and "archived" in done.stdout, done.stderr
    finally:
        server.terminate()
        server.wait(20)
