"""Schema migrations with alembic, driven from Python (``ccat-hpc db …``)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from ccat_hpc.errors import ConfigError

MIGRATIONS_ENV_VAR = "CCAT_HPC_MIGRATIONS"


def migrations_dir() -> Path:
    """The alembic script folder: ``$CCAT_HPC_MIGRATIONS``, else the one shipped in the package."""
    override = os.environ.get(MIGRATIONS_ENV_VAR)
    shipped = Path(str(resources.files("ccat_hpc.db") / "migrations"))
    folder = Path(override) if override else shipped
    if not (folder / "env.py").is_file():
        raise ConfigError(
            f"alembic migrations not found at {folder} "
            f"(an incomplete install, or a wrong {MIGRATIONS_ENV_VAR})"
        )
    return folder


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def autogenerate_revision(engine: Engine, message: str) -> None:
    """Write a new revision with the difference between ops-db and the models."""
    command.revision(alembic_config(engine), message=message, autogenerate=True)
