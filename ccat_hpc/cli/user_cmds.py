"""``ccat-hpc user`` and ``ccat-hpc token``: who may use the REST API, and their tokens."""

from __future__ import annotations

import json

import click

from ccat_hpc.access.policy import ROLES, SCOPES
from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.db.session import transaction


@click.group()
def user() -> None:
    """Users of the REST API and their roles.

    \b
    Roles:
      instrument  files observations of its instrument (--instrument), reads
      scientist   reads; stages and releases its own requests, within its quota
      operator    everything but user administration
      admin       everything
    """


@user.command("add")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES))
@click.option("--instrument", metavar="NAME", help="The instrument an instrument user files for.")
@click.option("--email", default="")
@click.option("--full-name", default="")
@pass_app
def add_command(
    app: AppContext,
    username: str,
    roles: tuple[str, ...],
    instrument: str | None,
    email: str,
    full_name: str,
) -> None:
    """Add a user with one or more roles (--role, repeatable)."""
    from ccat_hpc.access.tokens import add_user

    with transaction(app.sessions()) as session:
        add_user(
            session, username, list(roles), instrument=instrument, email=email, full_name=full_name
        )
    click.echo(f"user {username}: {', '.join(sorted(roles))}")
    click.echo(f"  a token for it: ccat-hpc token create {username}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_users(app: AppContext, as_json: bool) -> None:
    """Every user, with roles, instrument and token count."""
    from ccat_hpc.access.tokens import user_rows

    with transaction(app.sessions()) as session:
        rows = user_rows(session)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        extra = f" ({row['instrument']})" if row["instrument"] else ""
        state = "" if row["active"] else "  deactivated"
        click.echo(
            f"{row['username']:<20} {','.join(row['roles']) or '-':<22}{extra} "
            f"{row['tokens']} token(s){state}"
        )


@click.group()
def token() -> None:
    """API tokens: made for a user, shown once, stored only as a hash.

    A token carries some or all of its user's scopes (--scope, repeatable; default
    all), expires after --days (90; --no-expiry: never), and is refused once revoked.
    Keep it in $CCAT_HPC_TOKEN or in a file only its owner can read.
    """


@token.command("create")
@click.argument("username")
@click.option("--name", default="", help="What the token is for (shown in listings).")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES))
@click.option(
    "--days", type=float, default=90.0, show_default=True, help="Lifetime (0.01 to 3650)."
)
@click.option("--no-expiry", is_flag=True, help="A token that never expires (a service's).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def create_command(
    app: AppContext,
    username: str,
    name: str,
    scopes: tuple[str, ...],
    days: float,
    no_expiry: bool,
    as_json: bool,
) -> None:
    """Make a token for USERNAME and print it: the only time it is shown."""
    from ccat_hpc.access.tokens import create_token

    with transaction(app.sessions()) as session:
        lifetime = None if no_expiry else days
        made = create_token(session, username, name=name, scopes=list(scopes), days=lifetime)
    expires = None if made.expires_at is None else made.expires_at.isoformat(timespec="seconds")
    if as_json:
        shown = {"token": made.token, "prefix": made.prefix, "scopes": made.scopes}
        click.echo(json.dumps(shown | {"expires_at": expires}))
        return
    click.echo(made.token)
    click.echo(
        f"token {made.prefix} for {username}: {', '.join(made.scopes)}; expires "
        f"{expires or 'never'}. It is shown this once: store it now.",
        err=True,
    )


@token.command("list")
@click.option("--user", "username", metavar="NAME", help="Only this user's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_tokens(app: AppContext, username: str | None, as_json: bool) -> None:
    """Tokens by prefix, with their user, scopes, expiry, last use and state."""
    from ccat_hpc.access.tokens import token_rows

    with transaction(app.sessions()) as session:
        rows = token_rows(session, username)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no token")
    for row in rows:
        click.echo(
            f"{row['prefix']}  {row['user']:<16} {row['state']:<8} "
            f"expires {row['expires_at'] or 'never'}  last used {row['last_used_at'] or '-'}  "
            f"{','.join(row['scopes'])}  {row['name']}"
        )


@token.command("revoke")
@click.argument("prefix")
@pass_app
def revoke_command(app: AppContext, prefix: str) -> None:
    """Revoke the token with this PREFIX (as `token list` shows it; the whole token
    works too): refused from now."""
    from ccat_hpc.access.tokens import revoke

    with transaction(app.sessions()) as session:
        row = revoke(session, prefix)
        shown = row.prefix
        when = row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "(earlier)"
    click.echo(f"token {shown} revoked at {when}")
