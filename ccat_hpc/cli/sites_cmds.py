"""``ccat-hpc sites``: load and list sites, data locations and routes."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.db.models import DataLocation, DataTransferRoute
from ccat_hpc.db.session import transaction
from ccat_hpc.sites.loader import (
    load_site_configs,
    read_site_configs,
    shipped_site_configs,
    shipped_site_configs_dir,
)

_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def sites() -> None:
    """Site configs: sites, data locations, routes, retention and Slurm profiles."""


@sites.command("load")
@click.argument("files", nargs=-1, type=_PATH)
@click.option("--shipped", is_flag=True, help="Also load the shipped chile.yaml and cologne.yaml.")
@click.option("--check", is_flag=True, help="Only validate the files; change nothing.")
@pass_app
def load(app: AppContext, files: tuple[Path, ...], shipped: bool, check: bool) -> None:
    """Validate FILES and create or update what they describe (loading twice changes nothing)."""
    paths = [*shipped_site_configs(), *files] if shipped else list(files)
    if not paths:
        raise click.UsageError("give site config FILES, or --shipped")
    loaded = read_site_configs(paths)
    if check:
        click.echo(f"{len(loaded)} site config(s) valid")
        return
    with transaction(app.sessions()) as session:
        report = load_site_configs(session, loaded)
    click.echo(f"sites loaded from {len(loaded)} file(s): {report.summary()}")


@sites.command("shipped")
@click.option("--dir", "as_dir", is_flag=True, help="Print only the folder.")
def shipped_command(as_dir: bool) -> None:
    """Where the site configs shipped with ccat-hpc are (to copy and adapt)."""
    folder = shipped_site_configs_dir()
    if as_dir:
        click.echo(str(folder))
        return
    for path in sorted(folder.rglob("*.yaml")):
        click.echo(str(path))


@sites.command("list")
@pass_app
def list_sites(app: AppContext) -> None:
    """List data locations and routes."""
    with transaction(app.sessions()) as session:
        for location in session.scalars(select(DataLocation).order_by(DataLocation.name)):
            where = getattr(location, "path", None) or getattr(location, "bucket", "")
            flag = "" if location.active else "  (inactive)"
            click.echo(
                f"{location.name:<28} {location.site.name:<10} {location.location_type:<18} "
                f"{location.storage_type:<5} {where}{flag}"
            )
        for route in session.scalars(select(DataTransferRoute).order_by(DataTransferRoute.name)):
            via = f" via {route.relay_site.name}" if route.relay_site else ""
            flag = "" if route.active else "  (inactive)"
            click.echo(
                f"route {route.name}: {route.origin_site.name} → {route.destination_site.name}"
                f"{via} [{route.route_type}, {route.method}]{flag}"
            )
