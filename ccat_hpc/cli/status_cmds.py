"""``ccat-hpc status``: what ops-db holds, by state and location."""

from __future__ import annotations

import json

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.remote import api_options
from ccat_hpc.db.session import transaction
from ccat_hpc.status import collect_status, render_status


@click.command()
@api_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Counts of observations, files, packages, transfers and copies by state and location."""
    client = app.api_client()
    if client is not None:
        snapshot = client.get("/api/v1/status")
    else:
        with transaction(app.sessions()) as session:
            snapshot = collect_status(session)
    click.echo(json.dumps(snapshot, indent=2) if as_json else render_status(snapshot))
