"""Random damage to a real package: the reader fails cleanly, or reads what is really there.

For any change, verify, list and extract either succeed (verify only on an unchanged
package) or raise an EngineError, never another exception; and extract never leaves
anything outside its target folder, nor anything at all when it fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from ccat_hpc.engine.errors import EngineError
from ccat_hpc.engine.extract import extract_members
from ccat_hpc.engine.index import PackageIndex
from ccat_hpc.engine.reader import LocalFile, read_index
from ccat_hpc.engine.verify import verify_package
from tests.integration.test_package_attacks import (
    Built,
    Raw,
    build_small,
    render_index,
    replace_index,
)

T = TypeVar("T")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_small(tmp_path_factory.mktemp("fuzz"))


def outcome(work: Callable[[], T]) -> T | None:
    """``work()``, or None when it raised an EngineError (anything else propagates)."""
    try:
        return work()
    except EngineError:
        return None


def files_below(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if not path.is_dir()}


def check_reader(data: bytes, original: Built, unchanged: bool) -> None:
    with tempfile.TemporaryDirectory() as work:
        package = Path(work, "pkg.tar")
        package.write_bytes(data)
        box = Path(work, "box")
        box.mkdir()
        source = LocalFile(package)
        try:
            check_verify(source, original, unchanged)
            index = outcome(lambda: read_index(source))
            extracted = outcome(lambda: extract_members(source, ["src"], box / "to"))
        finally:
            source.close()
        check_extracted(box, extracted, index, data)


def check_verify(source: LocalFile, original: Built, unchanged: bool) -> None:
    if unchanged:
        assert verify_package(source).members == len(original.result.index.members)
    else:
        with pytest.raises(EngineError):
            verify_package(source)


def check_extracted(
    box: Path, extracted: list[Path] | None, index: PackageIndex | None, data: bytes
) -> None:
    if extracted is None:
        assert os.listdir(box) == []
        return
    assert os.listdir(box) == ["to"] and index is not None
    assert files_below(box / "to") == set(extracted)
    for entry in (m for m in index.members if m.name.startswith("src/")):
        content = (box / "to" / entry.name).read_bytes()
        assert content == data[entry.offset : entry.offset + entry.size]
        assert xxhash.xxh3_128_hexdigest(content) == entry.xxh3_128


changes = st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=4)
damage = st.one_of(
    changes.map(lambda c: ("change", c)),
    st.integers(1, 2**20).map(lambda n: ("cut", n)),
    st.binary(min_size=1, max_size=3000).map(lambda b: ("append", b)),
)


def damaged(data: bytes, how: tuple[str, Any]) -> bytes:
    kind, what = how
    if kind == "cut":
        return data[: -(what % len(data)) or None]
    if kind == "append":
        return data + bytes(what)
    changed = bytearray(data)
    for offset, value in what:
        changed[offset % len(data)] = value
    return bytes(changed)


@settings(max_examples=400, deadline=None)
@given(how=damage)
def test_random_damage_to_the_bytes(built: Built, how: tuple[str, Any]) -> None:
    data = damaged(built.data, how)
    check_reader(data, built, unchanged=data == built.data)


hostile = st.one_of(
    st.integers(-(2**70), -1),
    st.integers(2**63, 2**200),
    st.floats(),
    st.text(max_size=30),
    st.none(),
    st.booleans(),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(
        [Raw("1" * 5000), Raw("[" * 5000 + "]" * 5000), Raw("-0"), Raw("1E2"), Raw("-Infinity")]
    ),
)
member_key = st.sampled_from(["name", "offset", "size", "xxh3_128"])
top_key = st.sampled_from(["format", "version", "checksum_algorithm", "members"])
edits = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 4), member_key, hostile),
    st.tuples(st.just("drop"), st.integers(0, 4), member_key, st.none()),
    st.tuples(st.just("add"), st.integers(0, 4), st.text(min_size=1, max_size=8), hostile),
    st.tuples(st.just("set top"), st.just(0), top_key, hostile),
    st.tuples(st.just("drop top"), st.just(0), top_key, st.none()),
    st.tuples(st.just("replace member"), st.integers(0, 4), st.just(""), hostile),
)


def edited(document: dict[str, Any], edit: tuple[str, int, str, Any]) -> None:
    kind, number, key, value = edit
    if kind == "set top":
        document[key] = value
        return
    if kind == "drop top":
        document.pop(key, None)
        return
    members = document.get("members")
    if not isinstance(members, list) or number >= len(members):
        return
    if kind == "replace member":
        members[number] = value
    elif isinstance(members[number], dict) and kind == "drop":
        members[number].pop(key, None)
    elif isinstance(members[number], dict):
        members[number][key] = value


@settings(max_examples=300, deadline=None)
@given(changes=st.lists(edits, min_size=1, max_size=3))
def test_hostile_index_values(built: Built, changes: list[tuple[str, int, str, Any]]) -> None:
    document = built.index_document()
    for change in changes:
        edited(document, change)
    text = render_index(document)
    data = replace_index(built.data, built.result.index.header_offset, text)
    original = render_index(built.index_document())
    check_reader(data, built, unchanged=text == original)
