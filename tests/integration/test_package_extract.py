"""Extracting and listing packages: folders of members, all or nothing, never outside --to."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ccat_hpc.engine.build import build_package
from ccat_hpc.engine.errors import EngineError, PackageCorrupt, UnsafeMemberName
from ccat_hpc.engine.extract import extract_members
from ccat_hpc.engine.reader import TAIL_WINDOW, LocalFile, RangeSource, read_index
from ccat_hpc.engine.sources import specs_from_folders
from tests.integration.test_cli import InProcess, one_line_error
from tests.integration.test_package_attacks import Built, CountingSource, build_small

OBS = ["src/obs/a.g3", "src/obs/b.g3"]


@pytest.fixture
def small(tmp_path: Path) -> Built:
    return build_small(tmp_path / "package")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


def extract(small: Built, names: list[str], folder: Path) -> list[Path]:
    source = LocalFile(small.path)
    try:
        return extract_members(source, names, folder)
    finally:
        source.close()


def tree(folder: Path) -> list[str]:
    """Everything below ``folder`` (links not followed), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def corrupt(small: Built, name: str) -> None:
    entry = small.entry(name)
    data = bytearray(small.data)
    data[entry.offset] ^= 0xFF
    small.path.write_bytes(bytes(data))


def test_a_folder_prefix_extracts_every_member_below_it(small: Built, tmp_path: Path) -> None:
    for request in ("src/obs", "src/obs/"):
        to = tmp_path / request.replace("/", "_")
        assert extract(small, [request], to) == [to / name for name in OBS]
        for name in OBS:
            assert (to / name).read_bytes() == (small.src / name[4:]).read_bytes()
        assert tree(to) == ["src", "src/obs", *OBS]
    everything = extract(small, ["src", "src/obs/a.g3"], tmp_path / "all")
    assert (
        len(everything) == 5 and (tmp_path / "all/src/Überblick.g3").read_bytes() == b"utf-8 name"
    )


def test_unknown_or_unsafe_requests_fail_before_anything_is_written(
    small: Built, tmp_path: Path, cli: InProcess
) -> None:
    to = tmp_path / "to"
    with pytest.raises(EngineError, match="no such member"):
        extract(small, ["src/ob", "src/obs/a.g3"], to)
    for unsafe in ("../src/obs/a.g3", "/src", "src/../src/obs", "/"):
        with pytest.raises(UnsafeMemberName):
            extract(small, [unsafe], to)
    assert not to.exists()
    result = cli(None, "package", "extract", str(small.path), "src/ob", "--to", str(to))
    assert result.returncode == 7 and one_line_error(result) == "error: no such member(s): src/ob"


def test_the_target_folder_is_created_and_removed_again_on_failure(
    small: Built, tmp_path: Path, cli: InProcess
) -> None:
    to = tmp_path / "new" / "deeper" / "to"
    result = cli(None, "package", "extract", str(small.path), "src/obs", "--to", str(to))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(to / name) for name in OBS]
    corrupt(small, "src/obs/b.g3")
    other = tmp_path / "other" / "to"
    with pytest.raises(PackageCorrupt, match=r"'src/obs/b\.g3' does not match its recorded"):
        extract(small, ["src/obs"], other)
    assert not (tmp_path / "other").exists()


def test_a_failed_multi_member_extract_leaves_nothing_behind(
    small: Built, tmp_path: Path, cli: InProcess
) -> None:
    corrupt(small, "src/obs/b.g3")
    to = tmp_path / "to"
    to.mkdir()
    (to / "kept.txt").write_text("was here before")
    with pytest.raises(PackageCorrupt):
        extract(small, ["src/Überblick.g3", *OBS], to)
    assert tree(to) == ["kept.txt"]
    result = cli(None, "package", "extract", str(small.path), *OBS, "--to", str(to))
    assert result.returncode == 7 and "does not match its recorded" in one_line_error(result)
    assert tree(to) == ["kept.txt"] and result.stdout == ""


