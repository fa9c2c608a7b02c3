"""Users and their API tokens in ops-db.

A token is ``ccat_<prefix>_<secret>``: 32 random bytes, shown once when it is made.
ops-db keeps only its SHA-256 (a token is long and random, so a fast hash is as good
as a slow one here, and it lets a request find its token by an index) and the prefix,
which names the token in listings and logs. A token is refused once it has expired or
been revoked, or its user has been deactivated; its scopes are at most its user's.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.access.policy import ROLES, Caller, check_scopes, scopes_of
from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import ApiToken, Instrument, Role, User
from ccat_hpc.errors import CcatHpcError, NotFoundError, UsageError
from ccat_hpc.inventory import lookup
from ccat_hpc.pipeline.staging_request import check_username

TOKEN_FORMAT = re.compile(r"ccat_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
#: a token lives this long unless asked otherwise, and within these bounds
DEFAULT_DAYS = 90
MIN_DAYS = 0.01
MAX_DAYS = 3650
PREFIX_FORMAT = re.compile(r"[0-9a-f]{8}")
#: a token's last use is recorded to this precision
LAST_USE_PRECISION = timedelta(minutes=1)


class TokenRefused(CcatHpcError):
    """A token that is unknown, malformed, expired, revoked, or of an inactive user. The
    message never holds the token."""

    exit_code = 4


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(token, prefix) of a fresh random token."""
    prefix = secrets.token_hex(4)
    return f"ccat_{prefix}_{secrets.token_urlsafe(32)}", prefix


@dataclass(frozen=True)
class NewToken:
    id: int
    token: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None


def add_user(
    session: Session,
    username: str,
    roles: list[str],
    *,
    instrument: str | None = None,
    email: str = "",
    full_name: str = "",
) -> User:
    """A new user with ``roles`` (an instrument user names their instrument)."""
    check_username(username)
    roles = sorted(set(roles))
    if len(email) > 255 or len(full_name) > 200:
        raise UsageError("an email has at most 255 characters, a full name at most 200")
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise UsageError(f"give one or more roles of: {', '.join(ROLES)}")
    if ("instrument" in roles) != (instrument is not None):
        raise UsageError("an instrument user names its instrument (--instrument), no other does")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UsageError(f"there is a user {username} already")
    user = User(username=username, email=email, full_name=full_name)
    if instrument is not None:
        user.instrument_id = lookup.instrument_id(session, instrument)
    user.roles = [_role(session, name) for name in roles]
    session.add(user)
    session.flush()
    return user


def _role(session: Session, name: str) -> Role:
    role = session.scalars(select(Role).where(Role.name == name)).first()
    if role is None:
        role = Role(name=name)
        session.add(role)
        session.flush()
    return role


def user_named(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFoundError(f"no user {username}")
    return user


def create_token(
    session: Session,
    username: str,
    *,
    name: str = "",
    scopes: list[str] | None = None,
    days: float | None = DEFAULT_DAYS,
) -> NewToken:
    """A new token for the user (the caller commits); the token itself is in the result
    only, never in ops-db."""
    user = user_named(session, username)
    if not user.active:
        raise UsageError(f"user {username} is deactivated")
    try:
        granted = check_scopes(scopes or [], [r.name for r in user.roles])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if days is not None and not (math.isfinite(days) and MIN_DAYS <= days <= MAX_DAYS):
        raise UsageError(f"a token lives {MIN_DAYS} to {MAX_DAYS} days (or never: no expiry)")
    token, prefix = new_token()
    while session.scalar(select(ApiToken.id).where(ApiToken.prefix == prefix)) is not None:
        token, prefix = new_token()  # prefixes name tokens: never two alike
    expires = None if days is None else utcnow() + timedelta(days=days)
    row = ApiToken(
        user_id=user.id,
        name=name[:100],
        prefix=prefix,
        token_hash=token_hash(token),
        expires_at=expires,
        scopes=sorted(granted),
    )
    session.add(row)
    session.flush()
    return NewToken(row.id, token, prefix, sorted(granted), expires)


def revoke(session: Session, which: str) -> ApiToken:
    """Revoke the token named by its prefix (as listings show it) or given whole; the
    error never repeats a whole token."""
    if TOKEN_FORMAT.fullmatch(which):
        row = session.scalars(
            select(ApiToken).where(ApiToken.token_hash == token_hash(which))
        ).first()
        if row is None:
            raise NotFoundError(f"token {which.split('_')[1]}… is not known")
    elif PREFIX_FORMAT.fullmatch(which):
        row = session.scalars(select(ApiToken).where(ApiToken.prefix == which)).first()
        if row is None:
            raise NotFoundError(f"no token {which}")
    else:
        raise UsageError("name a token by its prefix (8 hex digits, as `token list` shows it)")
    if not row.revoked:
        row.revoked = True
        row.revoked_at = utcnow()
    return row


def caller_of(session: Session, token: str, now: datetime | None = None) -> Caller:
    """Who holds ``token``; TokenRefused with the reason (never the token) otherwise.
    The token's last use is recorded."""
    if not TOKEN_FORMAT.fullmatch(token):
        raise TokenRefused("not a ccat-hpc API token")
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).first()
    prefix = token.split("_")[1]
    if row is None:
        raise TokenRefused(f"token {prefix}… is not known")
    now = now or utcnow()
    if row.revoked:
        raise TokenRefused(f"token {prefix}… was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenRefused(f"token {prefix}… expired at {row.expires_at.isoformat()}")
    user = row.user
    if not user.active:
        raise TokenRefused(f"the user of token {prefix}… is deactivated")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USE_PRECISION:
        row.last_used_at = now  # not on every request: a write each time would cost
    instrument = None
    if user.instrument_id is not None:
        instrument = session.get_one(Instrument, user.instrument_id).name
    return Caller(
        username=user.username,
        roles=frozenset(r.name for r in user.roles),
        token_scopes=frozenset(row.scopes),
        instrument=instrument,
        token=prefix,
    )


def token_rows(session: Session, username: str | None = None) -> list[dict[str, Any]]:
    """The tokens (never their hash), newest first."""
    query = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
    if username is not None:
        query = query.where(User.username == username)

    def when(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat(timespec="seconds")

    return [
        {
            "prefix": row.prefix,
            "user": owner,
            "name": row.name,
            "scopes": sorted(set(row.scopes) & scopes_of(r.name for r in row.user.roles)),
            "created_at": when(row.created_at),
            "expires_at": when(row.expires_at),
            "last_used_at": when(row.last_used_at),
            "revoked_at": when(row.revoked_at),
            "state": "revoked" if row.revoked else _state(row),
        }
        for row, owner in session.execute(query.order_by(ApiToken.id.desc()))
    ]


def _state(row: ApiToken) -> str:
    if row.expires_at is not None and row.expires_at <= utcnow():
        return "expired"
    return "valid"


def user_rows(session: Session) -> list[dict[str, Any]]:
    rows = []
    for user in session.scalars(select(User).order_by(User.username)):
        instrument = None
        if user.instrument_id is not None:
            instrument = session.get_one(Instrument, user.instrument_id).name
        rows.append(
            {
                "username": user.username,
                "roles": sorted(r.name for r in user.roles),
                "instrument": instrument,
                "active": user.active,
                "tokens": sum(1 for t in user.api_tokens if not t.revoked and _state(t) == "valid"),
            }
        )
    return rows
