"""Process-level settings: where ops-db is. Pure functions; nothing is read at import time.

An ops-db URL is checked and taken apart here (without SQLAlchemy), %-decoded once:
``postgresql://``, ``postgres://`` and ``postgresql+psycopg://`` (psycopg 3),
``sqlite:///PATH`` (PATH %-decoded) or a bare path to a SQLite file (taken literally).
``DbUrl.render()`` writes it back with every part %-encoded, so the string handed on
(``CCAT_HPC_DB`` of a job task) parses to the same parts. No error here ever shows
the URL's password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote

from ccat_hpc.errors import ConfigError
from ccat_hpc.redact import redact_url, split_scheme, userinfo_end
from ccat_hpc.text import CONTROL_CHARACTERS

__all__ = [
    "DB_ENV_VAR",
    "DEFAULT_DB_FILE",
    "DbUrl",
    "normalize_db_url",
    "parse_db_url",
    "redact_url",
    "resolve_db_url",
]

DB_ENV_VAR = "CCAT_HPC_DB"
DEFAULT_DB_FILE = "ccat-hpc.sqlite"
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
POSTGRES_DRIVER = "postgresql+psycopg"
ACCEPTED = (
    "postgresql://USER:PASSWORD@HOST:PORT/DB (or postgres://, postgresql+psycopg://), "
    "sqlite:///PATH, or the path of a SQLite file"
)
ENCODE_HINT = (
    "%-encode the user name and password ('@' as %40, ':' as %3A, '/' as %2F, '?' as %3F, "
    "'#' as %23, '%' as %25), e.g. with python3 -c "
    "\"import getpass, urllib.parse; print(urllib.parse.quote(getpass.getpass(), safe=''))\""
)
PORT_RE = re.compile(r"[0-9]{1,5}")

Backend = Literal["postgresql", "sqlite"]


@dataclass(frozen=True)
class DbUrl:
    """A checked ops-db URL; every part %-decoded (what the driver gets)."""

    backend: Backend
    database: str | None = None  # SQLite: the absolute path of the file
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    query: tuple[tuple[str, str], ...] = ()

    @property
    def drivername(self) -> str:
        return POSTGRES_DRIVER if self.backend == "postgresql" else "sqlite"

    def render(self) -> str:
        """The URL as text, every part %-encoded: ``parse_db_url`` reads back the same."""
        if self.backend == "sqlite":
            return "sqlite:///" + quote(self.database or "", safe="/")
        return f"{POSTGRES_DRIVER}://{self._userinfo()}{self._hostport()}{self._path_query()}"

    def _userinfo(self) -> str:
        if self.username is None and self.password is None:
            return ""
        user = quote(self.username or "", safe="")
        password = "" if self.password is None else ":" + quote(self.password, safe="")
        return f"{user}{password}@"

    def _hostport(self) -> str:
        host = self.host or ""
        shown = f"[{host}]" if ":" in host else quote(host, safe="")
        return shown + (f":{self.port}" if self.port is not None else "")

    def _path_query(self) -> str:
        path = "" if self.database is None else "/" + quote(self.database, safe="")
        pairs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.query)
        return path + (f"?{pairs}" if pairs else "")


def _decode(text: str, what: str) -> str:
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ConfigError(f"the {what} in the ops-db URL is not valid %-encoded UTF-8") from None
    if "\x00" in decoded:
        raise ConfigError(f"the {what} in the ops-db URL holds a NUL character")
    return decoded


def _connection_part(text: str, what: str) -> str:
    """A %-decoded part of a PostgreSQL URL (no control characters)."""
    return _no_control(_decode(text, what), what)


def _no_control(text: str, what: str) -> str:
    """NUL and other control characters: a driver may cut the connection string there
    (and connect somewhere else), so they are refused (the text itself is not shown)."""
    if CONTROL_CHARACTERS.search(text):
        raise ConfigError(f"the {what} in the ops-db URL holds a NUL or control character")
    return text


def _absolute(path: Path, cwd: Path | None) -> str:
    return str(path if path.is_absolute() else (cwd or Path.cwd()) / path)


def _bare_path(text: str, cwd: Path | None) -> DbUrl:
    """A path typed as such: a SQLite file, its name taken literally."""
    if not text.startswith(("/", ".", "~")) and ":" in text.split("/", 1)[0]:
        raise ConfigError(
            "the ops-db setting looks like a URL without its scheme: write "
            f"{ACCEPTED}; for a SQLite file whose name has a ':', start the path with ./"
        )
    if "\x00" in text:
        raise ConfigError("the ops-db path holds a NUL character")
    expanded = os.path.expanduser(text) if text.startswith("~") else text
    return DbUrl("sqlite", database=_absolute(Path(expanded), cwd))


def _sqlite_url(body: str, cwd: Path | None) -> DbUrl:
    """``sqlite:///PATH``: PATH %-decoded; relative paths against ``cwd``."""
    if not body.startswith("/") or body == "/":
        raise ConfigError("a SQLite URL is sqlite:///PATH (three slashes, then the path)")
    if "?" in body:
        raise ConfigError(
            "a SQLite URL takes no ?options: write a '?' of the file name as %3F, "
            "or give the path alone"
        )
    return DbUrl("sqlite", database=_absolute(Path(_decode(body[1:], "path")), cwd))