def test_a_folder_in_the_way_fails_before_any_member_is_renamed(
    small: Built, tmp_path: Path
) -> None:
    to = tmp_path / "to"
    (to / "src/obs/b.g3").mkdir(parents=True)
    with pytest.raises(EngineError, match=r"b\.g3: a folder of that name is in the way"):
        extract(small, OBS, to)
    assert tree(to) == ["src", "src/obs", "src/obs/b.g3"]


class Interrupting:
    """A source that is interrupted (Ctrl-C) after ``reads`` member reads."""

    def __init__(self, inner: RangeSource, reads: int) -> None:
        self.inner, self.reads = inner, reads

    def size(self) -> int:
        return self.inner.size()

    def read(self, offset: int, length: int) -> bytes:
        return self.inner.read(offset, length)

    def read_into(self, offset: int, view: memoryview) -> None:
        self.reads -= 1
        if self.reads < 0:
            raise KeyboardInterrupt
        self.inner.read_into(offset, view)

    def close(self) -> None:
        self.inner.close()


def test_an_interrupted_extract_leaves_nothing_behind(small: Built, tmp_path: Path) -> None:
    source = Interrupting(LocalFile(small.path), reads=1)
    with pytest.raises(KeyboardInterrupt):
        extract_members(source, OBS, tmp_path / "to")
    source.close()
    assert not (tmp_path / "to").exists()


