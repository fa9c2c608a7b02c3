"""What every page of the web UI needs: its templates, the signed-in caller (from an
HttpOnly cookie holding the token), a CSRF field for its forms, and form parsing.

A page asked for without a valid sign-in redirects to the sign-in page. Every form
carries a field derived from the signed-in token, so another site cannot post one; the
cookie is also SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from typing import Annotated, Any

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ccat_hpc.access.policy import AccessDenied, Caller, require_scope
from ccat_hpc.access.tokens import TokenRefused, caller_of
from ccat_hpc.api.deps import TOKEN_COOKIE, count_request, sessions, settings
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import UsageError
from ccat_hpc.units import human_bytes

SIGN_IN = "/ui/signin"
MAX_FIELD = 4096
MAX_FIELDS = 50


class SignInNeeded(Exception):
    """No valid sign-in; the message says why (never the token)."""


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ccat_hpc.api.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["bytes"] = lambda n: human_bytes(int(n or 0))
    env.filters["when"] = shown_time
    return env


def shown_time(value: object) -> str:
    """``2026-12-06T02:39:50.264016+00:00`` → ``2026-12-06 02:39:50`` (UTC, as stored)."""
    if not value:
        return "—"
    return str(value).replace("T", " ")[:19]


def install(app: FastAPI) -> None:
    app.state.templates = environment()
    app.state.error_page = error_page
    app.add_exception_handler(SignInNeeded, _to_sign_in)


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    """A problem on a page of the UI, as a page (sign-in problems go to sign in)."""
    if status == 401:
        return _to_sign_in(request, SignInNeeded(detail))
    return render(request, "error.html", None, status, title=title, detail=detail)


#: why the sign-in page is shown again (the page says it; no text comes from the URL)
REASONS = {
    "signin": "Sign in with your API token.",
    "refused": "Your token was refused (unknown, expired or revoked): sign in with a valid one.",
}


def _to_sign_in(request: Request, exc: Exception) -> Response:
    target = urllib.parse.quote(request.url.path, safe="/")
    reason = "refused" if isinstance(exc, SignInNeeded) and str(exc) == "refused" else "signin"
    return RedirectResponse(f"{SIGN_IN}?next={target}&reason={reason}", status_code=303)


def csrf_of(request: Request, token: str) -> str:
    """The forms' field of one signed-in token, keyed with the server's form key."""
    key = settings(request).form_key.encode()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:32]


def page_caller(request: Request) -> Caller:
    """The signed-in caller of a page (any scope); to the sign-in page without one."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise SignInNeeded("signin")
    try:
        with transaction(sessions(request)) as session:
            caller = caller_of(session, token)
    except TokenRefused:
        raise SignInNeeded("refused") from None
    count_request(request, caller)
    request.state.csrf = csrf_of(request, token)
    return caller


PageCaller = Annotated[Caller, Depends(page_caller)]


def page_needs(scope: str) -> Any:
    """A page's caller, who must hold ``scope`` (an error page says so otherwise)."""

    def check(caller: PageCaller) -> Caller:
        require_scope(caller, scope)
        return caller

    return Depends(check)


ReaderPage = Annotated[Caller, page_needs("read")]
StagerPage = Annotated[Caller, page_needs("staging:own")]


def render(
    request: Request, template: str, caller: Caller | None, code: int = 200, **values: Any
) -> HTMLResponse:
    env: jinja2.Environment = request.app.state.templates
    scopes = caller.scopes if caller is not None else frozenset()
    html = env.get_template(template).render(
        caller=caller,
        scopes=scopes,
        csrf=getattr(request.state, "csrf", ""),
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=code)


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a form posted from this site (the last of each name), each at
    most 4 KiB; AccessDenied for a form another site sent, UsageError for one too big."""
    check_same_site(request)
    body = (await request.body()).decode("utf-8", "replace")
    try:
        pairs = urllib.parse.parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise UsageError(f"a form has at most {MAX_FIELDS} fields") from None
    return {k: v[:MAX_FIELD].replace("\x00", "") for k, v in pairs}


def check_same_site(request: Request) -> None:
    """AccessDenied for a request a page of another site made: as the browser says
    (Sec-Fetch-Site), else by its Origin against the host asked (behind a proxy, the
    host it forwarded)."""
    fetched_by = request.headers.get("sec-fetch-site")
    if fetched_by is not None:
        if fetched_by not in ("same-origin", "none"):
            raise AccessDenied("a form of another site is refused")
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    if urllib.parse.urlsplit(origin).netloc not in hosts - {None}:
        raise AccessDenied("a form of another site is refused")


def check_form(request: Request, fields: dict[str, str]) -> None:
    """AccessDenied unless the form came from a page of this signed-in session."""
    check_same_site(request)
    expected = getattr(request.state, "csrf", "")
    if not expected or not hmac.compare_digest(fields.get("csrf", ""), expected):
        raise AccessDenied("the form has expired or came from elsewhere: reload the page")


def may(caller: Caller, scope: str) -> bool:
    try:
        require_scope(caller, scope)
    except AccessDenied:
        return False
    return True


def sign_in_response(request: Request, token: str, target: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings(request).secure_cookies,
        path="/",
    )
    return response


def safe_target(target: str | None) -> str:
    """Where to go after signing in: a page of the UI, never another site."""
    if target and target.startswith("/ui") and "//" not in target and "\\" not in target:
        return target
    return "/ui/observations"
