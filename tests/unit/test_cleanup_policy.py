"""Cleanup's decision: which copy may go, and the proof; no sequence of events ever lets
cleanup remove the last verified copy of a file (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ccat_hpc.db.states import LocationType, PhysicalCopyState
from ccat_hpc.pipeline.cleanup_policy import (
    ArchiveCopy,
    CopyToClean,
    decide,
    decide_for_packages,
)

C = PhysicalCopyState
L = LocationType
NOW = datetime(2026, 12, 5, tzinfo=UTC)
ARCHIVED = ArchiveCopy("cologne-archive", C.VERIFIED, NOW - timedelta(days=1))


def source_copy(days_old: float, **changes: object) -> CopyToClean:
    copy = CopyToClean(1, "chile-source", L.SOURCE, C.VERIFIED, NOW - timedelta(days=days_old), 30)
    return replace(copy, **changes)  # type: ignore[arg-type]


def test_a_copy_past_its_retention_with_a_verified_archive_copy_goes_with_its_proof() -> None:
    verdict = decide(source_copy(31), [ARCHIVED, ArchiveCopy("b", C.CORRUPT)], NOW)
    assert verdict.delete and verdict.proof == (ARCHIVED,)
    assert "30 day(s)" in verdict.reason


def test_too_young_no_retention_or_no_verified_archive_copy_keeps_it() -> None:
    assert "until" in decide(source_copy(29), [ARCHIVED], NOW).reason
    assert not decide(source_copy(29), [ARCHIVED], NOW).delete
    assert not decide(source_copy(400, retention_days=None), [ARCHIVED], NOW).delete
    damaged = [ArchiveCopy("a", C.CORRUPT), ArchiveCopy("b", C.MISSING)]
    verdict = decide(source_copy(31), damaged, NOW)
    assert not verdict.delete and verdict.reason.startswith("0 verified")
    assert not decide(source_copy(31), [ARCHIVED], NOW, required=2).delete


def test_nothing_in_a_long_term_archive_and_nothing_half_written_is_deleted() -> None:
    archive = source_copy(999, location_type=L.LONG_TERM_ARCHIVE)
    assert not decide(archive, [ARCHIVED, ARCHIVED], NOW).delete
    assert not decide(source_copy(999, state=C.PENDING), [ARCHIVED], NOW).delete
    assert not decide(source_copy(999, state=C.DELETED), [ARCHIVED], NOW).delete


def test_staged_data_goes_when_its_staging_expired_or_was_released() -> None:
    staged = source_copy(1, location_type=L.PROCESSING, retention_days=None)
    assert not decide(staged, [ARCHIVED], NOW).delete  # no expiry: kept
    later = replace(staged, expires_at=NOW + timedelta(hours=1))
    assert not decide(later, [ARCHIVED], NOW).delete
    assert decide(replace(staged, expires_at=NOW), [ARCHIVED], NOW).delete


def test_a_transfer_package_goes_only_when_every_package_in_it_is_archived() -> None:
    other = ArchiveCopy("cologne-archive", C.VERIFIED, NOW, package="rdp-2")
    both = [("rdp-1", [ARCHIVED]), ("rdp-2", [other])]
    verdict = decide_for_packages(source_copy(31), both, NOW)
    assert verdict.delete and verdict.proof == (ARCHIVED, other)
    one_lost = [("rdp-1", [ARCHIVED]), ("rdp-2", [replace(other, state=C.MISSING)])]
    kept = decide_for_packages(source_copy(31), one_lost, NOW)
    assert not kept.delete and kept.reason.startswith("rdp-2: 0 verified")
    assert not decide_for_packages(source_copy(31), [], NOW).delete  # nothing proves it


# -- the safety property, on a model of one file's copies ---------------------------------


@dataclass
class File:
    """One file: its copies outside the archive (location type → state) and in it."""

    copies: dict[LocationType, PhysicalCopyState] = field(
        default_factory=lambda: {L.SOURCE: C.VERIFIED}
    )
    archive: list[PhysicalCopyState] = field(default_factory=list)
    age_days: float = 0.0

    def verified(self) -> int:
        outside = sum(state is C.VERIFIED for state in self.copies.values())
        return outside + sum(state is C.VERIFIED for state in self.archive)

    def cleanup(self) -> None:
        archive = [ArchiveCopy(f"archive-{i}", s) for i, s in enumerate(self.archive)]
        for where, state in list(self.copies.items()):
            copy = CopyToClean(
                0,
                where.value,
                where,
                state,
                NOW - timedelta(days=self.age_days),
                7,
                expires_at=NOW if where is L.PROCESSING else None,
            )
            if decide(copy, archive, NOW).delete:
                self.copies[where] = C.DELETED


EVENTS = st.sampled_from(
    ["archive", "stage", "release", "fail", "corrupt", "lose", "repair", "age", "cleanup"]
)


def apply(file: File, event: str, which: int) -> None:
    if event == "archive" and file.verified():
        file.archive.append(C.VERIFIED)  # a verified copy exists to archive from
    elif event == "stage" and file.archive:
        file.copies.setdefault(L.PROCESSING, C.VERIFIED)
    elif event == "release":
        file.copies.pop(L.PROCESSING, None)
    elif event == "fail":
        file.copies.setdefault(L.BUFFER, C.PENDING)  # a transfer that never finished
    elif event in ("corrupt", "lose", "repair") and file.archive:
        index = which % len(file.archive)
        new = {"corrupt": C.CORRUPT, "lose": C.MISSING, "repair": C.VERIFIED}[event]
        if event != "repair" or file.verified():
            file.archive[index] = new
    elif event == "age":
        file.age_days += 10
    elif event == "cleanup":
        before = file.verified()
        file.cleanup()
        assert file.verified() >= min(before, 1), (before, file)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.integers(0, 3)), max_size=40))
def test_no_sequence_of_events_lets_cleanup_remove_the_last_verified_copy(
    events: list[tuple[str, int]],
) -> None:
    file = File()
    for event, which in events:
        apply(file, event, which)
