"""Splitting a group of files into packages (pure): every file once, in order, within size."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from ccat_hpc.pipeline.packaging import (
    PACKAGE_OVERHEAD,
    FileToPackage,
    package_name,
    package_path,
    packaged_size,
    plan_parts,
)

files_strategy = st.lists(
    st.builds(
        FileToPackage,
        file_id=st.integers(1, 10**9),
        relative_path=st.text("abc/._-0123", min_size=1, max_size=12),
        size=st.integers(0, 10**6),
    ),
    max_size=60,
    unique_by=lambda f: f.relative_path,
)


@given(files_strategy, st.integers(1, 3 * 10**6))
def test_every_file_lands_in_exactly_one_part_in_path_order(
    files: list[FileToPackage], max_bytes: int
) -> None:
    parts = plan_parts(files, max_bytes)
    flat = [f for part in parts for f in part]
    assert flat == sorted(files, key=lambda f: f.relative_path)
    assert all(parts)  # no empty part


@given(files_strategy, st.integers(1, 3 * 10**6))
def test_a_part_stays_within_the_maximum_unless_it_is_one_file(
    files: list[FileToPackage], max_bytes: int
) -> None:
    for part in plan_parts(files, max_bytes):
        estimate = PACKAGE_OVERHEAD + sum(packaged_size(f.size) for f in part)
        assert estimate <= max_bytes or len(part) == 1


@given(files_strategy, st.integers(1, 3 * 10**6))
def test_the_same_files_in_any_order_give_the_same_parts(
    files: list[FileToPackage], max_bytes: int
) -> None:
    assert plan_parts(files, max_bytes) == plan_parts(list(reversed(files)), max_bytes)


def test_parts_are_filled_greedily() -> None:
    files = [FileToPackage(i, f"f{i}", 1000) for i in range(5)]
    room_for_two = PACKAGE_OVERHEAD + 2 * packaged_size(1000)
    assert [len(p) for p in plan_parts(files, room_for_two)] == [2, 2, 1]
    assert [len(p) for p in plan_parts(files, 10**9)] == [5]
    assert plan_parts([], 10**9) == []


def test_names_and_paths_are_safe_and_readable() -> None:
    execution = uuid.UUID("12345678-1234-5678-1234-567812345678")
    name = package_name("Prime Cam", "280/GHz", execution, 3)
    assert name == "Prime-Cam_280-GHz_12345678-1234-5678-1234-567812345678_p003"
    start = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert package_path(start, name) == f"rdp/2026/01/02/{name}.tar"


def test_the_position_of_a_field_that_crosses_ra_zero() -> None:
    from ccat_hpc.db.models import ConstantElevationSource, FixedSource
    from ccat_hpc.pipeline.archive_metadata import mjd, position

    field = ConstantElevationSource(
        ra_min_deg=350.0, ra_max_deg=10.0, dec_min_deg=-30.0, dec_max_deg=-20.0, elevation_deg=50
    )
    assert position(field) == (0.0, -25.0)
    plain = ConstantElevationSource(
        ra_min_deg=10.0, ra_max_deg=30.0, dec_min_deg=0.0, dec_max_deg=2.0, elevation_deg=50
    )
    assert position(plain) == (20.0, 1.0)
    assert position(FixedSource(ra_deg=83.8, dec_deg=-5.4)) == (83.8, -5.4)
    assert position(None) == (None, None)
    assert mjd(datetime(1858, 11, 17, tzinfo=UTC)) == 0.0
    assert mjd(datetime(2000, 1, 1, 12, tzinfo=UTC)) == 51544.5
