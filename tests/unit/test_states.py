import enum
import re
from pathlib import Path

import pytest

import ccat_hpc
from ccat_hpc.db.states import (
    TRANSITIONS,
    PackageState,
    PhysicalCopyState,
    RawDataFileState,
    TransferState,
    check_transition,
    is_final,
)
from ccat_hpc.errors import InvalidStateTransition


@pytest.mark.parametrize("machine", list(TRANSITIONS))
def test_every_state_has_an_entry(machine: type[enum.StrEnum]) -> None:
    assert set(TRANSITIONS[machine]) == set(machine)


@pytest.mark.parametrize("machine", list(TRANSITIONS))
def test_every_state_is_reachable_from_the_first(machine: type[enum.StrEnum]) -> None:
    first = next(iter(machine))
    seen, todo = {first}, [first]
    while todo:
        for nxt in TRANSITIONS[machine][todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(machine)


def test_allowed_and_forbidden_transitions() -> None:
    check_transition(RawDataFileState.FILED, RawDataFileState.CHECKSUMMING)
    check_transition(RawDataFileState.CORRUPT, RawDataFileState.FILED)
    with pytest.raises(InvalidStateTransition, match="filed → checksummed"):
        check_transition(RawDataFileState.FILED, RawDataFileState.CHECKSUMMED)
    with pytest.raises(InvalidStateTransition, match="archived → filed"):
        check_transition(RawDataFileState.ARCHIVED, RawDataFileState.FILED)
    with pytest.raises(InvalidStateTransition, match="cannot move"):
        check_transition(PackageState.BUILT, TransferState.RUNNING)


def test_copies_are_only_deleted_through_deletion_pending() -> None:
    sources = [
        s for s, nxt in TRANSITIONS[PhysicalCopyState].items() if PhysicalCopyState.DELETED in nxt
    ]
    assert set(sources) == {
        PhysicalCopyState.DELETION_PENDING,
        PhysicalCopyState.MISSING,
        PhysicalCopyState.FAILED,
    }
    assert PhysicalCopyState.PRESENT not in sources


def test_final_states() -> None:
    assert is_final(TransferState.SUCCEEDED)
    assert is_final(PackageState.ARCHIVED)
    assert not is_final(TransferState.RETRY_WAIT)


def test_no_code_assigns_a_state_directly() -> None:
    """Every state change goes through the guarded helper (ccat_hpc.db.transitions)."""
    package = Path(ccat_hpc.__file__).parent
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.state\s*=[^=]", line)
    ]
    assert offenders == []
