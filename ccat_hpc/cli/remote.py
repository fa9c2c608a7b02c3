"""``--api URL`` and ``--token-file``: the commands that also work through the REST API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from ccat_hpc.cli.context import AppContext
from ccat_hpc.client import API_ENV, TOKEN_ENV, TOKEN_FILE_ENV

F = TypeVar("F", bound=Callable[..., object])


def _store(field: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            setattr(ctx.ensure_object(AppContext), field, value)

    return store


def api_options(command: F) -> F:
    """Add ``--api`` and ``--token-file`` to a command."""
    command = click.option(
        "--token-file",
        metavar="PATH",
        envvar=TOKEN_FILE_ENV,
        expose_value=False,
        callback=_store("token_file"),
        help=f"With --api: read the token from PATH (mode 600); default ${TOKEN_ENV}.",
    )(command)
    return click.option(
        "--api",
        metavar="URL",
        envvar=API_ENV,
        expose_value=False,
        callback=_store("api_url"),
        help=f"Use the REST API at URL with a token instead of ops-db (or ${API_ENV}).",
    )(command)
