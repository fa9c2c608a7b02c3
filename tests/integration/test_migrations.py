"""The alembic migrations build exactly the models' schema, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import ccat_hpc.db.models  # noqa: F401
from ccat_hpc.db import migrate
from ccat_hpc.db.base import Base
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
