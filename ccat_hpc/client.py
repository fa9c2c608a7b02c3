"""A client of the REST API for the CLI: ``ccat-hpc stage|status|trace|file|watch
--api URL`` with a token and no database credentials (a scientist's job on RAMSES, an
instrument computer in Chile).

The token comes from ``$CCAT_HPC_TOKEN`` or from a file only its owner may read
(``--token-file``, ``$CCAT_HPC_TOKEN_FILE``). Problems the API answers become the
CLI's own errors and exit codes, with the API's one-line detail. Standard library only.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccat_hpc.errors import (
    CcatHpcError,
    ConfigError,
    DatabaseUnavailable,
    ManifestError,
    NotFoundError,
    UsageError,
)

API_ENV = "CCAT_HPC_API"
TOKEN_ENV = "CCAT_HPC_TOKEN"
TOKEN_FILE_ENV = "CCAT_HPC_TOKEN_FILE"
ALLOW_HTTP_ENV = "CCAT_HPC_API_ALLOW_HTTP"
#: seconds a request may take (a long-poll asks for less)
TIMEOUT = 120.0
MAX_TOKEN_FILE = 4096


class AccessRefused(CcatHpcError):
    """The API refused the token (unknown, expired, revoked) or what it may do."""

    exit_code = 4


class QuotaRefused(CcatHpcError):
    exit_code = 10


class ApiUnavailable(DatabaseUnavailable):
    """The API cannot be reached, or it cannot use ops-db now."""


def read_token(token_file: str | None) -> str:
    """The token: from ``token_file`` (owner-only permissions) or ``$CCAT_HPC_TOKEN``."""
    if token_file:
        return _token_from_file(Path(token_file))
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            f"no API token: set ${TOKEN_ENV} or give --token-file (ccat-hpc token create)"
        )
    return token


def _token_from_file(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the token file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"the token file {path} may be read by others (mode "
                f"{stat.S_IMODE(info.st_mode):o}): chmod 600 {path}"
            )
        if info.st_uid != os.getuid():
            raise ConfigError(f"the token file {path} belongs to another user")
        data = handle.read(MAX_TOKEN_FILE)
    token = data.decode("utf-8", "replace").strip()
    if not token:
        raise ConfigError(f"the token file {path} is empty")
    return token


def check_api_url(url: str) -> str:
    """The API's base URL (http or https, a host, no credentials), without a final /."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an API URL: {url!r} (e.g. https://ops-db.example.org)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("an API URL holds no credentials, query or fragment")
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not loopback and os.environ.get(ALLOW_HTTP_ENV) != "1":
        raise ConfigError(
            f"the token would cross the network in clear text to {parts.hostname}: use "
            f"https (or set {ALLOW_HTTP_ENV}=1 on a network you trust)"
        )
    return url.rstrip("/")


@dataclass
class Answer:
    status: int
    body: Any


def _error_for(status: int, detail: str) -> CcatHpcError:
    if status in (401, 403):
        return AccessRefused(detail)
    if status == 404:
        return NotFoundError(detail)
    if status == 409 and "quota" in detail.lower():
        return QuotaRefused(detail)
    if status in (429, 502, 503, 504):
        return ApiUnavailable(f"the API is unavailable ({status}): {detail}")
    if status >= 500:
        return CcatHpcError(f"the API failed ({status}): {detail}")
    return UsageError(detail)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: the token is never sent on to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ApiClient:
    """Calls to one API with one token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = check_api_url(url)
        self._token = token
        self._opener = urllib.request.build_opener(_NoRedirect())

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        timeout: float = TIMEOUT,
        accept: tuple[int, ...] = (),
    ) -> Answer:
        """The JSON answer; a problem answer raises its error unless its status is in
        ``accept``."""
        query = urllib.parse.urlencode(
            {k: v for k, v in (params or {}).items() if v is not None}, doseq=True
        )
        url = f"{self.url}{path}" + (f"?{query}" if query else "")
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        call = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(call, timeout=timeout) as response:
                return Answer(response.status, _json(response.read()))
        except urllib.error.HTTPError as exc:
            answer = Answer(exc.code, _json(exc.read()))
            if exc.code in accept:
                return answer
            raise _error_for(exc.code, detail_of(answer)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiUnavailable(f"cannot reach the API at {self.url}: {reason}") from None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).body

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw).body


def detail_of(answer: Answer) -> str:
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return f"HTTP {answer.status}"


def _problem_type(answer: Answer) -> str:
    body = answer.body
    return str(body.get("type", "")) if isinstance(body, dict) else ""


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def file_through(client: ApiClient, path: Path, text: str) -> tuple[str, str, dict[str, Any]]:
    """File one manifest's text; (status, message, answer) as filing a file says them:
    filed, unchanged, rejected (a bad manifest, too large, or another instrument's) or
    deferred (ops-db or the API unavailable). A refused token raises AccessRefused."""
    try:
        answer = client.request(
            "POST",
            "/api/v1/observations",
            params={"name": path.name[:255]},
            raw=text.encode("utf-8"),
            accept=(403, 413, 422),
        )
    except ApiUnavailable as exc:
        return "deferred", str(exc), {}
    except ManifestError as exc:
        return "rejected", str(exc), {}
    if answer.status == 403 and not _problem_type(answer).endswith(":wrong-instrument"):
        raise AccessRefused(detail_of(answer))  # the token may not file at all: stop
    if answer.status in (403, 413, 422):  # this manifest only: another's, too big, bad
        return "rejected", detail_of(answer), {}
    body = answer.body if isinstance(answer.body, dict) else {}
    return str(body.get("status", "filed")), str(body.get("message", "")), body
