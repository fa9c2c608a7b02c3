"""The shared transfer-method suite: every method copies exactly, logs what it did, and
fails clearly; run on the local copy and on rsync (between folders here; rsync over ssh
is the same command with ``host:`` in front of the path)."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pytest

from ccat_hpc.transfer.methods import (
    Bbcp,
    Destination,
    LocalCopy,
    Rsync,
    TransferError,
    TransferMethod,
    run_logged,
    transfer_method,
)
from tests.conftest import _require

MiB = 1024 * 1024


def ssh_host() -> tuple[str, str]:
    """(host, ssh command) of the test services' ssh server."""
    host = os.environ.get("CCAT_HPC_TEST_SSH_HOST", "")
    ssh = os.environ.get("CCAT_RSYNC_SSH", "")
    if not (host and ssh):
        problem = "no ssh server: start it with scripts/services.sh up and eval its env"
        if _require("ssh"):
            pytest.fail(problem)
        pytest.skip(problem)
    return host, ssh


@dataclass(frozen=True)
class Over:
    """A method, and the host it copies to ('' for a mounted folder)."""

    method: TransferMethod
    host: str = ""

    def copy(self, source: Path, target: Path, log: TextIO) -> int:
        return self.method.copy(source, Destination(target, self.host), log)


@pytest.fixture(params=["copy", "rsync", pytest.param("rsync-over-ssh", marks=pytest.mark.ssh)])
def method(request: pytest.FixtureRequest) -> Iterator[Over]:
    if request.param.startswith("rsync") and shutil.which("rsync") is None:
        pytest.fail("rsync is not installed (scripts/system-packages.sh installs it)")
    if request.param == "rsync-over-ssh":
        host, ssh = ssh_host()
        yield Over(transfer_method("rsync", ssh=ssh), host)
        return
    yield Over(transfer_method(request.param, streams=3))


def log_file(tmp_path: Path) -> io.TextIOWrapper:
    return (tmp_path / "transfer.log").open("a")


@pytest.mark.parametrize("size", [0, 1, 4096, 3 * 8 * MiB + 12_345])
def test_the_copy_is_byte_for_byte(method: Over, tmp_path: Path, size: int) -> None:
    source = tmp_path / "source.tar"
    source.write_bytes(os.urandom(size))
    target = tmp_path / "dest" / "2026" / ".source.tar.transfer"  # folders made as needed
    with log_file(tmp_path) as log:
        copied = method.copy(source, target, log)
    assert copied == size
    assert target.read_bytes() == source.read_bytes()
    assert (tmp_path / "transfer.log").read_text().strip()  # the method says what it did


def test_a_stale_partial_file_is_overwritten(method: Over, tmp_path: Path) -> None:
    source = tmp_path / "source.tar"
    source.write_bytes(os.urandom(100_000))
    target = tmp_path / ".source.tar.transfer"
    target.write_bytes(b"x" * 250_000)  # left longer by an earlier, killed copy
    with log_file(tmp_path) as log:
        method.copy(source, target, log)
    assert target.read_bytes() == source.read_bytes()


def test_a_missing_source_is_a_clear_error(method: Over, tmp_path: Path) -> None:
    with log_file(tmp_path) as log, pytest.raises(TransferError) as caught:
        method.copy(tmp_path / "nope.tar", tmp_path / "out", log)
    assert "nope.tar" in str(caught.value) or "transfer.log" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_an_unwritable_destination_is_a_clear_error(method: Over, tmp_path: Path) -> None:
    source = tmp_path / "source.tar"
    source.write_bytes(b"data")
    (tmp_path / "not-a-folder").write_bytes(b"a file where a folder should be")
    with log_file(tmp_path) as log, pytest.raises(TransferError):
        method.copy(source, tmp_path / "not-a-folder" / "out", log)


def test_the_local_copy_refuses_a_remote_destination(tmp_path: Path) -> None:
    source = tmp_path / "source.tar"
    source.write_bytes(b"data")
    with (
        log_file(tmp_path) as log,
        pytest.raises(TransferError, match="use rsync or bbcp") as caught,
    ):
        LocalCopy().copy(source, Destination(tmp_path / "out", host="cologne-dtn"), log)
    assert not caught.value.retryable


def test_rsync_goes_over_ssh_to_a_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(
        "ccat_hpc.transfer.methods.run_logged",
        lambda argv, log, timeout=None: seen.append(list(argv)),
    )
    source = tmp_path / "source.tar"
    source.write_bytes(b"data")
    Rsync().copy(source, Destination(Path("/buffer/x.tar"), host="dtn.cologne"), io.StringIO())
    (argv,) = seen
    assert argv[-2:] == [str(source), "dtn.cologne:/buffer/x.tar"]
    assert "--partial" in argv and argv[argv.index("-e") : argv.index("-e") + 2] == [
        "-e",
        "ssh -o BatchMode=yes",
    ]


def test_bbcp_where_it_is_not_installed_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TransferError, match="bbcp is not installed") as caught:
        Bbcp().copy(tmp_path / "x", Destination(tmp_path / "y"), io.StringIO())
    assert not caught.value.retryable


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(
        TransferError, match="unknown transfer method 'ftp'; known: copy, rsync, bbcp"
    ):
        transfer_method("ftp")


def test_a_failing_command_names_its_log(tmp_path: Path) -> None:
    with log_file(tmp_path) as log, pytest.raises(TransferError, match="exit status 3") as caught:
        run_logged(["sh", "-c", "echo broken pipe; exit 3"], log)
    assert str(tmp_path / "transfer.log") in str(caught.value)
    assert "broken pipe" in (tmp_path / "transfer.log").read_text()
