import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccat_hpc.errors import ManifestError
from ccat_hpc.paths import check_relative_path
from ccat_hpc.pipeline.manifest import manifest_digest, parse_manifest, read_manifest


def good() -> dict[str, Any]:
    return {
        "manifest_version": 1,
        "instrument": "PrimeCam",
        "instrument_module": "280GHz",
        "obs_unit": "ECDFS-deep-001",
        "executed_obs_unit": {
            "id": str(uuid.UUID(int=1)),
            "start_time": "2026-11-23T03:00:00Z",
            "end_time": "2026-11-23T03:30:00Z",
            "status": "success",
        },
        "location": "chile-source-primecam",
        "files": [{"path": "obs-0001/det_000.g3", "size": 10, "xxh3_128": "AB" * 16}],
    }


def test_good_manifest_parses_and_normalises_checksum() -> None:
    manifest = parse_manifest(good())
    assert manifest.files[0].xxh3_128 == "ab" * 16
    assert manifest.total_bytes == 10


def test_unknown_keys_are_kept_as_metadata() -> None:
    raw = good()
    raw["weather"] = {"pwv": 0.6}
    raw["executed_obs_unit"]["scan_id"] = 17
    raw["files"][0]["detector"] = "w1"
    manifest = parse_manifest(raw)
    assert manifest.extra() == {"weather": {"pwv": 0.6}}
    assert manifest.executed_obs_unit.extra() == {"scan_id": 17}
    assert manifest.files[0].extra() == {"detector": "w1"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.pop("instrument"), "instrument: Field required"),
        (lambda m: m.update(manifest_version=2), "manifest_version"),
        (lambda m: m["executed_obs_unit"].update(id="not-a-uuid"), "executed_obs_unit.id"),
        (lambda m: m["executed_obs_unit"].update(status="great"), "executed_obs_unit.status"),
        (
            lambda m: m["executed_obs_unit"].update(start_time="2026-11-23T03:00:00"),
            "start_time: Input should have timezone info",
        ),
        (
            lambda m: m["executed_obs_unit"].update(end_time="2026-11-23T02:00:00Z"),
            "end_time is before start_time",
        ),
        (lambda m: m.update(files=[]), "files: List should have at least 1 item"),
        (lambda m: m["files"][0].update(size=-1), r"files\[0\].size \(obs-0001/det_000.g3\)"),
        (lambda m: m["files"][0].update(size="10"), r"files\[0\].size"),
        (lambda m: m["files"][0].update(xxh3_128="xyz"), r"files\[0\].xxh3_128"),
        (lambda m: m["files"][0].update(path="../etc/passwd"), "must not contain '..'"),
        (lambda m: m["files"][0].update(path="/etc/passwd"), "must be relative"),
        (lambda m: m["files"].append(dict(m["files"][0])), "listed twice"),
    ],
)
def test_bad_manifests_name_the_field(mutate: Any, message: str) -> None:
    raw = good()
    mutate(raw)
    with pytest.raises(ManifestError, match=message):
        parse_manifest(raw)


def test_not_an_object_is_rejected() -> None:
    with pytest.raises(ManifestError, match="JSON object"):
        parse_manifest([1, 2])


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"manifest_version": 1,\n "files": [}')
    with pytest.raises(ManifestError, match="invalid JSON at line 2"):
        read_manifest(path)


def test_digest_ignores_key_order_and_whitespace(tmp_path: Path) -> None:
    raw = good()
    shuffled = dict(reversed(list(copy.deepcopy(raw).items())))
    assert manifest_digest(raw) == manifest_digest(shuffled)
    changed = copy.deepcopy(raw)
    changed["files"][0]["size"] = 11
    assert manifest_digest(raw) != manifest_digest(changed)
    (tmp_path / "a.json").write_text(json.dumps(raw))
    (tmp_path / "b.json").write_text(json.dumps(shuffled, indent=4))
    assert read_manifest(tmp_path / "a.json")[1] == read_manifest(tmp_path / "b.json")[1]


@pytest.mark.parametrize("path", ["a/../b", "./a", "a//b", "a/", "", "a\\b", "a\x00b"])
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        check_relative_path(path)


@given(st.lists(st.text(alphabet="abc.-_", min_size=1, max_size=5), min_size=1, max_size=4))
def test_accepted_paths_stay_inside_the_root(parts: list[str]) -> None:
    path = "/".join(parts)
    try:
        clean = check_relative_path(path)
    except ValueError:
        return
    resolved = Path("/root", clean).resolve()
    assert resolved.is_relative_to("/root") and resolved != Path("/root")
