"""What a request handler is given: ops-db sessions, the caller behind the token, and
the SystemLog row that records a write."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.access.policy import Caller, require_scope
from ccat_hpc.access.tokens import TokenRefused, caller_of
from ccat_hpc.api.limits import TokenBucket
from ccat_hpc.api.problems import TooManyRequests
from ccat_hpc.api.settings import ApiSettings
from ccat_hpc.db.models import SystemLog
from ccat_hpc.db.session import transaction

#: the cookie the web UI keeps the signed-in token in (HttpOnly)
TOKEN_COOKIE = "ccat_token"


def sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


def settings(request: Request) -> ApiSettings:
    found: ApiSettings = request.app.state.settings
    return found


def presented_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer …``, else (reading only) of the web UI's
    sign-in cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise TokenRefused("the Authorization header is not 'Bearer <token>'")
        return value.strip()
    if request.method not in ("GET", "HEAD"):
        return None  # a write through the API names its token: a cookie alone is no consent
    return request.cookies.get(TOKEN_COOKIE)


def current_caller(request: Request) -> Caller:
    """The caller behind the request's token; 401 without a valid one."""
    token = presented_token(request)
    if token is None:
        raise TokenRefused("no token: send 'Authorization: Bearer <token>' (ccat-hpc token create)")
    with transaction(sessions(request)) as session:
        caller = caller_of(session, token)
    count_request(request, caller)
    return caller


def count_request(request: Request, caller: Caller) -> None:
    """Count a request against its token's rate; TooManyRequests (429) past it."""
    bucket: TokenBucket | None = request.app.state.token_bucket
    if bucket is not None:
        wait = bucket.take(f"token:{caller.token}", time.monotonic())
        if wait > 0:
            raise TooManyRequests(f"too many requests with token {caller.token}…", wait)


CallerDep = Annotated[Caller, Depends(current_caller)]
SessionsDep = Annotated[sessionmaker[Session], Depends(sessions)]
SettingsDep = Annotated[ApiSettings, Depends(settings)]


def needs(scope: str) -> Callable[[Caller], Caller]:
    """A dependency: the caller, if they hold ``scope`` (403 otherwise)."""

    def check(caller: CallerDep) -> Caller:
        require_scope(caller, scope)
        return caller

    return check


def audit(session: Session, caller: Caller, request: Request, message: str, **details: Any) -> None:
    """Record a write in SystemLog with its user (in the write's own transaction)."""
    session.add(
        SystemLog(
            source="api",
            message=f"{caller.username}: {message}",
            details={
                "user": caller.username,
                "token": caller.token,
                "method": request.method,
                "path": request.url.path,
            }
            | details,
        )
    )
