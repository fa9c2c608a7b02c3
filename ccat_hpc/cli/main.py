"""Entry point of ``ccat-hpc``: global options and the error boundary.

Domain errors become one line on stderr and the exit code of their class
(see ccat_hpc.errors); ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import click

from ccat_hpc import __version__
from ccat_hpc.cli.context import AppContext
from ccat_hpc.config import DB_ENV_VAR, redact_url
from ccat_hpc.db.reasons import operational_error_reason
from ccat_hpc.errors import CcatHpcError, DatabaseUnavailable

if TYPE_CHECKING:
    from sqlalchemy.exc import OperationalError

#: name → "module:attribute"; a command's module (and SQLAlchemy, pydantic, alembic)
#: is imported only when that command runs, so `ccat-hpc package …` starts fast.
COMMANDS = {
    "catalog": "ccat_hpc.cli.catalog_cmds:catalog",
    "checksum": "ccat_hpc.cli.job_cmds:checksum",
    "db": "ccat_hpc.cli.db_cmds:db",
    "demo": "ccat_hpc.cli.demo_cmds:demo",
    "file": "ccat_hpc.cli.file_cmds:file_command",
    "job": "ccat_hpc.cli.job_cmds:job",
    "package": "ccat_hpc.cli.package_cmds:package",
    "simulate-observation": "ccat_hpc.cli.file_cmds:simulate_observation",
    "sites": "ccat_hpc.cli.sites_cmds:sites",
    "status": "ccat_hpc.cli.status_cmds:status",
    "watch": "ccat_hpc.cli.file_cmds:watch_command",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_option",
    metavar="URL",
    help=(
        f"ops-db URL (postgresql://… or a SQLite file); default ${DB_ENV_VAR} or ./ccat-hpc.sqlite"
    ),
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, prog_name="ccat-hpc")
@click.pass_context
def cli(ctx: click.Context, db_option: str | None, verbose: bool) -> None:
    """ccat-hpc: the CCAT data center — ops-db, filing, packaging, transfer, archive, staging."""
    app = ctx.ensure_object(AppContext)
    app.db_option, app.verbose = db_option, verbose
    ctx.call_on_close(app.close)


def db_error_line(exc: OperationalError, url: str) -> str:
    """One line for an operational database error, with a hint for an old schema."""
    return f"cannot use ops-db at {redact_url(url)}: {operational_error_reason(exc)}"


def _is_operational_error(exc: Exception) -> bool:
    """An SQLAlchemy OperationalError, without importing SQLAlchemy when it was never used."""
    module = sys.modules.get("sqlalchemy.exc")
    return module is not None and isinstance(exc, module.OperationalError)


def _report_unexpected(exc: Exception, db_url: str) -> int:
    """One line for an exception that is not a CcatHpcError; returns the exit code."""
    if _is_operational_error(exc):
        click.echo(f"error: {db_error_line(cast('OperationalError', exc), db_url)}", err=True)
        return DatabaseUnavailable.exit_code
    click.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --verbose)", err=True)
    return 70


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    app = AppContext(db_option=None)
    try:
        code = cli.main(args=args, prog_name="ccat-hpc", standalone_mode=False, obj=app)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except CcatHpcError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        code = exc.exit_code
    except Exception as exc:  # the CLI boundary: anything else is a bug, said in one line
        if verbose:
            traceback.print_exc()
        code = _report_unexpected(exc, app.db_url)
    sys.exit(code if isinstance(code, int) else 0)
