"""Process-level settings: where ops-db is. Pure functions; nothing is read at import time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DB_ENV_VAR = "CCAT_HPC_DB"
DEFAULT_DB_FILE = "ccat-hpc.sqlite"


def normalize_db_url(url: str, cwd: Path | None = None) -> str:
    """Turn what an operator typed into a SQLAlchemy URL.

    ``postgresql://…`` and ``postgres://…`` use psycopg 3; a bare path (no ``://``)
    is a SQLite file, made absolute against ``cwd``.
    """
    url = url.strip()
    if "://" not in url:
        path = Path(url).expanduser()
        if not path.is_absolute():
            path = (cwd or Path.cwd()) / path
        return f"sqlite:///{path}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def resolve_db_url(
    option: str | None, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> str:
    """The ops-db URL: ``--db`` wins, then ``$CCAT_HPC_DB``, then ./ccat-hpc.sqlite."""
    env = os.environ if environ is None else environ
    chosen = option or env.get(DB_ENV_VAR) or DEFAULT_DB_FILE
    return normalize_db_url(chosen, cwd)


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
