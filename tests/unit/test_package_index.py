"""Reading an index and tar headers back: exactly what the builder writes, or a clear error."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccat_hpc.engine import index as index_module
from ccat_hpc.engine.errors import EngineError, InvalidPackage
from ccat_hpc.engine.index import INDEX_NAME, IndexEntry, index_template, parse_index
from ccat_hpc.engine.layout import MemberSpec, compute_layout
from ccat_hpc.engine.tarcheck import (
    TarEntry,
    check_canonical,
    check_index_header,
    header_checksum,
    read_header_region,
)
from ccat_hpc.engine.tarformat import (
    MAX_HEADER_SIZE,
    USTAR_MAX_SIZE,
    member_headers,
    padded,
    pax_record,
    ustar_header,
)

HASH = "0123456789abcdef" * 2
#: Three members laid out as the builder lays them out (one header block each).
MEMBERS = [("a.g3", 512, 1000), ("dir/b.g3", 2048, 0), ("c", 2560, 513)]
END = 2560 + 1024


def document() -> dict[str, Any]:
    members = [{"name": n, "offset": o, "size": s, "xxh3_128": HASH} for n, o, s in MEMBERS]
    head = {"format": "ccat-package-index", "version": 1, "checksum_algorithm": "xxh3_128"}
    return {**head, "members": members}


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes the builder writes for ``doc`` (whose values must be well-formed)."""
    members = doc["members"]
    template = index_template([(m["name"], m["size"], m["offset"]) for m in members])
    return template.fill([m["xxh3_128"] for m in members])


def test_the_builders_index_is_accepted() -> None:
    parsed = parse_index(canonical(document()), END)
    assert parsed.members == tuple(IndexEntry(n, o, s, HASH) for n, o, s in MEMBERS)
    assert parsed.package_size == END + 512 + padded(parsed.size) + 1024


def member(number: int, **values: object) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["members"][number].update(values)


def drop(number: int, key: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["members"][number].pop(key)


HOSTILE_DOCUMENTS: list[tuple[Callable[[dict[str, Any]], object], str]] = [
    (lambda doc: doc.update(format="other"), "not a ccat package index"),
    (lambda doc: doc.update(extra=1), "its index has the keys"),
    (lambda doc: doc.pop("checksum_algorithm"), "its index has the keys"),
    (lambda doc: doc.update(version=2), "index version 2 is not version 1"),
    (lambda doc: doc.update(version="1"), "index version '1' is not"),
    (lambda doc: doc.update(version=True), "index version true is not"),
    (lambda doc: doc.update(checksum_algorithm="md5"), "index checksums are 'md5'"),
    (lambda doc: doc.update(members={"a": 1}), "its index members are not a list"),
    (lambda doc: doc["members"].append([1, 2]), "index entry 3 is not an object of"),
    (lambda doc: doc["members"].append("a.g3"), "index entry 3 is not an object of"),
    (drop(1, "size"), "index entry 1 is not an object of"),
    (member(1, mode=0o644), "index entry 1 is not an object of"),
    (member(0, name=5), "index entry 0: the name is 5, not a string"),
    (member(0, name=None), "the name is null, not a string"),
    (member(0, name=["a"]), "the name is a list, not a string"),
    (member(0, name="/etc/passwd"), "unsafe member name '/etc/passwd'"),
    (member(0, name="a/../../b"), "unsafe member name"),
    (member(0, name=""), "unsafe member name ''"),
    (member(0, name=INDEX_NAME), "reserved for the package index"),
    (member(2, name="a.g3"), "member name 'a.g3' appears twice"),
    (member(2, name="a.g3/c"), "member 'a.g3' is also the folder of 'a.g3/c'"),
    (member(1, size=-1), "index entry 1: size must be a non-negative integer, not -1"),
    (member(1, offset=-2048), "offset must be a non-negative integer, not -2048"),
    (member(1, size="0"), "size must be a non-negative integer, not '0'"),
    (member(1, size=False), "size must be a non-negative integer, not false"),
    (member(1, offset=None), "offset must be a non-negative integer, not null"),
    (member(1, offset={"a": 1}), "not an object"),
    (member(0, xxh3_128=HASH.upper()), "xxh3_128 is '0123456789ABCDEF"),
    (member(0, xxh3_128=HASH[:-1]), "index entry 0 ('a.g3'): xxh3_128 is"),
    (member(0, xxh3_128=12), "xxh3_128 is 12"),
    (member(1, offset=1024), "'dir/b.g3' starts at byte 1024, before the member ahead"),
    (member(2, offset=1536), "index ranges overlap or are out of order"),
    (member(0, offset=256), "'a.g3' has 256 bytes of header space before it"),
    (member(0, offset=700), "has 700 bytes of header space"),
    (member(0, offset=512 + 8192), "has 8704 bytes of header space"),
    (member(2, size=1025), "the 3 members its index lists end at byte 4096"),
    (lambda doc: doc["members"].pop(), "the 2 members its index lists end at byte 2048"),
    (lambda doc: doc.update(members=[]), "the 0 members its index lists end at byte 0"),
]


@pytest.mark.parametrize(("change", "problem"), HOSTILE_DOCUMENTS)
def test_hostile_index_values(change: Callable[[dict[str, Any]], object], problem: str) -> None:
    doc = document()
    change(doc)
    data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    with pytest.raises(InvalidPackage) as raised:
        parse_index(data, END)
    assert str(raised.value).startswith("not a valid ccat package: ")
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b'{"format":', "its index is unreadable"),
        (b"\xff\xfe{}", "its index is not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "its index is nested too deeply"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "its index is nested too deeply"),
        (b"1" * 5000, "a number of 5000 digits"),
        (b'{"version":12345678901234567890}', "a number of 20 digits"),
        (b'{"version":1.0}', "1.0 is not an integer"),
        (b'{"version":1e400}', "1e400 is not an integer"),
        (b'{"version":NaN}', "NaN is not an integer"),
        (b'{"version":-Infinity}', "-Infinity is not an integer"),
        (b"null", "not a ccat package index"),
    ],
)
def test_unreadable_index_text(text: bytes, problem: str) -> None:
    with pytest.raises(InvalidPackage, match="not a valid ccat package") as raised:
        parse_index(text, END)
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda data: data.replace(b'"version":1,', b'"version": 1,'),
        lambda data: data.replace(b"\n", b"\r\n"),
        lambda data: data.rstrip(b"\n"),
        lambda data: data.replace(b'"name":"a.g3","offset":512', b'"offset":512,"name":"a.g3"'),
        lambda data: data.replace(b'"a.g3"', b'"a\\u002eg3"'),
        lambda data: data.replace(b'"dir/b.g3"', b'"dir\\/b.g3"'),
        lambda data: data.replace(b'"offset":512', b'"offset":512,"offset":512'),
    ],
)
def test_an_index_not_written_the_builders_way(rewrite: Callable[[bytes], bytes]) -> None:
    data = canonical(document())
    changed = rewrite(data)
    assert changed != data and json.loads(changed)["members"][0]["name"] == "a.g3"
    with pytest.raises(InvalidPackage, match="not written the way ccat-hpc writes one"):
        parse_index(changed, END)


