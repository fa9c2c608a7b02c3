"""What an API server may be set to (``ccat-hpc api serve`` options)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from ccat_hpc.pipeline.manifest import MAX_MANIFEST_BYTES


@dataclass(frozen=True)
class ApiSettings:
    #: the largest request body, but for filing a manifest
    max_body_bytes: int = 1024**2
    #: the largest manifest filed through the API
    max_manifest_bytes: int = MAX_MANIFEST_BYTES
    #: requests per second each token (or, without one, each client address) may make;
    #: 0 turns the limit off
    rate_per_second: float = 50.0
    #: how many requests a token may make at once before the rate applies
    rate_burst: int = 200
    #: long-polls one token may hold at once
    waits_per_token: int = 8
    #: the longest a long-poll (``staging/{id}/wait``) holds a request
    wait_max_seconds: float = 60.0
    #: the status summary (API and monitor) is at most this old (0: computed every time)
    status_max_age_seconds: float = 15.0
    #: sign-in cookies only over HTTPS (set behind a TLS proxy)
    secure_cookies: bool = False
    #: the key of the web UI's form fields (one per server; workers share it)
    form_key: str = field(default_factory=lambda: secrets.token_hex(32))
    #: manifests filed at once (each is held in memory while it is checked)
    max_concurrent_filings: int = 2
    #: the longest a manifest may take to arrive (a slow upload holds a filing's place)
    body_seconds: float = 300.0
