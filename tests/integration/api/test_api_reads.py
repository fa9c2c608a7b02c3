"""Reading ops-db through the REST API on SQLite and PostgreSQL: observations, files
with every copy and its checksum, packages with members, transfers, locations, the
chain of custody and pipeline status, paged by keyset."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import Api


def test_browse_from_observation_to_the_copies_of_one_file(archived_api: Api) -> None:
    page = archived_api.get("/api/v1/observations", user="alice").json()
    assert len(page["items"]) == 2 and page["next_after"] is None
    assert sorted(o["file_count"] for o in page["items"]) == [2, 3]
    execution = next(o for o in page["items"] if o["file_count"] == 3)
    assert execution["obs_unit"] == "ECDFS-deep-001" and execution["modules"] == ["280GHz"]
    detail = archived_api.get(f"/api/v1/observations/{execution['id']}", user="alice").json()
    assert [f["module"] for f in detail["filings"]] == ["280GHz"]
    assert len(detail["packages"]) == 1
    one = archived_api.get("/api/v1/observations", params={"limit": 1}, user="alice").json()
    rest = archived_api.get(
        "/api/v1/observations", params={"after": one["next_after"]}, user="alice"
    ).json()
    assert [o["id"] for o in one["items"] + rest["items"]] == [o["id"] for o in page["items"]]

    files = archived_api.get(
        "/api/v1/files", params={"execution": execution["id"]}, user="alice"
    ).json()
    assert len(files["items"]) == 3
    first = files["items"][0]
    assert first["locations"] == ["chile-source-primecam"] and first["state"] == "archived"
    shown = archived_api.get(f"/api/v1/files/{first['id']}", user="alice").json()
    assert shown["checksum"] == first["checksum"] and len(shown["checksum"]) == 32
    assert shown["package"]["copies"], "the archive copy of its package is shown"
    archive = [c for c in shown["package"]["copies"] if c["location"] == "cologne-archive"]
    assert archive and archive[0]["state"] == "verified" and archive[0]["verified_at"]

    trace = archived_api.get(f"/api/v1/files/{first['id']}/trace", user="alice").json()
    assert trace["file"]["id"] == first["id"] and trace["package"]["archive_uploads"]
    by_path = archived_api.get("/api/v1/trace", params={"what": first["path"]}, user="alice").json()
    assert by_path["file"]["id"] == first["id"]


def test_lists_are_paged_by_keyset_and_filtered(archived_api: Api) -> None:
    seen: list[int] = []
    after = None
    while True:
        params = {"limit": 2} | ({"after": after} if after is not None else {})
        page = archived_api.get("/api/v1/files", params=params).json()
        seen += [f["id"] for f in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert len(seen) == 5 and seen == sorted(seen) and len(set(seen)) == 5
    only = archived_api.get(
        "/api/v1/files", params={"module": "350GHz", "state": "archived"}
    ).json()
    assert len(only["items"]) == 2
    none = archived_api.get("/api/v1/files", params={"state": "corrupt"}).json()
    assert none == {"items": [], "next_after": None}
    glob = archived_api.get("/api/v1/files", params={"path": "*280GHz*"}).json()
    assert len(glob["items"]) == 3


def test_packages_with_members_transfers_locations_and_status(archived_api: Api) -> None:
    packages = archived_api.get("/api/v1/packages").json()["items"]
    assert sorted(p["files"] for p in packages) == [2, 3]
    one = archived_api.get(f"/api/v1/packages/{packages[0]['name']}").json()
    assert one["member_count"] == packages[0]["files"] == len(one["members"])
    assert {m["checksum"] is not None for m in one["members"]} == {True}
    by_id = archived_api.get(f"/api/v1/packages/rdp:{packages[0]['id']}").json()
    assert by_id["name"] == packages[0]["name"]

    transfers = archived_api.get("/api/v1/transfers").json()["items"]
    assert transfers and transfers[0]["state"] == "succeeded"
    assert transfers[0]["origin"] == "chile-buffer-01"

    places = archived_api.get("/api/v1/locations").json()
    names = {loc["name"] for s in places["sites"]["sites"] for loc in s["locations"]}
    assert {"cologne-archive", "chile-buffer-01"} <= names
    archive_bytes = sum(u["bytes"] for u in places["usage"] if u["location"] == "cologne-archive")
    assert archive_bytes == sum(p["size"] for p in packages)

    status = archived_api.get("/api/v1/status").json()
    assert status["raw_data_files"]["archived"]["count"] == 5
    assert "steps" in status and "open_breakers" in status and "buffers" in status


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/v1/files?limit=0", 422, "query.limit"),
        ("/api/v1/files?limit=10001", 422, "query.limit"),
        ("/api/v1/files?after=-1", 422, "query.after"),
        ("/api/v1/files?state=nonsense", 422, "query.state"),
        ("/api/v1/observations?since=yesterday", 422, "since"),
        ("/api/v1/observations?after=not-a-uuid", 422, "query.after"),
        ("/api/v1/files/99999999999999999999", 422, "path.file_id"),
        ("/api/v1/files?path=%00", 422, "path"),
        ("/api/v1/files?module=no-such-module", 404, None),
        ("/api/v1/files/123456", 404, None),
        ("/api/v1/packages/nope", 404, None),
        ("/api/v1/trace?what=99999999999999999999999", 404, None),
        ("/api/v1/no-such-thing", 404, None),
    ],
)
def test_bad_reads_are_problems_naming_the_field(
    api: Api, path: str, status: int, field: str | None
) -> None:
    answer = api.get(path)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status and body["type"].startswith("urn:ccat-hpc:problem:")
    assert body["detail"] and "Traceback" not in answer.text
    if field is not None:
        assert any(e["field"].startswith(field) for e in body["errors"]), body
