"""Schema migrations with alembic, driven from Python (``ccat-hpc db …``).

alembic gets the engine itself (``Config.attributes["engine"]``), never the URL: its
Config is a ConfigParser, which would take the ``%`` of a %-encoded password for
interpolation, and the URL's password has no business there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Engine

from ccat_hpc.db.revision import SCHEMA_HEAD
from ccat_hpc.errors import ConfigError, UsageError

MIGRATIONS_ENV_VAR = "CCAT_HPC_MIGRATIONS"
RELATIVE_STEPS = re.compile(r"-([0-9]+)")


class InvalidRevision(UsageError):
    """A schema revision that does not exist or cannot be reached from where ops-db is."""


@dataclass(frozen=True)
class Step:
    """One revision a downgrade undoes."""

    revision: str
    doc: str


def migrations_dir() -> Path:
    """The alembic script folder: ``$CCAT_HPC_MIGRATIONS``, else the one shipped in the package."""
    override = os.environ.get(MIGRATIONS_ENV_VAR)
    folder = Path(override) if override else shipped_migrations_dir()
    if not (folder / "env.py").is_file():
        raise ConfigError(
            f"alembic migrations not found at {folder} "
            f"(an incomplete install, or a wrong {MIGRATIONS_ENV_VAR})"
        )
    return folder


def shipped_migrations_dir() -> Path:
    return Path(str(resources.files("ccat_hpc.db") / "migrations"))


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory(str(migrations_dir()))


@contextmanager
def _revision_errors(revision: str) -> Iterator[None]:
    """alembic's errors about a revision asked for become InvalidRevision (a usage error)."""
    try:
        yield
    except (CommandError, RevisionError) as exc:
        raise InvalidRevision(f"cannot migrate ops-db to {revision!r}: {exc}") from exc


def _run(action: Callable[[Config, str], None], engine: Engine, revision: str) -> None:
    with _revision_errors(revision):
        action(alembic_config(engine), revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(command.upgrade, engine, revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run(command.downgrade, engine, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine | None = None) -> str | None:
    """The newest revision of the migration scripts (``engine`` is not needed)."""
    return script_directory().get_current_head()


def is_older_revision(revision: str, than: str = SCHEMA_HEAD) -> bool:
    """Whether ``revision`` is one of the revisions below ``than`` (an ancestor)."""
    below = script_directory().iterate_revisions(than, "base")
    return any(script.revision == revision for script in below if script.revision != than)


def _chain_below(current: str | None) -> list[Step]:
    """The revisions from ``current`` down to the first, newest first."""
    if current is None:
        return []
    scripts = script_directory().iterate_revisions(current, "base")
    return [Step(script.revision, script.doc or "") for script in scripts]


def _steps_to(chain: list[Step], target: str) -> int:
    """How many revisions of ``chain`` a downgrade to ``target`` undoes."""
    relative = RELATIVE_STEPS.fullmatch(target)
    if target == "base":
        return len(chain)
    if relative is not None:
        count = int(relative.group(1))
        if count > len(chain):
            raise InvalidRevision(
                f"cannot downgrade by {target}: ops-db has {len(chain)} revision(s)"
            )
        return count
    found = script_directory().get_revision(target)
    ids = [step.revision for step in chain]
    if found is None or found.revision not in ids:
        raise InvalidRevision(f"{target!r} is not a revision at or below the current one")
    return ids.index(found.revision)


def downgrade_steps(engine: Engine, target: str) -> list[Step]:
    """The revisions ``downgrade(engine, target)`` undoes, newest first.

    ``target`` is a revision (or a unique start of one), ``-N`` or ``base``.
    """
    with _revision_errors(target):
        chain = _chain_below(current_revision(engine))
        return chain[: _steps_to(chain, target)]


def autogenerate_revision(engine: Engine, message: str) -> None:
    """Write a new revision with the difference between ops-db and the models."""
    command.revision(alembic_config(engine), message=message, autogenerate=True)
