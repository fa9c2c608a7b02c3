"""Roles and scopes as data, and the one decision made from them (pure: no I/O).

A user holds roles; a role grants scopes; a token carries some of its user's scopes
(all of them unless it was made narrower). A request needs one scope, and an
``instrument`` user may file observations of their own instrument only.

    instrument  file observations (its instrument's), read
    scientist   read; stage and release their own requests (within their quota)
    operator    everything but user administration
    admin       everything
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: what a token may be allowed, each a verb on a kind of thing
SCOPES = (
    "read",
    "observations:file",
    "staging:own",
    "staging:all",
    "campaigns",
    "pipeline:operate",
    "users:admin",
)

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "instrument": frozenset({"read", "observations:file"}),
    "scientist": frozenset({"read", "staging:own"}),
    "operator": frozenset(set(SCOPES) - {"users:admin"}),
    "admin": frozenset(SCOPES),
}
ROLES = tuple(ROLE_SCOPES)


class AccessDenied(Exception):
    """The caller may not do this; the message says what was missing."""


class WrongInstrumentDenied(AccessDenied):
    """An instrument user's filing of another instrument's observation."""


@dataclass(frozen=True)
class Caller:
    """Who is asking: their name, roles, the token's scopes, and (instrument users) the
    instrument they file for."""

    username: str
    roles: frozenset[str]
    token_scopes: frozenset[str]
    instrument: str | None = None
    #: the prefix of the token used (names it in logs; never the token itself)
    token: str | None = None

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes in effect: the token's, as far as the user's roles grant them."""
        granted = scopes_of(self.roles)
        return self.token_scopes & granted


def scopes_of(roles: Iterable[str]) -> frozenset[str]:
    found: set[str] = set()
    for role in roles:
        found |= ROLE_SCOPES.get(role, frozenset())
    return frozenset(found)


def check_scopes(asked: Iterable[str], roles: Iterable[str]) -> frozenset[str]:
    """The scopes a new token may carry: those asked (all of the roles' when none), each
    known and granted by the roles; else ValueError naming the first that is not."""
    granted = scopes_of(roles)
    wanted = frozenset(asked) or granted
    for scope in sorted(wanted):
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}")
        if scope not in granted:
            raise ValueError(f"scope {scope!r} is not granted by the roles {sorted(roles)}")
    return wanted


def require(caller: Caller, scope: str, *, instrument: str | None = None) -> None:
    """AccessDenied unless the caller holds ``scope``; filing also needs the caller's
    instrument to be the observation's (instrument users are bound to one)."""
    require_scope(caller, scope)
    if (
        scope == "observations:file"
        and "operator" not in caller.roles
        and "admin" not in caller.roles
        and (caller.instrument is None or instrument is None or instrument != caller.instrument)
    ):
        raise WrongInstrumentDenied(
            f"{caller.username} files observations of {caller.instrument or 'no instrument'}"
            f", not of {instrument}"
        )


def require_scope(caller: Caller, scope: str) -> None:
    """AccessDenied unless the caller holds ``scope`` (whatever it is asked for)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    if scope not in caller.scopes:
        raise AccessDenied(f"{caller.username} may not do this: it needs the scope {scope!r}")


def may_act_for(caller: Caller, owner: str) -> bool:
    """Whether the caller may act on a staging request of ``owner``."""
    if "staging:all" in caller.scopes:
        return True
    return "staging:own" in caller.scopes and owner == caller.username
