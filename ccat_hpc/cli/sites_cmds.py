"""``ccat-hpc sites``: load, list and show sites, data locations and routes."""

from __future__ import annotations

from pathlib import Path

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.inventory_cmds import echo_result, json_option
from ccat_hpc.db.session import transaction
from ccat_hpc.inventory.sites import render_site, render_sites, show_site, sites_overview
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
@json_option
@pass_app
def list_sites(app: AppContext, as_json: bool) -> None:
    """List data locations and routes (--json: every site with its locations, and routes)."""
    with transaction(app.sessions()) as session:
        overview = sites_overview(session)
    echo_result(overview, render_sites, as_json)


@sites.command("show")
@click.argument("name")
@json_option
@pass_app
def show_site_command(app: AppContext, name: str, as_json: bool) -> None:
    """One site: its locations, routes, retention and Slurm profiles."""
    with transaction(app.sessions()) as session:
        detail = show_site(session, name)
    echo_result(detail, render_site, as_json)
