"""Request limits: a rate per client address and per token, a size per body, a number
of long-polls per token.

:class:`TokenBucket` is the decision (pure: it is given the time). :class:`RequestLimits`
is the ASGI middleware, before any work: a client address over its rate (a multiple of
a token's, so that one address may serve several users) is answered 429 with
Retry-After, a body over its limit 413, both as problem details. A token's own rate is
checked once the token is known to be valid (``deps.current_caller``), so a made-up
token buys no bucket of its own.
"""

from __future__ import annotations

import ipaddress
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import anyio

from ccat_hpc.api.problems import MEDIA_TYPE, TYPE_PREFIX, BodyTooLarge, TooManyRequests

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: the callers remembered at once (the oldest are forgotten first)
MAX_CALLERS = 10_000
#: asked by supervisors and load balancers: never limited
UNLIMITED = frozenset({"/health", "/ready"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
#: an address may make this many times a token's rate
ADDRESS_FACTOR = 4


class TokenBucket:
    """``rate`` requests per second for each key, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        if not (math.isfinite(rate) and rate > 0 and burst >= 1):
            raise ValueError("a rate limit needs a rate above 0 and a burst of at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> float:
        """0.0 if ``key`` may make a request now (and count it), else the seconds to wait.
        Safe from several threads at once."""
        with self._lock:
            return self._take(key, now)

    def _take(self, key: str, now: float) -> float:
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


def address_key(scope: Scope) -> str:
    """The client's address, an IPv6 address by its /64 (a host has a whole /64 to
    choose from); a token's own rate is checked once the token is."""
    host = str((scope.get("client") or ("unknown", 0))[0])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"address:{host}"
    if address.version == 6:
        return f"address:{ipaddress.ip_network(f'{host}/64', strict=False)}"
    return f"address:{host}"


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
        if self.bucket is not None and scope["path"] not in UNLIMITED:
            wait = self.bucket.take(address_key(scope), self.clock())
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
        if declared is None and limit == self.max_body and scope["method"] in WITH_BODY:
            body = await _read_up_to(receive, limit)  # small: read ahead, answer 413 here
            if body is None:
                await _too_large(send, limit)
                return
            if isinstance(body, Disconnected):
                return
            receive = _replay(body)
        await self.app(scope, _counted(receive, limit), send)


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


class Disconnected:
    """The client left before its body was whole."""


async def _read_up_to(receive: Receive, limit: int) -> bytes | Disconnected | None:
    """A small body sent without a length, whole; None once it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return Disconnected()
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
            await anyio.sleep_forever()  # as a client that is still there: no disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _counted(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises BodyTooLarge once more than ``limit`` bytes came (a body
    sent without a length is counted as it streams, never read ahead)."""
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(f"the request body is larger than {limit} bytes")
        return message

    return counting


class WaitCounter:
    """How many long-polls each caller holds at once (at most ``most``)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def one(self, key: str) -> Iterator[None]:
        with self._lock:
            if self._held.get(key, 0) >= self.most:
                raise TooManyRequests(
                    f"at most {self.most} waits at once per token; try again later", 5
                )
            self._held[key] = self._held.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]
