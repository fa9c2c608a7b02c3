"""``ccat-hpc db``: schema migrations of ops-db."""

from __future__ import annotations

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.config import redact_url
from ccat_hpc.db import migrate


@click.group()
def db() -> None:
    """Create and migrate the ops-db schema (alembic)."""


@db.command()
@click.argument("revision", default="head")
@pass_app
def upgrade(app: AppContext, revision: str) -> None:
    """Upgrade ops-db to REVISION (default: the newest)."""
    migrate.upgrade(app.engine(), revision)
    click.echo(f"ops-db at {redact_url(app.db_url)} is at {migrate.current_revision(app.engine())}")


@db.command()
@click.argument("revision")
@pass_app
def downgrade(app: AppContext, revision: str) -> None:
    """Downgrade ops-db to REVISION (-1 for one step, base for an empty database)."""
    migrate.downgrade(app.engine(), revision)
    click.echo(f"ops-db is at {migrate.current_revision(app.engine()) or 'base (empty)'}")


@db.command()
@pass_app
def current(app: AppContext) -> None:
    """Show the revision ops-db is at and whether it is the newest."""
    engine = app.engine()
    now, head = migrate.current_revision(engine), migrate.head_revision(engine)
    state = "up to date" if now == head else f"behind: newest is {head}"
    click.echo(f"{now or 'base (empty)'} ({state})")


@db.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@pass_app
def revision(app: AppContext, message: str) -> None:
    """Write a new migration from the difference between ops-db and the models."""
    migrate.autogenerate_revision(app.engine(), message)
