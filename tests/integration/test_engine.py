"""Building, verifying and reading packages for real: GNU tar, xxh128sum, failures, kills."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import xxhash

from ccat_hpc.engine.build import abandon, build_package, create_partial, partial_path, publish
from ccat_hpc.engine.errors import (
    ChecksumMismatch,
    EngineError,
    PackageCorrupt,
    SourceChanged,
    UnsafeMemberName,
)
from ccat_hpc.engine.extract import extract_members
from ccat_hpc.engine.layout import MemberSpec, compute_layout
from ccat_hpc.engine.reader import LocalFile, read_index
from ccat_hpc.engine.sources import specs_from_folders
from ccat_hpc.engine.tarformat import USTAR_MAX_SIZE
from ccat_hpc.engine.verify import verify_package
from tests.conftest import _require


def make_tree(root: Path) -> Path:
    """A mix of small, empty, large, deeply nested, long- and UTF-8-named files."""
    src = root / "src"
    (src / "small").mkdir(parents=True)
    for i in range(40):
        (src / "small" / f"f{i:03d}.g3").write_bytes(os.urandom(i * 97))
    (src / "empty.g3").write_bytes(b"")
    (src / "large.g3").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    deep = src / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / ("f" * 120 + ".g3")).write_bytes(b"long name")
    (src / "Überblick-ñ-€.g3").write_bytes(b"utf-8 name")
    return src


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if _require("tools"):
            pytest.fail(f"{name} is not installed")
        pytest.skip(f"{name} is not installed")
    return found


def test_gnu_tar_and_xxh128sum_agree(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    out = tmp_path / "pkg.tar"
    result = build_package(specs_from_folders([src]), out, chunk_size=64 * 1024)
    listing = subprocess.run(["tar", "-tf", str(out)], capture_output=True, text=True, check=True)
    names = listing.stdout.splitlines()
    assert len(names) == 45 and names[-1] == ".ccat-package-index.json"
    target = tmp_path / "gnu"
    target.mkdir()
    subprocess.run(["tar", "-xf", str(out), "-C", str(target)], check=True)
    assert subprocess.run(["diff", "-r", str(src), str(target / "src")]).returncode == 0
    with tarfile.open(out) as archive:
        assert archive.extractfile("src/large.g3").read() == (src / "large.g3").read_bytes()  # type: ignore[union-attr]
    xxh = subprocess.run([tool("xxh128sum"), str(out)], capture_output=True, text=True, check=True)
    assert xxh.stdout.split()[0] == result.xxh3_128
    index = {m.name: m for m in result.index.members}
    large = index["src/large.g3"]
    assert large.xxh3_128 == xxhash.xxh3_128_hexdigest((src / "large.g3").read_bytes())
    with out.open("rb") as handle:
        handle.seek(large.offset)
        assert handle.read(large.size) == (src / "large.g3").read_bytes()


def test_same_input_gives_identical_bytes_for_any_chunking(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    specs = specs_from_folders([src])
    sums = {
        build_package(specs, tmp_path / f"p{size}.tar", chunk_size=size).xxh3_128
        for size in (512, 64 * 1024, 8 * 1024 * 1024)
    }
    assert len(sums) == 1
    a, b = (tmp_path / "p512.tar").read_bytes(), (tmp_path / f"p{8 * 1024 * 1024}.tar").read_bytes()
    assert a == b


def test_verify_and_extract_by_index(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    out = tmp_path / "pkg.tar"
    result = build_package(specs_from_folders([src]), out)
    source = LocalFile(out)
    report = verify_package(source, result.xxh3_128, chunk_size=4096)
    assert report.members == 44 and report.xxh3_128 == result.xxh3_128
    assert read_index(source) == result.index
    name = "src/Überblick-ñ-€.g3"
    [path] = extract_members(source, [name], tmp_path / "x")
    assert path.read_bytes() == (src / "Überblick-ñ-€.g3").read_bytes()
    with pytest.raises(EngineError, match="no such member"):
        extract_members(source, ["src/nope"], tmp_path / "x")
    with pytest.raises(UnsafeMemberName):
        extract_members(source, ["../src/large.g3"], tmp_path / "x")
    with pytest.raises(PackageCorrupt, match="expected"):
        verify_package(source, "0" * 32)
    source.close()


def test_corruption_is_found_and_named(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    out = tmp_path / "pkg.tar"
    result = build_package(specs_from_folders([src]), out)
    large = next(m for m in result.index.members if m.name == "src/large.g3")
    with out.open("r+b") as handle:
        handle.seek(large.offset + 1000)
        handle.write(b"\xff\xfe")
    source = LocalFile(out)
    with pytest.raises(PackageCorrupt, match=r"src/large\.g3"):
        verify_package(source)
    with pytest.raises(PackageCorrupt, match="does not match its recorded"):
        extract_members(source, ["src/large.g3"], tmp_path / "x")
    assert not (tmp_path / "x/src/large.g3").exists()
    source.close()


def test_checksum_mismatch_fails_the_package_and_names_the_file(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    specs = specs_from_folders([src])
    bad = specs[3]
    specs[3] = MemberSpec(bad.name, bad.size, bad.mtime_ns, bad.mode, bad.source, "1" * 32)
    out = tmp_path / "pkg.tar"
    with pytest.raises(ChecksumMismatch, match=bad.source):
        build_package(specs, out)
    assert not out.exists() and not partial_path(out).exists()


def test_file_changing_size_or_vanishing_fails_cleanly(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    specs = specs_from_folders([src])
    (src / "large.g3").write_bytes(b"shorter now")
    out = tmp_path / "pkg.tar"
    with pytest.raises(SourceChanged, match=r"large\.g3: changed since it was listed"):
        build_package(specs, out)
    assert not out.exists() and not partial_path(out).exists()
    specs = specs_from_folders([src])
    (src / "empty.g3").unlink()
    with pytest.raises(SourceChanged, match=r"empty\.g3: cannot open"):
        build_package(specs, out)
    assert not out.exists() and not partial_path(out).exists()


def test_unsafe_names_fail_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "pkg.tar"
    with pytest.raises(UnsafeMemberName):
        build_package([MemberSpec("../escape", 0, source=str(tmp_path))], out)
    assert list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs), so writes hit a full disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    small = tmp_path / "small-disk"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        yield small
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_disk_full_fails_with_a_clear_error(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    with small_disk(tmp_path) as small:
        with pytest.raises(EngineError, match=r"cannot reserve|disk full"):
            build_package(specs_from_folders([src]), small / "pkg.tar")
        assert list(small.iterdir()) == []


@contextlib.contextmanager
def blocking_opens(path: Path) -> Iterator[Callable[[], bool]]:
    """Hold a write lease on ``path``: a process opening it blocks until the lease is
    released (or /proc/sys/fs/lease-break-time passes), and ``tried()`` tells that one
    tried. A handshake with a running build: it is stopped exactly at that file."""
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)  # the kernel's notice of a break
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        yield lambda: fcntl.fcntl(fd, fcntl.F_GETLEASE) != fcntl.F_WRLCK
    finally:
        os.close(fd)
        signal.signal(signal.SIGIO, previous)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll until ``condition()`` holds (the timeout is generous: it only ends a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def big_sources(root: Path) -> Path:
    src = root / "src"
    src.mkdir()
    for i in range(4):
        (src / f"big{i}.bin").write_bytes(os.urandom(64 * 1024 * 1024))
    return src


def assert_stopped_midway(src: Path, out: Path) -> None:
    """The build got to big2.bin and no further: big0.bin is written, nothing is published."""
    assert not out.exists()
    layout = compute_layout(specs_from_folders([src]))
    first = layout.members[0]
    with partial_path(out).open("rb") as partial:
        partial.seek(first.data_offset)
        assert partial.read(first.size) == (src / "big0.bin").read_bytes()
        partial.seek(layout.members_end)
        assert partial.read(1024) == bytes(1024)  # the index is not written yet


def test_killed_build_leaves_nothing_under_the_final_name(tmp_path: Path) -> None:
    src = big_sources(tmp_path)
    out = tmp_path / "pkg.tar"
    command = [
        sys.executable,
        "-m",
        "ccat_hpc",
        "package",
        "build",
        str(src),
        "-o",
        str(out),
        "--buffer-size",
        "65536",
    ]
    with blocking_opens(src / "big2.bin") as tried:
        build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(tried, "the build to open big2.bin")
        assert_stopped_midway(src, out)
        build.send_signal(signal.SIGKILL)
        build.wait(10)
    assert not out.exists() and partial_path(out).exists()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert out.exists() and not partial_path(out).exists()
    checksum = rerun.stdout.split()[0]
    assert verify_package(LocalFile(out), checksum).members == 4


def test_a_second_build_of_the_same_package_fails_and_takes_nothing(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    out = tmp_path / "pkg.tar"
    running = create_partial(out, 4096)  # another build of pkg.tar is under way
    with pytest.raises(EngineError, match="another build of it is running"):
        build_package(specs_from_folders([src]), out)
    assert partial_path(out).exists() and not out.exists()
    abandon(running, out)
    assert not partial_path(out).exists()
    assert build_package(specs_from_folders([src]), out).size == out.stat().st_size


def test_a_build_never_publishes_or_removes_another_builds_partial(tmp_path: Path) -> None:
    out = tmp_path / "pkg.tar"
    orphan = create_partial(out, 4096)  # e.g. a rank left running after its launcher died
    partial_path(out).unlink()
    current = create_partial(out, 4096)
    with pytest.raises(EngineError, match="replaced by another build"):
        publish(orphan, out)
    abandon(orphan, out)
    assert not out.exists() and partial_path(out).exists()
    abandon(current, out)
    assert not partial_path(out).exists()


def test_member_over_8_gib_from_a_sparse_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    big = src / "sparse.bin"
    size = USTAR_MAX_SIZE + 4096 + 1
    with big.open("wb") as handle:
        handle.truncate(size)
        handle.seek(size - 5)
        handle.write(b"tail!")
    (src / "after.txt").write_bytes(b"after the big one")
    out = tmp_path / "pkg.tar"
    result = build_package(specs_from_folders([src]), out)
    listing = subprocess.run(["tar", "-tvf", str(out)], capture_output=True, text=True, check=True)
    assert str(size) in listing.stdout
    with tarfile.open(out) as archive:
        assert archive.getmember("src/sparse.bin").size == size
    index = {m.name: m for m in result.index.members}
    assert index["src/sparse.bin"].size == size
    source = LocalFile(out)
    assert source.read(index["src/sparse.bin"].offset + size - 5, 5) == b"tail!"
    [after] = extract_members(source, ["src/after.txt"], tmp_path / "x")
    assert after.read_bytes() == b"after the big one"
    source.close()