def _split_userinfo(body: str) -> tuple[str | None, str]:
    try:
        at = userinfo_end(body)
    except ValueError:
        raise ConfigError(
            "the ops-db URL has more than one '@', or an '@' after a '/', '?' or '#': "
            f"{ENCODE_HINT}"
        ) from None
    return (None, body) if at is None else (body[:at], body[at + 1 :])


def _user_password(userinfo: str | None) -> tuple[str | None, str | None]:
    if userinfo is None:
        return None, None
    user, colon, password = userinfo.partition(":")
    username = _connection_part(user, "user name") or None
    return username, (_connection_part(password, "password") if colon else None)


def _host_port(hostport: str) -> tuple[str | None, int | None]:
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigError("the host of the ops-db URL has an unclosed '['")
        port_text = rest[1:] if rest else None
    else:
        encoded, colon, after = hostport.partition(":")
        host, port_text = _connection_part(encoded, "host"), (after if colon else None)
    return host or None, _port(port_text)


def _port(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not PORT_RE.fullmatch(text) or not 0 < int(text) < 65536:
        raise ConfigError("the port of the ops-db URL must be a number from 1 to 65535")
    return int(text)


def _query(text: str) -> tuple[tuple[str, str], ...]:
    try:
        pairs = tuple(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise ConfigError("the query of the ops-db URL is not valid %-encoded UTF-8") from None
    return tuple((_no_control(key, "query"), _no_control(value, "query")) for key, value in pairs)


def _postgres_url(body: str) -> DbUrl:
    userinfo, rest = _split_userinfo(body)
    username, password = _user_password(userinfo)
    location, _, query = rest.partition("?")
    hostport, slash, database = location.partition("/")
    host, port = _host_port(hostport)
    name = _connection_part(database, "database name") if slash and database else None
    return DbUrl("postgresql", name, username, password, host, port, _query(query))


def parse_db_url(text: str, cwd: Path | None = None) -> DbUrl:
    """Check and take apart what an operator gave as the ops-db URL or path."""
    if not text.strip():
        raise ConfigError(f"the ops-db URL is empty: give {ACCEPTED}")
    parts = split_scheme(text.strip())
    if parts is None:
        return _bare_path(text, cwd)  # literally: even spaces around it are part of the name
    scheme, body = parts[0].lower(), parts[1]
    if scheme == "sqlite":
        return _sqlite_url(body, cwd)
    if scheme in POSTGRES_SCHEMES:
        return _postgres_url(body)
    raise ConfigError(f"ops-db URL scheme {scheme!r} is not supported: give {ACCEPTED}")


def normalize_db_url(url: str, cwd: Path | None = None) -> str:
    """What an operator typed, checked and written as our canonical URL (see DbUrl.render)."""
    return parse_db_url(url, cwd).render()


def resolve_db_url(
    option: str | None, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> str:
    """The ops-db URL: ``--db`` wins, then ``$CCAT_HPC_DB``, then ./ccat-hpc.sqlite."""
    env = os.environ if environ is None else environ
    chosen = option or env.get(DB_ENV_VAR) or DEFAULT_DB_FILE
    return normalize_db_url(chosen, cwd)
