"""Entry point of ``ccat-hpc``: the command table, global options and the error boundary.

Domain errors become one line on stderr and the exit code of their class
(see ccat_hpc.errors); ``--verbose`` adds the traceback. Every line printed here
passes through ``scrub``: no form of the ops-db password reaches the terminal.
"""

from __future__ import annotations

import importlib
import io
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import Any

import click

from ccat_hpc import __version__
from ccat_hpc.cli.context import AppContext
from ccat_hpc.config import DB_ENV_VAR
from ccat_hpc.db.reasons import operational_error_reason
from ccat_hpc.errors import (
    EXIT_CODES,
    INTERNAL_ERROR,
    INTERRUPTED,
    TERMINATED,
    CcatHpcError,
    DatabaseUnavailable,
    Terminated,
    UsageError,
)
from ccat_hpc.redact import redact_url, scrub

#: name → ("module:attribute", one line of help). A command's module (and SQLAlchemy,
#: pydantic, alembic) is imported only when that command runs or shows its help.
COMMANDS: dict[str, tuple[str, str]] = {
    "api": ("ccat_hpc.cli.api_cmds:api", "Serve the REST API and the web UI."),
    "breaker": (
        "ccat_hpc.cli.breaker_cmds:breaker",
        "List and reset the circuit breakers of routes and locations.",
    ),
    "campaign": (
        "ccat_hpc.cli.campaign_cmds:campaign",
        "Operators' bulk re-archive, re-verify and re-stage campaigns.",
    ),
    "catalog": ("ccat_hpc.cli.catalog_cmds:catalog", "Load and list the observation catalog."),
    "checksum": (
        "ccat_hpc.cli.checksum_cmds:checksum",
        "Checksum new files with a job array (= step checksum).",
    ),
    "cleanup": (
        "ccat_hpc.cli.cleanup_cmds:cleanup",
        "Plan and run the deletion of copies whose retention has passed.",
    ),
    "db": ("ccat_hpc.cli.db_cmds:db", "Create and migrate the ops-db schema."),
    "demo": ("ccat_hpc.cli.demo_cmds:demo", "Run the main job end to end on SQLite."),
    "file": ("ccat_hpc.cli.file_cmds:file_command", "File manifests into ops-db."),
    "files": (
        "ccat_hpc.cli.inventory_cmds:files",
        "List and show raw data files by state, location, execution.",
    ),
    "job": ("ccat_hpc.cli.job_cmds:job", "Run, submit, follow and cancel job arrays."),
    "obs": (
        "ccat_hpc.cli.inventory_cmds:obs",
        "List and show observations (executions) by program, obs unit, instrument, time.",
    ),
    "package": ("ccat_hpc.cli.package_cmds:package", "Build, verify and read tar packages."),
    "scheduler": (
        "ccat_hpc.cli.scheduler_cmds:scheduler",
        "Run the pipeline steps by themselves (the scheduler loop).",
    ),
    "simulate-observation": (
        "ccat_hpc.cli.file_cmds:simulate_observation",
        "Write a synthetic observation and its manifest.",
    ),
    "sites": ("ccat_hpc.cli.sites_cmds:sites", "Load, list and show sites, locations, routes."),
    "stage": (
        "ccat_hpc.cli.stage_cmds:stage",
        "Stage archived data to PROCESSING storage (request, wait, release, list).",
    ),
    "status": ("ccat_hpc.cli.status_cmds:status", "Counts by state and location in ops-db."),
    "step": (
        "ccat_hpc.cli.step_cmds:step",
        "Run a pipeline step (checksum, package, …) as a job array.",
    ),
    "token": (
        "ccat_hpc.cli.user_cmds:token",
        "Create, list and revoke API tokens (shown once, stored as a hash).",
    ),
    "trace": (
        "ccat_hpc.cli.trace_cmds:trace",
        "Every copy, package and transfer of one file or package.",
    ),
    "user": ("ccat_hpc.cli.user_cmds:user", "Add and list users of the REST API and their roles."),
    "watch": ("ccat_hpc.cli.file_cmds:watch_command", "File every manifest dropped into a folder."),
}
GLOBAL_OPTION_NAMES = ("global_db", "global_verbose")
EXIT_CODES_EPILOG = "Exit codes:\n\n\b\n" + "\n".join(
    f"{code:>5}  {meaning}" for code, meaning in EXIT_CODES
)


def _store_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(AppContext).db_option = value


def _store_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(AppContext).verbose = True


def global_options() -> list[click.Option]:
    """``--db`` and ``--verbose``, taken by the top level and by every command."""
    db_help = (
        f"ops-db URL (postgresql://… or a SQLite file); default ${DB_ENV_VAR} or ./ccat-hpc.sqlite"
    )
    return [
        click.Option(
            ["--db", GLOBAL_OPTION_NAMES[0]],
            metavar="URL",
            expose_value=False,
            callback=_store_db,
            help=db_help,
        ),
        click.Option(
            ["-v", "--verbose", GLOBAL_OPTION_NAMES[1]],
            is_flag=True,
            expose_value=False,
            callback=_store_verbose,
            help="Show tracebacks of errors.",
        ),
    ]


