"""``ccat-hpc catalog``: the observational catalog."""

from __future__ import annotations

from pathlib import Path

import click

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.inventory_cmds import echo_result, json_option
from ccat_hpc.db.session import transaction
from ccat_hpc.inventory.catalog import catalog_overview, render_catalog


@click.group()
def catalog() -> None:
    """Observatory, telescopes, instruments, sources, programs and obs units."""


@catalog.command("load")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@pass_app
def load(app: AppContext, file: Path | None) -> None:
    """Load FILE (default: the shipped FYST example catalog); loading twice changes nothing."""
    path = file or example_catalog_path()
    with transaction(app.sessions()) as session:
        report = load_catalog_file(session, path)
    click.echo(f"catalog {path.name}: {report.summary()}")


@catalog.command("list")
@json_option
@pass_app
def list_catalog(app: AppContext, as_json: bool) -> None:
    """Instruments with their modules, observing programs with their obs units, sources."""
    with transaction(app.sessions()) as session:
        overview = catalog_overview(session)
    echo_result(overview, render_catalog, as_json)
