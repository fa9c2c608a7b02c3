"""``ccat-hpc api serve``: the REST API and the web UI in one process (uvicorn)."""

from __future__ import annotations

import logging

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.errors import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
@pass_app
def serve_command(
    app: AppContext,
    host: str,
    port: int,
    rate_limit: float,
    burst: int,
    max_body_kib: int,
    secure_cookies: bool,
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
    )
    application = create_app(app.sessions(), app.engine(), settings, shown_db=app.shown_db_url())
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    click.echo(f"ccat-hpc api: ops-db {app.shown_db_url()}; http://{host}:{port}/ui", err=True)
    uvicorn.run(application, host=host, port=port, log_level="info", access_log=True)