def outside(tmp_path: Path) -> Path:
    """A folder beside the target, with one file an attacker would like overwritten."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim").write_text("precious")
    return folder


@pytest.mark.parametrize("link_to", ["victim", "new-file"])
def test_a_link_planted_where_a_partial_file_might_go_is_never_written_through(
    small: Built, tmp_path: Path, cli: InProcess, link_to: str
) -> None:
    away = outside(tmp_path)
    to = tmp_path / "to"
    (to / "src/obs").mkdir(parents=True)
    (to / "src/obs/.a.g3.partial").symlink_to(away / link_to)
    extract(small, ["src/obs/a.g3"], to)
    result = cli(None, "package", "extract", str(small.path), "src/obs", "--to", str(to))
    assert result.returncode == 0, result.stderr
    assert tree(away) == ["victim"] and (away / "victim").read_text() == "precious"
    assert (to / "src/obs/.a.g3.partial").is_symlink()  # left as it was
    assert (to / "src/obs/a.g3").read_bytes() == (small.src / "obs/a.g3").read_bytes()


@pytest.mark.parametrize("folder", ["src", "src/obs"])
def test_a_link_planted_at_a_member_folder_is_refused(
    small: Built, tmp_path: Path, cli: InProcess, folder: str
) -> None:
    away = outside(tmp_path)
    to = tmp_path / "to"
    (to / folder).parent.mkdir(parents=True, exist_ok=True)
    (to / folder).symlink_to(away, target_is_directory=True)
    with pytest.raises(EngineError, match=f"{folder}: not a folder .a symbolic link or a file."):
        extract(small, ["src/obs/a.g3"], to)
    result = cli(None, "package", "extract", str(small.path), "src", "--to", str(to))
    assert result.returncode == 7 and "refusing to extract through it" in one_line_error(result)
    assert tree(away) == ["victim"] and (away / "victim").read_text() == "precious"


def test_a_file_where_a_member_folder_should_be_is_refused(small: Built, tmp_path: Path) -> None:
    to = tmp_path / "to"
    to.mkdir()
    (to / "src").write_text("a file")
    with pytest.raises(EngineError, match="src: not a folder"):
        extract(small, OBS, to)
    assert tree(to) == ["src"] and (to / "src").read_text() == "a file"


def test_a_link_at_the_final_name_is_replaced_not_followed(small: Built, tmp_path: Path) -> None:
    away = outside(tmp_path)
    to = tmp_path / "to"
    (to / "src/obs").mkdir(parents=True)
    (to / "src/obs/a.g3").symlink_to(away / "victim")
    [path] = extract(small, ["src/obs/a.g3"], to)
    assert not path.is_symlink() and path.read_bytes() == (small.src / "obs/a.g3").read_bytes()
    assert (away / "victim").read_text() == "precious"


def test_a_users_file_named_like_a_partial_is_never_touched(small: Built, tmp_path: Path) -> None:
    to = tmp_path / "to"
    (to / "src/obs").mkdir(parents=True)
    (to / "src/obs/.a.g3.partial").write_bytes(b"the user's own")
    extract(small, ["src/obs/a.g3"], to)
    assert (to / "src/obs/.a.g3.partial").read_bytes() == b"the user's own"
    assert tree(to) == ["src", "src/obs", "src/obs/.a.g3.partial", "src/obs/a.g3"]


def test_members_named_like_partial_files_are_extracted_byte_exact(tmp_path: Path) -> None:
    src = tmp_path / "src" / "d"
    src.mkdir(parents=True)
    (src / "foo").write_bytes(b"I am foo")
    (src / ".foo.partial").write_bytes(b"I am the dotfile")
    package = tmp_path / "p.tar"
    build_package(specs_from_folders([tmp_path / "src"]), package)
    source = LocalFile(package)
    try:
        paths = extract_members(source, ["src/d"], tmp_path / "out")
    finally:
        source.close()
    assert {p.name: p.read_bytes() for p in paths} == {
        "foo": b"I am foo",
        ".foo.partial": b"I am the dotfile",
    }
    assert sorted(p.name for p in (tmp_path / "out/src/d").iterdir()) == [".foo.partial", "foo"]


# --- list ---------------------------------------------------------------------------


def test_list_reads_only_the_index(small: Built, cli: InProcess) -> None:
    for name in OBS:
        corrupt(small, name)
        small = Built(small.path, small.result, small.src, small.path.read_bytes())
    result = cli(None, "package", "list", str(small.path))
    assert result.returncode == 0, result.stderr
    expected = [f"{m.name}\t{m.size}\t{m.offset}\t{m.xxh3_128}" for m in small.result.index.members]
    assert result.stdout.splitlines() == expected
    as_json = cli(None, "package", "list", "--json", str(small.path))
    assert json.loads(as_json.stdout) == [m.as_json() for m in small.result.index.members]


def test_finding_the_index_reads_the_end_of_a_package_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    (src / "small.txt").write_bytes(b"small")
    package = tmp_path / "pkg.tar"
    built = build_package(specs_from_folders([src]), package)
    source = CountingSource(LocalFile(package))
    assert read_index(source) == built.index
    source.close()
    assert source.bytes_read <= TAIL_WINDOW + 2 * (
        package.stat().st_size - built.index.header_offset
    )


def test_list_of_a_file_that_is_no_package(tmp_path: Path, cli: InProcess) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("just text\n" * 100)
    result = cli(None, "package", "list", str(other))
    assert result.returncode == 7
    assert one_line_error(result).startswith("error: not a valid ccat package: its size")


# --- build ----------------------------------------------------------------------------


def test_build_into_a_missing_folder_is_a_clear_error(
    small: Built, tmp_path: Path, cli: InProcess
) -> None:
    out = tmp_path / "missing" / "pkg.tar"
    result = cli(None, "package", "build", str(small.src), "-o", str(out))
    assert result.returncode == 7
    assert one_line_error(result) == f"error: {out}: its folder {out.parent} does not exist"
    assert not out.parent.exists()
    assert os.listdir(tmp_path) == ["package"]


def test_build_refuses_a_link_planted_at_its_partial_name(
    small: Built, tmp_path: Path, cli: InProcess
) -> None:
    away = outside(tmp_path)
    out = tmp_path / "pkg.tar"
    (tmp_path / ".pkg.tar.partial").symlink_to(away / "victim")
    result = cli(None, "package", "build", str(small.src), "-o", str(out))
    assert result.returncode == 7
    assert one_line_error(result).endswith(
        ".pkg.tar.partial is in the way: Too many levels of symbolic links"
    )
    assert (away / "victim").read_text() == "precious" and not out.exists()


def test_a_source_file_whose_name_is_not_utf8_is_refused(tmp_path: Path, cli: InProcess) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / os.fsdecode(b"a\xffb")).write_bytes(b"hi")
    result = cli(None, "package", "build", str(src), "-o", str(tmp_path / "p.tar"))
    assert result.returncode == 7 and "is not UTF-8 text" in one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
