"""``ccat-hpc api serve``: the REST API and the web UI in one process (uvicorn)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.errors import ConfigError

if TYPE_CHECKING:
    from ccat_hpc.api.settings import ApiSettings


@click.group()
def api() -> None:
    """The REST API (ops-db-api) and the web UI (ops-db-ui).

    \b
    Example:
      ccat-hpc user add alice --role scientist
      ccat-hpc token create alice            # shown once: keep it
      ccat-hpc api serve --port 8000         # then http://127.0.0.1:8000/ui
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/api/v1/status
    The OpenAPI schema is at /openapi.json, its browsable form at /docs.
    """


@api.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0),
    default=50.0,
    show_default=True,
    help="Requests per second per token (or address); 0: no limit.",
)
@click.option(
    "--burst",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Requests a token may make at once before the rate applies.",
)
@click.option(
    "--max-body-kib",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Largest request body (filing a manifest may be larger, up to 512 MiB).",
)
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="Sign-in cookies over HTTPS only (behind a TLS proxy).",
)
@click.option(
    "--status-max-age",
    type=click.FloatRange(min=0, max=3600),
    default=15.0,
    show_default=True,
    help="Seconds a status summary is served before it is computed again.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes (about one per core); each has its own rate limits.",
)
@pass_app
def serve_command(
    app: AppContext,
    host: str,
    port: int,
    rate_limit: float,
    burst: int,
    max_body_kib: int,
    secure_cookies: bool,
    status_max_age: float,
    workers: int,
) -> None:
    """Serve the REST API and the web UI until stopped (Ctrl-C or SIGTERM)."""
    try:
        import uvicorn

        from ccat_hpc.api.app import create_app
        from ccat_hpc.api.settings import ApiSettings
    except ImportError as exc:
        raise ConfigError(
            f"the REST API needs the 'api' extra ({exc.name} is missing): "
            "pip install 'ccat-hpc[api]' (or scripts/bootstrap.sh api)"
        ) from None

    settings = ApiSettings(
        max_body_bytes=max_body_kib * 1024,
        rate_per_second=rate_limit,
        rate_burst=burst,
        secure_cookies=secure_cookies,
        status_max_age_seconds=status_max_age,
    )
    from ccat_hpc.api.app import LOG_FORMAT

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    click.echo(f"ccat-hpc api: ops-db {app.shown_db_url()}; http://{host}:{port}/ui", err=True)
    if workers > 1:
        _serve_workers(app, settings, host, port, workers)
        return
    application = create_app(app.sessions(), app.engine(), settings, shown_db=app.shown_db_url())
    uvicorn.run(application, host=host, port=port, log_level="info", access_log=True)


def _serve_workers(
    app: AppContext, settings: ApiSettings, host: str, port: int, workers: int
) -> None:
    """``workers`` processes, each building the application from a settings file that
    only this user may read (removed when the server stops)."""
    import tempfile

    import uvicorn

    from ccat_hpc.api.app import SETTINGS_FILE_ENV, write_worker_settings

    app.sessions()  # the schema is checked once here, with a clear error
    path = write_worker_settings(tempfile.gettempdir(), app.db_url, settings)
    os.environ[SETTINGS_FILE_ENV] = path
    try:
        uvicorn.run(
            "ccat_hpc.api.app:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
        )
    finally:
        os.unlink(path)
