"""The manifest reader against hostile input: every problem is a ManifestError naming the field.

Nothing a manifest holds may end in another exception (the watcher would stop on it),
nor reach ops-db as a value it cannot store.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccat_hpc.errors import ManifestError
from ccat_hpc.pipeline.manifest import manifest_digest, parse_manifest, read_manifest
from ccat_hpc.text import one_line
from tests.unit.test_manifest import good as manifest_example


def good() -> dict[str, Any]:
    raw = manifest_example()
    raw["files"][0]["xxh3_128"] = None
    raw["executed_obs_unit"]["mean_pwv_mm"] = 0.6
    return raw


def read_text(tmp_path: Path, text: str | bytes) -> Any:
    path = tmp_path / "m.json"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    return read_manifest(path)


GOOD_TEXT = json.dumps(good())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested deeper than 32 levels"),
        (GOOD_TEXT.replace('"size": 10', '"size": ' + "9" * 5000), "too many digits"),
        (GOOD_TEXT.replace('"size": 10', '"size": 99999999999999999999'), "files[0].size"),
        (GOOD_TEXT.replace('"success"', '"\\ud800"'), "executed_obs_unit.status: contains an"),
        (GOOD_TEXT.replace('"PrimeCam"', '"Prime\\u0000Cam"'), "instrument: contains a NUL"),
        (GOOD_TEXT.replace("0.6", "NaN"), "executed_obs_unit.mean_pwv_mm: NaN is not allowed"),
        (GOOD_TEXT.replace("0.6", "Infinity"), "mean_pwv_mm: Infinity is not allowed"),
        (GOOD_TEXT.replace("0.6", "-Infinity"), "mean_pwv_mm: -Infinity is not allowed"),
        (GOOD_TEXT.replace("0.6", "1e999"), "mean_pwv_mm: number out of range"),
        (GOOD_TEXT.replace("0.6", "true"), "mean_pwv_mm: Input should be a valid number"),
        (GOOD_TEXT.replace("0.6", '"0.6"'), "mean_pwv_mm: Input should be a valid number"),
        (GOOD_TEXT.replace('"size": 10', '"size": true'), "files[0].size"),
        (GOOD_TEXT.replace('"size": 10', '"size": 10.0'), "files[0].size"),
        (GOOD_TEXT.replace('"size": 10', '"size": "10"'), "files[0].size"),
        (
            GOOD_TEXT.replace("2026-11-23T03:00:00Z", "0001-01-01T00:00:00+01:00"),
            "executed_obs_unit.start_time: must be between 1970 and 2999 (in UTC)",
        ),
        (
            GOOD_TEXT.replace("2026-11-23T03:30:00Z", "9999-12-31T23:59:59-14:00"),
            "executed_obs_unit.end_time: must be between 1970 and 2999",
        ),
        (GOOD_TEXT.replace("obs-0001/det_000.g3", "obs-0001/det\\n000.g3"), "control character"),
        (GOOD_TEXT.replace("obs-0001/det_000.g3", "obs/" + "x" * 256), "longer than 255 bytes"),
        (GOOD_TEXT.replace('"PrimeCam"', '"' + "P" * 101 + '"'), "instrument: String should"),
        ('"just a string"', "manifest must be a JSON object"),
        (b"\xff\xfe{}", "manifest is not UTF-8 text"),
        ("", "invalid JSON at line 1 column 1"),
    ],
)
def test_hostile_manifests_are_rejected_naming_the_problem(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        read_text(tmp_path, text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "Value error" not in str(caught.value)


def test_unknown_keys_with_unstorable_values_are_rejected_too(tmp_path: Path) -> None:
    raw = good()
    raw["files"][0]["detector"] = {"gain": float("nan")}
    with pytest.raises(ManifestError, match=r"files\[0\]\.detector\.gain: number out of range"):
        parse_manifest(raw)
    raw["files"][0]["detector"] = {"na\x00me": 1}
    with pytest.raises(ManifestError, match=r"files\[0\]\.detector: a key contains a NUL"):
        parse_manifest(raw)


def test_the_reserved_execution_key_is_refused() -> None:
    raw = good()
    raw["executed_obs_unit"]["manifest"] = {"x": 1}
    with pytest.raises(ManifestError, match="executed_obs_unit: 'manifest' is reserved"):
        parse_manifest(raw)


def test_a_fifo_in_place_of_a_manifest_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "waiting.json"
    os.mkfifo(fifo)
    with pytest.raises(ManifestError, match="not a regular file"):
        read_manifest(fifo)


def test_a_good_manifest_still_reads(tmp_path: Path) -> None:
    manifest, digest = read_text(tmp_path, GOOD_TEXT)
    assert manifest.executed_obs_unit.mean_pwv_mm == 0.6 and len(digest) == 32


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None, blacklist_categories=()), max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
PLACES = [
    ("manifest_version",),
    ("instrument",),
    ("executed_obs_unit", "id"),
    ("executed_obs_unit", "start_time"),
    ("executed_obs_unit", "mean_pwv_mm"),
    ("executed_obs_unit", "weather"),
    ("files",),
    ("files", 0, "path"),
    ("files", 0, "size"),
    ("files", 0, "xxh3_128"),
    ("files", 0, "extra"),
    ("extra",),
]


def _put(raw: dict[str, Any], place: tuple[Any, ...], value: Any) -> None:
    target: Any = raw
    for key in place[:-1]:
        target = target[key]
    target[place[-1]] = value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(place=st.sampled_from(PLACES), value=JSON_VALUES)
def test_any_value_anywhere_is_accepted_or_a_manifest_error(
    place: tuple[Any, ...], value: Any
) -> None:
    raw = copy.deepcopy(good())
    _put(raw, place, value)
    try:
        manifest = parse_manifest(raw)
    except ManifestError as exc:
        assert "\n" not in str(exc)
        return
    json.dumps(manifest.extra(), allow_nan=False).encode("utf-8")  # storable as it is
    assert len(manifest_digest(raw)) == 32


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_bytes_are_a_manifest_or_a_manifest_error(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "m.json"
    path.write_bytes(data)
    with contextlib.suppress(ManifestError):  # anything else fails the test
        read_manifest(path)


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(GOOD_TEXT)), junk=st.text(max_size=5))
def test_damaged_text_is_a_manifest_or_a_manifest_error(
    tmp_path_factory: Any, cut: int, junk: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "m.json"
    path.write_bytes((GOOD_TEXT[:cut] + junk + GOOD_TEXT[cut:]).encode("utf-8", "surrogatepass"))
    with contextlib.suppress(ManifestError):  # anything else fails the test
        read_manifest(path)


def test_one_line_flattens_control_characters_and_cuts_at_the_limit() -> None:
    assert one_line("a\nb\r\n\tc\x1b[1m  d") == "a b c [1m d"
    assert one_line("x" * 10, limit=5) == "xxxx…" and one_line("xxxxx", limit=5) == "xxxxx"