def test_an_index_larger_than_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    data = canonical(document())
    monkeypatch.setattr(index_module, "MAX_INDEX_SIZE", len(data) - 1)
    with pytest.raises(InvalidPackage, match=f"larger than {len(data) - 1} bytes"):
        parse_index(data, END)


def test_the_builder_refuses_an_index_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from ccat_hpc.engine import layout

    monkeypatch.setattr(layout, "MAX_INDEX_SIZE", 1000)
    assert compute_layout([MemberSpec(f"f{i}", 1) for i in range(5)]).index.size < 1000
    with pytest.raises(EngineError, match="split them into several packages"):
        compute_layout([MemberSpec(f"f{i}", 1) for i in range(20)])


specs = st.builds(
    MemberSpec,
    name=st.lists(
        st.text(alphabet="abZ09_-.äü€😀", min_size=1, max_size=60).filter(
            lambda p: p not in (".", "..")
        ),
        min_size=1,
        max_size=20,
    )
    .map("/".join)
    .filter(lambda n: len(n) <= 1024),
    size=st.one_of(st.integers(0, 5000), st.integers(USTAR_MAX_SIZE - 2, 2**45)),
    mtime_ns=st.integers(-(10**18), 8**11 * 10**9 - 1),
    mode=st.integers(0, 0o7777),
)


@settings(max_examples=300, deadline=None)
@given(specs)
def test_every_header_the_builder_writes_reads_back(spec: MemberSpec) -> None:
    region = member_headers(spec.name, spec.size, spec.mtime_ns, spec.mode)
    entry = read_header_region(region, "member")
    assert (entry.name, entry.size, entry.mode) == (spec.name, spec.size, spec.mode)
    check_canonical(region, entry, "member")
    assert len(region) <= MAX_HEADER_SIZE


def with_checksum(block: bytes | bytearray) -> bytes:
    fixed = bytearray(block)
    fixed[148:156] = f"{header_checksum(fixed):06o}".encode() + b"\0 "
    return bytes(fixed)


