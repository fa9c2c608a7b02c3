"""Messages for unknown names: the closest match and the valid choices."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ccat_hpc.names import MAX_LISTED, closest_names, unknown_name_message

INSTRUMENTS = ["PrimeCam", "CHAI"]
OBS_UNITS = [f"ECDFS-deep-{n:03d}" for n in range(40)] + ["OrionKL-map-001", "Mars-cal-chai"]


def test_close_match_and_short_list_of_choices() -> None:
    message = unknown_name_message("instrument", "PrimeKam", INSTRUMENTS)
    assert (
        message == "unknown instrument 'PrimeKam'; did you mean 'PrimeCam'? (known: CHAI, PrimeCam)"
    )


def test_case_differences_are_close() -> None:
    message = unknown_name_message("instrument", "primecam", INSTRUMENTS)
    assert "did you mean 'PrimeCam'?" in message


def test_no_close_match_lists_the_choices_only() -> None:
    message = unknown_name_message("instrument", "EoR", INSTRUMENTS)
    assert message == "unknown instrument 'EoR' (known: CHAI, PrimeCam)"


def test_long_list_gives_the_count_and_the_closest() -> None:
    message = unknown_name_message("obs unit", "OrionKL-map-01", OBS_UNITS)
    assert message.startswith("unknown obs unit 'OrionKL-map-01'; did you mean 'OrionKL-map-001'?")
    assert f"({len(OBS_UNITS)} known; closest: OrionKL-map-001" in message
    assert "ECDFS-deep-039" not in message and "Mars-cal-chai" not in message


def test_long_list_without_a_close_match_shows_where_it_starts() -> None:
    message = unknown_name_message("obs unit", "Jupiter", OBS_UNITS)
    assert message == (
        f"unknown obs unit 'Jupiter' ({len(OBS_UNITS)} known; first: "
        "ECDFS-deep-000, ECDFS-deep-001, ECDFS-deep-002, …)"
    )


def test_list_at_the_limit_is_shown_in_full() -> None:
    choices = [f"loc-{n:02d}" for n in range(MAX_LISTED)]
    message = unknown_name_message("location", "zzz", choices)
    assert message == f"unknown location 'zzz' (known: {', '.join(choices)})"
    longer = unknown_name_message("location", "zzz", [*choices, "loc-99"])
    assert f"({MAX_LISTED + 1} known; first: loc-00, loc-01, loc-02, …)" in longer


def test_no_choices_at_all() -> None:
    assert unknown_name_message("site", "chile", []) == "unknown site 'chile' (none known)"


def test_duplicate_choices_are_listed_once() -> None:
    message = unknown_name_message("instrument module", "LFB", ["LFA", "HFA", "LFA"])
    assert message == "unknown instrument module 'LFB'; did you mean 'LFA'? (known: HFA, LFA)"


def test_closest_names_best_first() -> None:
    assert closest_names("290GHz", ["850GHz", "280GHz", "EoR-Spec"]) == ["280GHz", "850GHz"]
    assert closest_names("x", ["PrimeCam"]) == []


@given(
    name=st.text(max_size=30),
    choices=st.lists(st.text(alphabet="abcXYZ019-_", min_size=1, max_size=12), max_size=40),
)
def test_message_is_one_line_naming_what_and_name(name: str, choices: list[str]) -> None:
    message = unknown_name_message("location", name, choices)
    assert message.startswith(f"unknown location {name!r}")
    assert "\n" not in message
    if 0 < len(set(choices)) <= MAX_LISTED:
        assert all(choice in message for choice in choices)
