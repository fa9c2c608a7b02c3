"""``ccat-hpc db``: schema migrations of ops-db.

``db upgrade`` is the one command here that may create a SQLite ops-db. A downgrade
drops tables and their data: it says what and asks first (``--yes`` to skip the
question; without a terminal to ask, it refuses).
"""

from __future__ import annotations

import sys

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.db import migrate
from ccat_hpc.errors import UsageError


@click.group()
def db() -> None:
    """Create and migrate the ops-db schema (alembic)."""


@db.command()
@click.argument("revision", default="head")
@pass_app
def upgrade(app: AppContext, revision: str) -> None:
    """Upgrade ops-db to REVISION (default: the newest); creates a SQLite ops-db."""
    engine = app.engine(create=True)
    migrate.upgrade(engine, revision)
    click.echo(f"ops-db at {app.shown_db_url()} is at {migrate.current_revision(engine)}")


def _describe(steps: list[migrate.Step]) -> str:
    return ", ".join(f"{step.revision} ({step.doc})" for step in steps)


def _can_ask() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _confirm(app: AppContext, revision: str, steps: list[migrate.Step]) -> None:
    """Ask before dropping data; refuse (one line, exit 2) when there is no one to ask."""
    what = f"undoes {_describe(steps)}: this drops the tables, columns and data they added"
    if not _can_ask():
        raise UsageError(f"db downgrade {revision} {what}; pass --yes to do it (no terminal)")
    click.confirm(
        f"Downgrading ops-db at {app.shown_db_url()} to {revision} {what}. Continue?",
        abort=True,
    )


@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("revision")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before dropping data.")
@pass_app
def downgrade(app: AppContext, revision: str, yes: bool) -> None:
    """Downgrade ops-db to REVISION: -1 (or -N) for one (N) step(s), base for none.

    Asks first, as it drops tables and data (--yes: do not ask).
    """
    if revision.startswith("--"):
        raise click.UsageError(f"no such option: {revision}")
    engine = app.engine()
    steps = migrate.downgrade_steps(engine, revision)
    if not steps:
        click.echo(
            f"ops-db is at {migrate.current_revision(engine) or 'base (empty)'}: nothing to undo"
        )
        return
    if not yes:
        _confirm(app, revision, steps)
    migrate.downgrade(engine, revision)
    click.echo(f"ops-db is at {migrate.current_revision(engine) or 'base (empty)'}")


@db.command()
@pass_app
def current(app: AppContext) -> None:
    """Show the revision ops-db is at and whether it is the newest."""
    engine = app.engine()
    now, head = migrate.current_revision(engine), migrate.head_revision()
    click.echo(f"{now or 'base (empty)'} ({_state(now, head)})")


def _state(now: str | None, head: str | None) -> str:
    if now == head:
        return "up to date"
    if now is None or head is None or migrate.is_older_revision(now, head):
        return f"behind: newest is {head}"
    return f"newer than this ccat-hpc, which knows up to {head}: upgrade ccat-hpc"


@db.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@pass_app
def revision(app: AppContext, message: str) -> None:
    """Write a new migration from the difference between ops-db and the models."""
    migrate.autogenerate_revision(app.engine(), message)
