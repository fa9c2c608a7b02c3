"""POSIX ustar headers and PAX extended headers, as bytes (pure functions).

Only what packages need: regular files, deterministic headers (owner normalised to
0/0, no user or group names), PAX records where ustar cannot say it: a name that
does not fit or is not ASCII, a size of 8 GiB or more, a sub-second mtime.
"""

from __future__ import annotations

BLOCK = 512
USTAR_MAX_SIZE = 0o77777777777  # 11 octal digits: 8 GiB - 1
USTAR_NAME_LIMIT = 100
USTAR_PREFIX_LIMIT = 155
#: The most header bytes one member can have: a PAX header and its records (a path of
#: 1,024 characters of up to 4 UTF-8 bytes, a size, an mtime), then the ustar header.
MAX_HEADER_SIZE = 8 * 1024


def padded(size: int) -> int:
    """``size`` rounded up to whole 512-byte blocks."""
    return -(-size // BLOCK) * BLOCK


def _octal(value: int, width: int) -> bytes:
    """A NUL-terminated zero-padded octal field of ``width`` bytes."""
    if not 0 <= value < 8 ** (width - 1):
        raise ValueError(f"{value} does not fit an octal field of {width} bytes")
    return b"%0*o\0" % (width - 1, value)


def _field(value: bytes, width: int) -> bytes:
    if len(value) > width:
        raise ValueError(f"{value!r} is longer than {width} bytes")
    return value.ljust(width, b"\0")


def split_name(name: str) -> tuple[str, str] | None:
    """(prefix, name) that fit ustar's fields for an ASCII ``name``, or None."""
    encoded = name.encode("utf-8")
    if len(encoded) != len(name):
        return None
    if len(name) <= USTAR_NAME_LIMIT:
        return "", name
    for index in range(len(name) - 1, 0, -1):
        if name[index] == "/":
            prefix, rest = name[:index], name[index + 1 :]
            if len(prefix) <= USTAR_PREFIX_LIMIT and 0 < len(rest) <= USTAR_NAME_LIMIT:
                return prefix, rest
    return None


#: The fields every header has the same: owner 0/0, and no link, user, group or device.
_OWNER = b"0000000\0" * 2
_LINK_TO_DEVICE = b"\0" * 100 + b"ustar\x0000" + b"\0" * 64 + b"0000000\0" * 2


def ustar_header(
    name: str, size: int, mtime: int, mode: int = 0o644, typeflag: bytes = b"0", prefix: str = ""
) -> bytes:
    """One 512-byte ustar header block."""
    fields = [
        _field(name.encode("utf-8"), 100),
        _octal(mode & 0o7777, 8),
        _OWNER,  # uid, gid
        _octal(size, 12),
        _octal(max(mtime, 0), 12),
        b" " * 8,  # checksum, computed below
        typeflag,
        _LINK_TO_DEVICE,  # linkname, magic "ustar\0", version "00", uname, gname, devices
        _field(prefix.encode("utf-8"), 155),
        b"\0" * 12,
    ]
    header = bytearray(b"".join(fields))
    checksum = sum(header)
    header[148:156] = f"{checksum:06o}".encode("ascii") + b"\0 "
    return bytes(header)


def pax_record(key: str, value: str) -> bytes:
    """One ``"LEN key=value\\n"`` record, LEN counting itself."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode("ascii") + body


def format_mtime(mtime_ns: int) -> str:
    """Seconds with the fraction that is really there (``1700000000.25``)."""
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    return f"{seconds}.{nanos:09d}".rstrip("0") if nanos else str(seconds)


def member_headers(name: str, size: int, mtime_ns: int, mode: int = 0o644) -> bytes:
    """The header blocks of one regular-file member: [PAX header + data,] ustar header."""
    records = []
    split = split_name(name)
    if split is None:
        records.append(pax_record("path", name))
    if size > USTAR_MAX_SIZE:
        records.append(pax_record("size", str(size)))
    if mtime_ns % 1_000_000_000:
        records.append(pax_record("mtime", format_mtime(mtime_ns)))
    prefix, short = split if split is not None else ("", _ascii_stub(name))
    main = ustar_header(
        short, 0 if size > USTAR_MAX_SIZE else size, mtime_ns // 1_000_000_000, mode, b"0", prefix
    )
    if not records:
        return main
    data = b"".join(records)
    pax = ustar_header(_ascii_stub(f"PaxHeaders/{name}"), len(data), mtime_ns // 10**9, 0o644, b"x")
    return pax + data.ljust(padded(len(data)), b"\0") + main


def _ascii_stub(name: str) -> str:
    """A stand-in ustar name for a name only PAX can carry (readers use the PAX path)."""
    stub = name.encode("ascii", "replace").decode("ascii")
    return stub[-USTAR_NAME_LIMIT:]


def end_of_archive() -> bytes:
    """Two zero blocks."""
    return b"\0" * (2 * BLOCK)