def with_global_options(command: click.Command) -> click.Command:
    """``command`` and every command below it, taking the global options too."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_global_options(sub)
    taken = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    names = {p.name for p in command.params}
    for option in global_options():
        if option.name not in names and not taken & set(option.opts):
            command.params.append(option)
    return command


def _import_command(name: str) -> click.Command:
    module_name, attribute = COMMANDS[name][0].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise click.UsageError(f"command {name!r} is not part of this installation") from None
    command = getattr(module, attribute)
    assert isinstance(command, click.Command)
    return command


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; its help imports none."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        return with_global_options(_import_command(cmd_name))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_EPILOG,
)
@click.version_option(__version__, prog_name="ccat-hpc")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ccat-hpc: the CCAT data center software, around its operations database (ops-db).

    Built today: ops-db and its schema, site configs and the catalog, filing instrument
    manifests (by hand or by the watcher), the pipeline steps as job arrays on Slurm or
    this machine (checksum, package, bundle, transfer, archive), the scheduler loop,
    staging for scientists, cleanup by retention, operators' campaigns, the integrity
    scrub, listing what ops-db holds, and the REST API with its web UI (api serve);
    stage, status, trace, file and watch also work through the API (--api URL).

    --db and --verbose are taken before or after the command.
    """
    app = ctx.ensure_object(AppContext)
    ctx.call_on_close(app.close)


cli.params.extend(global_options())


def db_error_line(exc: BaseException, url: str) -> str:
    """One line for an operational database error, with a hint for an old schema."""
    return f"cannot use ops-db at {redact_url(url)}: {operational_error_reason(exc, url)}"


def _is_ops_db_error(exc: BaseException) -> bool:
    """An SQLAlchemy OperationalError, or any driver error while connecting (no statement
    yet: a file that is no database, a bad connection option), without importing
    SQLAlchemy when it was never used."""
    module = sys.modules.get("sqlalchemy.exc")
    if module is None:
        return False
    if isinstance(exc, module.OperationalError):
        return True
    return isinstance(exc, module.DBAPIError) and exc.statement is None


def _db_texts(args: Sequence[str], app: AppContext) -> list[str]:
    """Every ops-db URL this run may have seen: the options given, the environment."""
    texts = [app.db_option or "", os.environ.get(DB_ENV_VAR, "")]
    for index, arg in enumerate(args):
        if arg == "--db" and index + 1 < len(args):
            texts.append(args[index + 1])
        elif arg.startswith("--db="):
            texts.append(arg.removeprefix("--db="))
    return [text for text in texts if text]


class Reporter:
    """Writes to stderr what the error boundary says, every line scrubbed of passwords."""

    def __init__(self, args: Sequence[str], app: AppContext) -> None:
        self.urls = _db_texts(args, app)
        self.app = app
        self.verbose = app.verbose or "-v" in args or "--verbose" in args

    def say(self, text: str, nl: bool = True) -> None:
        click.echo(scrub(text, *self.urls), err=True, nl=nl)

    def traceback(self, exc: BaseException) -> None:
        if self.verbose:
            self.say("".join(traceback.format_exception(exc)), nl=False)

    def click_error(self, exc: click.ClickException) -> int:
        buffer = io.StringIO()
        exc.show(file=buffer)
        self.say(buffer.getvalue(), nl=False)
        return exc.exit_code

    def error(self, exc: Exception) -> int:
        self.traceback(exc)
        if isinstance(exc, CcatHpcError):
            self.say(f"error: {exc}")
            return exc.exit_code
        if _is_ops_db_error(exc):
            self.say(f"error: {db_error_line(exc, self._url())}")
            return DatabaseUnavailable.exit_code
        if isinstance(exc, UnicodeEncodeError):  # a name given in another encoding
            self.say("error: a name given is not UTF-8 text (file names from another system?)")
            return UsageError.exit_code
        self.say(f"internal error: {type(exc).__name__}: {_first_line(exc)} (rerun with --verbose)")
        return INTERNAL_ERROR

    def _url(self) -> str:
        try:
            return self.app.db_url
        except CcatHpcError:
            return ""


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _run(args: list[str], app: AppContext) -> Any:
    return cli.main(args=args, prog_name="ccat-hpc", standalone_mode=False, obj=app)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    app = AppContext(db_option=None)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None  # commands may
    try:  # install their own
        code = _run(args, app)
    except click.exceptions.Abort:
        Reporter(args, app).say("aborted")
        code = INTERRUPTED
    except Terminated:
        Reporter(args, app).say("terminated (SIGTERM)")
        code = TERMINATED
    except click.ClickException as exc:
        code = Reporter(args, app).click_error(exc)
    except Exception as exc:  # the CLI boundary: domain errors, ops-db errors, bugs
        code = Reporter(args, app).error(exc)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(code if isinstance(code, int) else 0)
