"""The alembic migrations build exactly the models' schema, on SQLite and PostgreSQL."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

import ccat_hpc.db.models  # noqa: F401
from ccat_hpc.db import migrate
from ccat_hpc.db.base import Base
from ccat_hpc.db.revision import SCHEMA_HEAD
from ccat_hpc.db.session import make_engine


def drift(engine) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_builds_the_models_schema_without_drift(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert drift(engine) == []
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert drift(engine) == []
    engine.dispose()


def test_expected_table_names_exist(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    for name in (
        "executed_obs_unit",
        "raw_data_file",
        "raw_data_file_physical_copy",
        "raw_data_package_physical_copy",
        "data_transfer_package_physical_copy",
        "data_location",
        "disk_data_location",
        "s3_data_location",
        "data_transfer_route",
        "long_term_archive_transfer_log",
        "staging_job",
        "api_token",
        "system_log",
    ):
        assert name in tables
    engine.dispose()


def test_identifier_names_fit_postgresql() -> None:
    names = [t.name for t in Base.metadata.tables.values()]
    for table in Base.metadata.tables.values():
        names += [str(c.name) for c in table.constraints if c.name]
        names += [str(i.name) for i in table.indexes]
    assert max(len(n) for n in names) <= 63


def test_schema_head_constant_is_the_newest_shipped_migration() -> None:
    scripts = ScriptDirectory(str(migrate.shipped_migrations_dir()))
    assert scripts.get_heads() == [SCHEMA_HEAD]


def test_alembic_never_sees_the_url(engine: Engine) -> None:
    config = migrate.alembic_config(engine)
    assert config.get_main_option("sqlalchemy.url") is None
    assert config.attributes["engine"] is engine


def test_downgrade_steps_and_revision_order(engine: Engine) -> None:
    chain = [s.revision for s in migrate.downgrade_steps(engine, "base")]
    assert chain[0] == SCHEMA_HEAD and chain[-1] == "0001" and len(chain) == len(set(chain))
    assert [s.revision for s in migrate.downgrade_steps(engine, "-1")] == [SCHEMA_HEAD]
    assert migrate.downgrade_steps(engine, SCHEMA_HEAD) == []
    assert [s.revision for s in migrate.downgrade_steps(engine, "0001")] == chain[:-1]
    assert all(step.doc for step in migrate.downgrade_steps(engine, "base"))
    for target in ("-99", "nosuch"):
        with pytest.raises(migrate.InvalidRevision):
            migrate.downgrade_steps(engine, target)
    assert migrate.is_older_revision("0001") and not migrate.is_older_revision(SCHEMA_HEAD)
    assert not migrate.is_older_revision("9f9f")


def test_sqlite_foreign_keys_are_on_again_after_migrating(tmp_path: Path) -> None:
    """Batch migrations run with foreign keys off on SQLite; the pooled connection is reset."""
    engine = make_engine(f"sqlite:///{tmp_path / 'fk.sqlite'}", pool_size=1, max_overflow=0)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