def pax_region(records: bytes, main: bytes | None = None) -> bytes:
    """A PAX header with ``records``, then ``main`` (a plain ustar header by default)."""
    pax = ustar_header("PaxHeaders/x", len(records), 0, 0o644, b"x")
    main = ustar_header("x", 4, 0) if main is None else main
    return pax + records.ljust(padded(len(records)), b"\0") + main


@pytest.mark.parametrize(
    ("region", "problem"),
    [
        (bytes(512), "a zero block where a tar header should be"),
        (ustar_header("x", 4, 0)[:300], "a tar header cut short"),
        (ustar_header("x", 4, 0) + bytes(512), "its headers take 512 bytes, but 1024 lie"),
        (
            pax_region(pax_record("linkpath", "/etc")),
            "unexpected or repeated PAX record 'linkpath'",
        ),
        (pax_region(pax_record("path", "a") * 2), "unexpected or repeated PAX record 'path'"),
        (pax_region(b"99 path=a\n"), "a malformed PAX record at byte 0"),
        (pax_region(b"0 path=a\n"), "a malformed PAX record"),
        (pax_region(b"9 path=a "), "a malformed PAX record"),
        (pax_region(b"8 patha\n"), "a PAX record that is not key=value"),
        (pax_region(b"10 path=\xff\n"), "a PAX record that is not key=value in UTF-8"),
        (pax_region(pax_record("size", "12a")), "PAX record size has the value '12a'"),
        (pax_region(pax_record("size", "1" * 30)), "PAX record size has the value"),
        (pax_region(pax_record("mtime", "1.0123456789")), "PAX record mtime has the value"),
        (pax_region(pax_record("path", "")), "PAX record path has the value ''"),
        (pax_region(b"", ustar_header("y", 0, 0, typeflag=b"x")), "extends another PAX header"),
        (pax_region(pax_record("path", "a"))[:1024], "its headers take 1536 bytes, but 1024"),
        (with_checksum(ustar_header("x", 4, 0)[:257] + bytes(255)), "not a POSIX ustar header"),
        (with_checksum(b"\xff\xfe" + ustar_header("x", 4, 0)[2:]), "name is not UTF-8"),
    ],
)
def test_malformed_headers(region: bytes, problem: str) -> None:
    with pytest.raises(InvalidPackage, match="not a valid ccat package: member: ") as raised:
        read_header_region(region, "member")
    assert problem in str(raised.value)


@pytest.mark.parametrize(("field", "width"), [(100, 8), (124, 12), (136, 12), (148, 8)])
def test_non_octal_numeric_fields(field: int, width: int) -> None:
    block = bytearray(ustar_header("x", 4, 0))
    block[field : field + width] = b"12 9".ljust(width, b"\0")
    fixed = with_checksum(block) if field != 148 else bytes(block)
    with pytest.raises(InvalidPackage, match="field is not an octal number"):
        read_header_region(fixed, "member")


def test_a_pax_mtime_reads_back_to_the_nanosecond() -> None:
    for mtime_ns in (1_700_000_000_250_000_000, -1_500_000_000, 1, -(10**9) + 1):
        region = member_headers("m", 1, mtime_ns)
        assert read_header_region(region, "m").mtime_ns == mtime_ns


def test_headers_not_written_the_builders_way() -> None:
    region = bytearray(member_headers("m.g3", 10, 1_700_000_000 * 10**9))
    region[265:269] = b"root"  # uname
    entry = read_header_region(with_checksum(region), "m")
    with pytest.raises(InvalidPackage, match="not written the way ccat-hpc writes them"):
        check_canonical(with_checksum(region), entry, "m")
    huge = TarEntry("s", 1, 8**12 * 10**9, 0o644)  # an mtime no header can hold
    with pytest.raises(InvalidPackage, match="not written the way"):
        check_canonical(ustar_header("s", 1, 0), huge, "s")


def test_the_index_header() -> None:
    header = member_headers(INDEX_NAME, 700, 1_700_000_000 * 10**9)
    check_index_header(header, 700, "index")
    with pytest.raises(InvalidPackage, match="gives 700 bytes, but 701 bytes of index follow"):
        check_index_header(header, 701, "index")
    with pytest.raises(InvalidPackage, match="not written the way"):
        check_index_header(member_headers(INDEX_NAME, 700, 0, 0o600), 700, "index")
    with pytest.raises(InvalidPackage, match=r"the last member is 'x\.json', not the index"):
        check_index_header(member_headers("x.json", 700, 0), 700, "index")
