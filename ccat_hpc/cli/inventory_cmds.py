"""``ccat-hpc obs`` / ``files``: what ops-db holds, listed and shown (text or ``--json``)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.params import ROW_ID
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import ObservationStatus, RawDataFileState
from ccat_hpc.inventory.common import DEFAULT_LIMIT, MAX_LIMIT, Page, parse_time
from ccat_hpc.inventory.files import FileFilter, list_files, show_file
from ccat_hpc.inventory.observations import (
    ObservationFilter,
    list_observations,
    show_observation,
)
from ccat_hpc.inventory.render import (
    render_file,
    render_files,
    render_observation,
    render_observations,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def time_option(name: str, end_of_day: bool, help_text: str) -> Callable[[F], F]:
    """An option taking ISO 8601 with a time zone, or a plain date (UTC); see parse_time."""

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
        if value is None:
            return None
        try:
            return parse_time(value, end_of_day)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    return click.option(name, metavar="TIME", callback=convert, help=help_text)


def paging_options(cursor_type: click.ParamType[Any] | type[int], metavar: str) -> Callable[[F], F]:
    """``--limit`` and ``--after``, the same for every listing."""

    def decorate(command: F) -> F:
        command = click.option(
            "--after",
            type=cursor_type,
            metavar=metavar,
            help="Continue after this one (the last line of the previous page says which).",
        )(command)
        return click.option(
            "--limit",
            type=click.IntRange(1, MAX_LIMIT),
            default=DEFAULT_LIMIT,
            show_default=True,
            help="At most this many per page.",
        )(command)

    return decorate


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def echo_result(result: Any, render: Callable[[Any], str], as_json: bool) -> None:
    """A query result (a dataclass) as JSON or as text."""
    if as_json:
        echo_json(dataclasses.asdict(result))
    else:
        click.echo(render(result))


def echo_page(
    page: Page[T], render: Callable[[Sequence[T]], str], as_json: bool, what: str
) -> None:
    """A page as JSON, or as text with a last line saying how to get the next page."""
    if as_json:
        echo_json(dataclasses.asdict(page))
        return
    if not page.items:
        click.echo(f"no {what} match")
        return
    click.echo(render(page.items))
    if page.next_after is not None:
        more = f"the same command with --after {page.next_after}"
        click.echo(f"-- {len(page.items)} shown; next page: {more}")


@click.group()
def obs() -> None:
    """Observations (executed obs units): list them, show one."""


@obs.command("list")
@click.option("--program", metavar="NAME", help="Observing program (name or short name).")
@click.option("--obs-unit", metavar="NAME", help="Obs unit.")
@click.option("--instrument", metavar="NAME", help="Instrument (e.g. PrimeCam, CHAI).")
@click.option("--module", metavar="NAME", help="Instrument module (of --instrument when given).")
@time_option("--since", False, "Started at or after this time (ISO 8601 or a UTC date).")
@time_option("--until", True, "Started before this time; a date includes that whole day (UTC).")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in ObservationStatus], case_sensitive=False),
    help="Reported status (repeat for several).",
)
@paging_options(click.UUID, "EXECUTION_ID")
@json_option
@pass_app
def list_observations_command(
    app: AppContext,
    program: str | None,
    obs_unit: str | None,
    instrument: str | None,
    module: str | None,
    since: datetime | None,
    until: datetime | None,
    statuses: tuple[str, ...],
    limit: int,
    after: uuid.UUID | None,
    as_json: bool,
) -> None:
    """List observations, oldest first, filtered by every option given."""
    statuses_wanted = tuple(ObservationStatus(s) for s in statuses)
    wanted = ObservationFilter(program, obs_unit, instrument, module, since, until, statuses_wanted)
    with transaction(app.sessions()) as session:
        page = list_observations(session, wanted, limit, after)
    echo_page(page, render_observations, as_json, "observations")


@obs.command("show")
@click.argument("execution_id", type=click.UUID)
@json_option
@pass_app
def show_observation_command(app: AppContext, execution_id: uuid.UUID, as_json: bool) -> None:
    """One observation: obs unit, modules, files by state and where the copies are."""
    with transaction(app.sessions()) as session:
        detail = show_observation(session, execution_id)
    echo_result(detail, render_observation, as_json)


@click.group()
def files() -> None:
    """Raw data files: list them, show one with all its copies."""


@files.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in RawDataFileState], case_sensitive=False),
    help="File state (repeat for several).",
)
@click.option("--location", metavar="NAME", help="Only files with a (not deleted) copy there.")
@click.option("--execution", type=click.UUID, metavar="ID", help="Only files of this execution.")
@click.option("--module", metavar="NAME", help="Instrument module (e.g. 280GHz, LFA).")
@click.option(
    "--path",
    metavar="GLOB",
    help="Path below the location root matches GLOB (* and ? wildcards; case counts).",
)
@paging_options(ROW_ID, "FILE_ID")
@json_option
@pass_app
def list_files_command(
    app: AppContext,
    states: tuple[str, ...],
    location: str | None,
    execution: uuid.UUID | None,
    module: str | None,
    path: str | None,
    limit: int,
    after: int | None,
    as_json: bool,
) -> None:
    """List files in filing order, filtered by every option given."""
    states_wanted = tuple(RawDataFileState(s) for s in states)
    wanted = FileFilter(states_wanted, location, execution, module, path)
    with transaction(app.sessions()) as session:
        page = list_files(session, wanted, limit, after)
    echo_page(page, render_files, as_json, "files")


@files.command("show")
@click.argument("file_id", type=ROW_ID)
@json_option
@pass_app
def show_file_command(app: AppContext, file_id: int, as_json: bool) -> None:
    """One file: size, checksum, state, package and every physical copy."""
    with transaction(app.sessions()) as session:
        detail = show_file(session, file_id)
    echo_result(detail, render_file, as_json)
