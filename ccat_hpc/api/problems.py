"""Errors as RFC 9457 problem details: ``application/problem+json`` with a type, a
title, the status, one line of detail and, for bad input, each field with its problem.

Every expected error of ccat-hpc has its status here; anything else is a bug, logged
with an incident id on the server and answered 500 with that id only (no trace ever
reaches a client).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ccat_hpc.access.policy import AccessDenied, WrongInstrumentDenied
from ccat_hpc.access.tokens import TokenRefused
from ccat_hpc.errors import (
    CcatHpcError,
    DatabaseUnavailable,
    InvalidStateTransition,
    ManifestError,
    NotFoundError,
    StateConflict,
    UsageError,
)
from ccat_hpc.pipeline.staging_request import QuotaExceeded
from ccat_hpc.storage.base import StorageError
from ccat_hpc.text import one_line

LOG = logging.getLogger("ccat_hpc.api")
MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:ccat-hpc:problem:"


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] = []


class BadField(CcatHpcError):
    """A request field that cannot be used as given; 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TooManyRequests(CcatHpcError):
    """Over a rate or a number at once; 429 with Retry-After."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BodyTooLarge(CcatHpcError):
    """A request body past its limit; 413."""


class BodyTimedOut(CcatHpcError):
    """A request body that did not arrive in time; 408."""


#: expected errors, most specific first: (class, status, type, title)
KNOWN: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (TokenRefused, 401, "unauthorized", "No valid token"),
    (TooManyRequests, 429, "rate-limited", "Too many requests"),
    (BodyTooLarge, 413, "too-large", "Request too large"),
    (BodyTimedOut, 408, "timed-out", "Request body too slow"),
    (WrongInstrumentDenied, 403, "wrong-instrument", "Another instrument's observation"),
    (AccessDenied, 403, "forbidden", "Not allowed"),
    (NotFoundError, 404, "not-found", "Not found"),
    (QuotaExceeded, 409, "quota-exceeded", "Quota exceeded"),
    (InvalidStateTransition, 409, "conflict", "Conflict"),
    (StateConflict, 409, "conflict", "Conflict"),
    (BadField, 422, "invalid-field", "Invalid field"),
    (ManifestError, 422, "manifest-rejected", "Manifest rejected"),
    (DatabaseUnavailable, 503, "unavailable", "ops-db unavailable"),
    (StorageError, 503, "storage-unavailable", "Storage unavailable"),
    (UsageError, 400, "bad-request", "Bad request"),
    (CcatHpcError, 400, "bad-request", "Bad request"),
)
#: statuses every endpoint may answer with a problem (documented in the OpenAPI schema)
COMMON_STATUSES = (400, 401, 403, 404, 408, 409, 413, 422, 429, 503)


def common_responses() -> dict[int | str, dict[str, Any]]:
    problem = {"model": Problem, "content": {MEDIA_TYPE: {}}}
    return {status: dict(problem, description="A problem (RFC 9457)") for status in COMMON_STATUSES}


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: Sequence[FieldProblem] = (),
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body = Problem(
        type=TYPE_PREFIX + slug,
        title=title,
        status=status,
        detail=one_line(detail)[:2000],
        instance=instance,
        errors=list(errors),
    )
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def _answer(
    request: Request, status: int, slug: str, title: str, detail: str, **kw: Any
) -> Response:
    """A problem; for a page of the web UI, the UI's error page (when it has one)."""
    page = getattr(request.app.state, "error_page", None)
    if page is not None and request.url.path.startswith("/ui"):
        response: Response = page(request, status, title, one_line(detail)[:2000])
        return response
    return problem_response(status, slug, title, detail, instance=request.url.path, **kw)


def _known(request: Request, exc: Exception) -> Response:
    for cls, status, slug, title in KNOWN:
        if isinstance(exc, cls):
            errors = []
            if isinstance(exc, BadField):
                errors = [FieldProblem(field=exc.field, message=exc.message)]
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            if status == 503:
                headers = {"Retry-After": "30"}
            if isinstance(exc, TooManyRequests):
                headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
            return _answer(request, status, slug, title, str(exc), errors=errors, headers=headers)
    return _internal(request, exc)


def _database(request: Request, exc: Exception) -> Response:
    if isinstance(exc, DataError):
        return _answer(request, 400, "bad-request", "Bad request", "ops-db refused a value")
    if isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        reason = one_line(str(exc.orig)) if isinstance(exc, DBAPIError) else str(exc)
        LOG.warning("ops-db unavailable: %s", reason)
        detail = "ops-db cannot be used now; try again later"
        headers = {"Retry-After": "30"}
        return _answer(request, 503, "unavailable", "ops-db unavailable", detail, headers=headers)
    return _internal(request, exc)


def _internal(request: Request, exc: BaseException) -> Response:
    incident = uuid.uuid4().hex[:12]
    LOG.error(
        "internal error %s on %s %s", incident, request.method, request.url.path, exc_info=exc
    )
    detail = f"an internal error (incident {incident}); the server log has its details"
    return _answer(request, 500, "internal", "Internal error", detail)


def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldProblem(
            field=".".join(str(p) for p in e.get("loc", ())), message=str(e.get("msg", ""))
        )
        for e in exc.errors()[:20]
    ]
    shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:5]) or "invalid request"
    return _answer(request, 422, "invalid-field", "Invalid field", shown, errors=errors)


def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
    detail = str(exc.detail)
    headers = dict(exc.headers or {})
    return _answer(request, exc.status_code, slug, detail or "Error", detail, headers=headers)


def _gone(request: Request, exc: Exception) -> Response:
    """The client went away while sending its body: nothing to answer, nothing to log
    but a line."""
    LOG.info("client left during %s %s", request.method, request.url.path)
    return Response(status_code=400)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, _gone)
    app.add_exception_handler(CcatHpcError, _known)
    app.add_exception_handler(AccessDenied, _known)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(Exception, _internal)
