"""Request limits before any work is done: a rate per token and a size per body.

:class:`TokenBucket` is the decision (pure: it is given the time). :class:`RequestLimits`
is the ASGI middleware: a caller over their rate is answered 429 with Retry-After, a
body over its limit 413, both as problem details, before the application reads
anything. Callers are told apart by their token's prefix, or without one by their
address; the token itself is never kept.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ccat_hpc.api.problems import MEDIA_TYPE, TYPE_PREFIX

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: the callers remembered at once (the oldest are forgotten first)
MAX_CALLERS = 10_000
_PREFIX = re.compile(rb"ccat_([0-9a-f]{8})_")


class TokenBucket:
    """``rate`` requests per second for each key, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        if not (math.isfinite(rate) and rate > 0 and burst >= 1):
            raise ValueError("a rate limit needs a rate above 0 and a burst of at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """0.0 if ``key`` may make a request now (and count it), else the seconds to wait."""
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > MAX_CALLERS:
            self._buckets.popitem(last=False)
        return wait


def caller_key(scope: Scope) -> str:
    """The token's prefix when the request carries one, else the client's address."""
    for name, value in scope.get("headers", ()):
        if name in (b"authorization", b"cookie"):
            found = _PREFIX.search(value)
            if found:
                return "token:" + found.group(1).decode()
    client = scope.get("client") or ("unknown", 0)
    return f"address:{client[0]}"


async def send_problem(
    send: Send, status: int, slug: str, title: str, detail: str, headers: dict[str, str]
) -> None:
    body = json.dumps(
        {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    ).encode()
    raw = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: the rate and body limits."""

    def __init__(
        self,
        app: App,
        *,
        max_body: int,
        large_bodies: dict[tuple[str, str], int],
        bucket: TokenBucket | None,
        clock: Callable[[], float],
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.large_bodies = large_bodies
        self.bucket = bucket
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.bucket is not None:
            wait = self.bucket.take(caller_key(scope), self.clock())
            if wait > 0:
                seconds = str(max(1, math.ceil(wait)))
                detail = f"too many requests: try again in {seconds} s"
                await send_problem(
                    send, 429, "rate-limited", "Too many requests", detail, {"Retry-After": seconds}
                )
                return
        limit = self.large_bodies.get((scope["method"], scope["path"]), self.max_body)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            body = await _read_up_to(receive, limit)
            if body is None:
                await _too_large(send, limit)
                return
            receive = _replay(body)
        await self.app(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    detail = f"the request body is larger than {limit} bytes"
    await send_problem(send, 413, "too-large", "Request too large", detail, {})


async def _read_up_to(receive: Receive, limit: int) -> bytes | None:
    """A body sent without a length, whole; None once it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
