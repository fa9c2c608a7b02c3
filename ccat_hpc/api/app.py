"""The application: the API's routers, the web UI, limits and error handling, built
from a session factory (nothing at import time)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import threading
import time

from fastapi import Depends, FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc import __version__
from ccat_hpc.api import problems
from ccat_hpc.api.limits import ADDRESS_FACTOR, RequestLimits, TokenBucket, WaitCounter
from ccat_hpc.api.routes import campaigns, filing, health, reads, staging
from ccat_hpc.api.routes.common import no_nul
from ccat_hpc.api.settings import ApiSettings
from ccat_hpc.api.snapshot import StatusSnapshots

DESCRIPTION = """ops-db-api of the CCAT data center: file observations, read what ops-db
holds (observations, files and every copy, packages, transfers, locations, the chain of
custody, pipeline status), stage data for processing, run campaigns.

Send a token as `Authorization: Bearer <token>` (`ccat-hpc token create`). Errors are
RFC 9457 problem details. Lists are paged by keyset: pass a page's `next_after` as
`after`."""


def create_app(
    factory: sessionmaker[Session],
    engine: Engine,
    settings: ApiSettings | None = None,
    *,
    shown_db: str = "ops-db",
    with_ui: bool = True,
) -> FastAPI:
    settings = settings or ApiSettings()
    app = FastAPI(
        title="ccat-hpc ops-db-api",
        version=__version__,
        description=DESCRIPTION,
        responses=problems.common_responses(),
        dependencies=[Depends(no_nul)],
    )
    app.state.sessions = factory
    app.state.engine = engine
    app.state.settings = settings
    app.state.shown_db = shown_db
    app.state.waits = WaitCounter(settings.waits_per_token)
    app.state.filings = threading.BoundedSemaphore(settings.max_concurrent_filings)
    app.state.status = StatusSnapshots(settings.status_max_age_seconds, time.monotonic)
    problems.install(app)
    for module in (health, reads, filing, staging, campaigns):
        app.include_router(module.router)
    if with_ui:
        from ccat_hpc.api.ui import pages, web, work

        web.install(app)
        app.include_router(pages.router)
        app.include_router(work.router)
    bucket = app.state.token_bucket = None
    if settings.rate_per_second > 0:
        app.state.token_bucket = TokenBucket(settings.rate_per_second, settings.rate_burst)
        bucket = TokenBucket(
            settings.rate_per_second * ADDRESS_FACTOR, settings.rate_burst * ADDRESS_FACTOR
        )
    app.add_middleware(
        RequestLimits,
        max_body=settings.max_body_bytes,
        large_bodies={
            ("POST", filing.FILING_PATH): settings.max_manifest_bytes,
            ("POST", "/ui/file"): settings.max_manifest_bytes,
        },
        bucket=bucket,
        clock=time.monotonic,
    )
    return app


#: how `ccat-hpc api serve --workers N` tells each worker where its settings are
SETTINGS_FILE_ENV = "CCAT_HPC_API_SETTINGS_FILE"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def write_worker_settings(folder: str, db_url: str, settings: ApiSettings) -> str:
    """A file only its owner may read with ops-db's URL and the settings (not the
    environment, which every child process would inherit); its path."""
    descriptor, path = tempfile.mkstemp(prefix="ccat-hpc-api-", suffix=".json", dir=folder)
    with os.fdopen(descriptor, "w") as handle:  # mkstemp makes it mode 600
        json.dump({"db": db_url, "settings": dataclasses.asdict(settings)}, handle)
    return path


def app_from_environment() -> FastAPI:
    """The application of one worker process (uvicorn's factory with ``--workers``)."""
    from ccat_hpc.config import redact_url
    from ccat_hpc.db.session import check_schema, make_engine, make_session_factory

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    with open(os.environ[SETTINGS_FILE_ENV], encoding="utf-8") as handle:
        given = json.load(handle)
    url = given["db"]
    engine = make_engine(url, create=False)
    check_schema(engine, redact_url(url))
    settings = ApiSettings(**given["settings"])
    return create_app(make_session_factory(engine), engine, settings, shown_db=redact_url(url))
