"""Liveness and readiness, for a process supervisor or a load balancer (no token)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import Engine

from ccat_hpc.api.problems import LOG
from ccat_hpc.db.revision import SCHEMA_HEAD
from ccat_hpc.db.session import check_schema
from ccat_hpc.errors import DatabaseUnavailable

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    schema_revision: str


@router.get("/health", response_model=Health)
async def health() -> Health:  # on the event loop: it answers while the workers are busy
    """The process answers (ops-db is not asked)."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready)
async def ready(request: Request) -> Ready:
    """ops-db answers and holds the schema this server needs (503 otherwise)."""
    engine: Engine = request.app.state.engine
    try:
        await run_in_threadpool(check_schema, engine, request.app.state.shown_db)
    except DatabaseUnavailable as exc:  # the reason (and where ops-db is) goes to the log
        LOG.warning("not ready: %s", exc)
        raise DatabaseUnavailable("ops-db is not ready (the server log says why)") from None
    return Ready(status="ready", schema_revision=SCHEMA_HEAD)
