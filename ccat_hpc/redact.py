"""Keeping the ops-db password out of every message, log and error.

``redact_url`` shows a database URL without its password; ``scrub`` removes every
form of that password (as written, %-decoded, %-encoded, as a query value) from any
text. Both take hostile text: they never raise, and where a URL's shape is unclear
they hide more rather than less. Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MASK = "***"
SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://(.*)", re.DOTALL)
#: a query key holding one of these (in lower case) holds a secret
SECRET_KEY_PARTS = ("pass", "pwd", "secret", "token", "credential", "apikey", "api_key")
#: what replaces a secret in text: the first that shares no character with the secret
MARKERS = ("***", "~~~", "^^^", "|||", "\u2026")
FALLBACK = "[text hidden: it contained the ops-db password]"
QUERY_PAIR_RE = re.compile(r"(?:^|[?&;])([^=&;?]*)=([^&;]*)")


def is_secret_key(key: str) -> bool:
    """Whether a URL query key names a secret (``password``, ``sslpassword``, ``token``…)."""
    lowered = unquote_plus(key).lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def split_scheme(url: str) -> tuple[str, str] | None:
    """``(scheme, rest)`` of ``scheme://rest``; None for text without a scheme (a path)."""
    match = SCHEME_RE.fullmatch(url)
    return (match.group(1), match.group(2)) if match else None


def userinfo_end(body: str) -> int | None:
    """Where the ``@`` ending the user info is, or None when there is no user info.

    Raises ValueError when the place of the user info is unclear: a second ``@``, or
    an ``@`` after ``/``, ``?`` or ``#`` (a password that was not %-encoded).
    """
    at = body.find("@")
    if at < 0:
        return None
    if body.count("@") > 1 or any(char in body[:at] for char in "/?#"):
        raise ValueError("unclear user info")
    return at


def _redact_query(text: str) -> str:
    def hide(match: re.Match[str]) -> str:
        if not is_secret_key(match.group(1)):
            return match.group(0)
        return match.group(0)[: match.start(2) - match.start(0)] + MASK

    return QUERY_PAIR_RE.sub(hide, text)


def _redact_body(body: str) -> str:
    at = userinfo_end(body)
    if at is None:
        return _redact_query(body)
    user, colon, _ = body[:at].partition(":")
    shown = f"{user}:{MASK}" if colon else user
    return f"{shown}@{_redact_query(body[at + 1 :])}"


def redact_url(url: str) -> str:
    """The URL with its password (user info and query) replaced, for messages and logs."""
    parts = split_scheme(url)
    if parts is None:
        return url
    scheme, body = parts
    try:
        return f"{scheme}://{_redact_body(body)}"
    except ValueError:
        return f"{scheme}://{MASK}"


def _userinfo_password(body: str) -> str:
    """The password as written: from the first ``:`` to the last ``@`` (an unencoded
    ``@`` in a password is taken as part of it)."""
    colon, last_at = body.find(":"), body.rfind("@")
    return body[colon + 1 : last_at] if 0 <= colon < last_at else ""


def written_secrets(url: str) -> list[str]:
    """Every secret of ``url`` as it is written there (password, secret query values)."""
    parts = split_scheme(url)
    if parts is None:
        return []
    body = parts[1]
    found = [_userinfo_password(body)]
    found += [m.group(2) for m in QUERY_PAIR_RE.finditer(body) if is_secret_key(m.group(1))]
    return [secret for secret in found if secret]


def _encodings(value: str) -> set[str]:
    forms = {
        quote(value, safe=""),
        quote(value, safe="/"),
        quote(value, safe=" +"),
        quote_plus(value, safe=""),
        quote_plus(value),
    }
    return forms | {form.lower() for form in forms}


def secret_forms(url: str) -> set[str]:
    """Every form a secret of ``url`` may take in text: raw, %-decoded, %-encoded, repr."""
    forms: set[str] = set()
    for written in written_secrets(url):
        for plain in {written, unquote(written), unquote_plus(written)}:
            forms |= {plain, repr(plain)[1:-1]} | _encodings(plain)
    return {form for form in forms if form}


def _marker_for(forms: set[str]) -> str | None:
    used = set("".join(forms))
    return next((m for m in MARKERS if not used & set(m)), None)


def scrub(text: str, *urls: str | None) -> str:
    """``text`` without any form of the secrets of ``urls`` (the ops-db URLs in use).

    A secret is replaced by a marker that shares no character with it, so no new
    occurrence can form around the marker; if every marker would, the whole text is
    replaced.
    """
    forms: set[str] = set()
    for url in urls:
        forms |= secret_forms(url) if url else set()
    if not forms:
        return text
    marker = _marker_for(forms)
    if marker is None:
        return "" if any(form in FALLBACK for form in forms) else FALLBACK
    alternatives = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
    return re.sub(alternatives, marker, text, flags=re.IGNORECASE)
