"""The access policy as a matrix: every role against every scope, the instrument
binding, and tokens narrower than their user."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccat_hpc.access.policy import (
    ROLES,
    SCOPES,
    AccessDenied,
    Caller,
    check_scopes,
    may_act_for,
    require,
)

ALLOWED = {
    "instrument": {"read", "observations:file"},
    "scientist": {"read", "staging:own"},
    "operator": set(SCOPES) - {"users:admin"},
    "admin": set(SCOPES),
}


def caller(
    role: str, scopes: frozenset[str] | None = None, instrument: str | None = None
) -> Caller:
    granted = frozenset(ALLOWED[role])
    return Caller("someone", frozenset({role}), granted if scopes is None else scopes, instrument)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("scope", SCOPES)
def test_every_role_against_every_scope(role: str, scope: str) -> None:
    who = caller(role, instrument="PrimeCam")
    if scope in ALLOWED[role]:
        require(who, scope, instrument="PrimeCam")
    else:
        with pytest.raises(AccessDenied, match=scope):
            require(who, scope, instrument="PrimeCam")


def test_an_instrument_files_for_its_own_instrument_only() -> None:
    primecam = caller("instrument", instrument="PrimeCam")
    require(primecam, "observations:file", instrument="PrimeCam")
    with pytest.raises(AccessDenied, match="not of CHAI"):
        require(primecam, "observations:file", instrument="CHAI")
    require(caller("operator"), "observations:file", instrument="CHAI")
    # an instrument user bound to nothing, or a filing that names no instrument: refused
    with pytest.raises(AccessDenied):
        require(caller("instrument", instrument=None), "observations:file", instrument=None)
    with pytest.raises(AccessDenied):
        require(primecam, "observations:file", instrument=None)


def test_a_token_is_never_more_than_its_user() -> None:
    # a scientist's token that (somehow) says users:admin still cannot administer
    inflated = caller("scientist", frozenset(SCOPES))
    with pytest.raises(AccessDenied):
        require(inflated, "users:admin")
    narrow = caller("operator", frozenset({"read"}))
    with pytest.raises(AccessDenied):
        require(narrow, "campaigns")
    with pytest.raises(ValueError, match="not granted"):
        check_scopes(["campaigns"], ["scientist"])
    with pytest.raises(ValueError, match="unknown scope"):
        check_scopes(["everything"], ["admin"])
    assert check_scopes([], ["scientist"]) == frozenset({"read", "staging:own"})


def test_a_scientist_acts_on_their_own_stagings_an_operator_on_all() -> None:
    alice = Caller("alice", frozenset({"scientist"}), frozenset({"read", "staging:own"}))
    assert may_act_for(alice, "alice") and not may_act_for(alice, "bob")
    assert may_act_for(caller("operator"), "bob")
    assert not may_act_for(caller("instrument"), "someone")


@given(st.sets(st.sampled_from(ROLES)), st.sets(st.sampled_from(SCOPES)))
def test_effective_scopes_are_granted_by_some_role(roles: set[str], token: set[str]) -> None:
    who = Caller("x", frozenset(roles), frozenset(token))
    for scope in who.scopes:
        assert any(scope in ALLOWED[role] for role in roles)
        assert scope in token
