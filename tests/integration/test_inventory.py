"""``ccat-hpc obs|files|catalog|sites``: listing and showing what ops-db holds.

Run through the real entry point on SQLite and PostgreSQL, over observations filed from
synthetic manifests, with some files moved on to other states and locations by hand.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import (
    DataLocation,
    RawDataFile,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import PackageState, PhysicalCopyState, RawDataFileState
from ccat_hpc.inventory.common import glob_to_like, parse_time, table
from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.integration.test_cli import InProcess, one_line_error

PRIMECAM, CHAI = "chile-source-primecam", "chile-source-chai"


@dataclass(frozen=True)
class Obs:
    """One synthetic execution: its modules (name, file count), obs unit and start."""

    label: str
    execution_id: str
    instrument: str
    modules: tuple[tuple[str, int], ...]
    obs_unit: str
    location: str
    start: datetime
    status: str = "success"


# Ids in the reverse order of the start times, and B and E starting at the same second,
# so listing order (start time, then id) and paging across a tie are both tested.
OBSERVATIONS = (
    Obs("A", "dddddddd-0000-4000-8000-000000000000", "PrimeCam", (("280GHz", 3), ("350GHz", 2)),
        "ECDFS-deep-001", PRIMECAM, datetime(2026, 11, 20, 3, tzinfo=UTC)),
    Obs("B", "cccccccc-0000-4000-8000-000000000000", "PrimeCam", (("850GHz", 2),),
        "COSMOS-deep-001", PRIMECAM, datetime(2026, 11, 21, 6, tzinfo=UTC)),
    Obs("E", "eeeeeeee-0000-4000-8000-000000000000", "CHAI", (("HFA", 2),),
        "Mars-cal-chai", CHAI, datetime(2026, 11, 21, 6, tzinfo=UTC)),
    Obs("C", "bbbbbbbb-0000-4000-8000-000000000000", "CHAI", (("LFA", 2),),
        "OrionKL-map-001", CHAI, datetime(2026, 11, 21, 18, tzinfo=UTC)),
    Obs("D", "aaaaaaaa-0000-4000-8000-000000000000", "PrimeCam", (("280GHz", 1),),
        "Deep56-ces-001", PRIMECAM, datetime(2026, 11, 23, 1, tzinfo=UTC), "partial"),
)  # fmt: skip
EXECUTION = {o.label: o.execution_id for o in OBSERVATIONS}
FILE_SIZE = 100
PACKAGE = "D-280GHz-part0.tar"


@dataclass(frozen=True)
class Inventory:
    """What the tests filed: file ids by "LABEL/module" (in filing order), and the db URL."""

    db_url: str
    files: dict[str, list[int]]

    def ids(self, *keys: str) -> list[int]:
        return sorted(i for key in keys for i in self.files[key])

    @property
    def all_ids(self) -> list[int]:
        return sorted(i for ids in self.files.values() for i in ids)


def file_observation(
    factory: sessionmaker[Session], data_root: Path, obs: Obs, inbox: Path
) -> None:
    for module, count in obs.modules:
        spec = SyntheticObservation(
            obs.instrument, module, obs.obs_unit, obs.location, count, FILE_SIZE
        )
        manifest = write_observation(
            spec, data_root / obs.location, obs.start, uuid.UUID(obs.execution_id)
        )
        manifest["executed_obs_unit"]["status"] = obs.status
        outcome = file_path(factory, drop_manifest(manifest, inbox))
        assert outcome.status == "filed", outcome.message


def file_ids(session: Session) -> dict[str, list[int]]:
    label = {o.execution_id: o.label for o in OBSERVATIONS}
    ids: dict[str, list[int]] = {}
    for file in session.scalars(select(RawDataFile).order_by(RawDataFile.id)):
        key = f"{label[str(file.executed_obs_unit_id)]}/{file.instrument_module.name}"
        ids.setdefault(key, []).append(file.id)
    return ids


def location_id(session: Session, name: str) -> int:
    return session.scalars(select(DataLocation.id).filter_by(name=name)).one()


def add_copy(session: Session, file_id: int, location: str, state: PhysicalCopyState) -> None:
    verified = datetime(2026, 11, 24, tzinfo=UTC) if state is PhysicalCopyState.VERIFIED else None
    session.add(
        RawDataFilePhysicalCopy(
            raw_data_file_id=file_id,
            data_location_id=location_id(session, location),
            state=state,
            verified_at=verified,
        )
    )


def package_file(session: Session, file_id: int) -> None:
    file = session.get_one(RawDataFile, file_id)
    package = RawDataPackage(
        name=PACKAGE,
        relative_path=f"packages/{PACKAGE}",
        executed_obs_unit_id=file.executed_obs_unit_id,
        instrument_module_id=file.instrument_module_id,
        state=PackageState.BUILT,
        size=10_240,
        checksum="ab" * 16,
    )
    session.add(package)
    session.flush()
    file.raw_data_package_id = package.id
    file.state = RawDataFileState.PACKAGED
    session.add(
        RawDataPackagePhysicalCopy(
            raw_data_package_id=package.id,
            data_location_id=location_id(session, "chile-buffer-01"),
            state=PhysicalCopyState.VERIFIED,
            verified_at=datetime(2026, 11, 24, tzinfo=UTC),
        )
    )


def move_files_on(session: Session, ids: dict[str, list[int]]) -> None:
    """A280 checksummed, C's first file missing, B copied to the buffer, D packaged."""
    for file_id in ids["A/280GHz"]:
        session.get_one(RawDataFile, file_id).state = RawDataFileState.CHECKSUMMED
    missing = session.get_one(RawDataFile, ids["C/LFA"][0])
    missing.state, missing.failure_reason = RawDataFileState.MISSING, "gone from SOURCE"
    for file_id in ids["B/850GHz"]:
        add_copy(session, file_id, "chile-buffer-01", PhysicalCopyState.VERIFIED)
    add_copy(session, ids["D/280GHz"][0], "chile-buffer-01", PhysicalCopyState.DELETED)
    package_file(session, ids["D/280GHz"][0])


@pytest.fixture
def inventory(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> Inventory:
    for obs in OBSERVATIONS:
        file_observation(loaded_factory, data_root, obs, tmp_path / "inbox")
    with transaction(loaded_factory) as session:
        ids = file_ids(session)
        move_files_on(session, ids)
    return Inventory(db_url, ids)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(run: InProcess, inv: Inventory, *args: str) -> Any:
    return json.loads(ok(run(inv.db_url, *args, "--json")))


def listed_ids(run: InProcess, inv: Inventory, *args: str) -> list[Any]:
    page = as_json(run, inv, *args, "--limit", "1000")
    assert page["next_after"] is None
    return [item["id"] for item in page["items"]]


def text_rows(output: str) -> list[list[str]]:
    """The rows of a text listing (no header, no paging line), split on runs of spaces."""
    lines = output.rstrip("\n").splitlines()
    return [line.split() for line in lines[1:] if not line.startswith("-- ")]


def executions(*labels: str) -> list[str]:
    return [EXECUTION[label] for label in labels]


# --- observations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "ABECD"),
        (("--program", "DSS"), "AB"),
        (("--program", "Wide Field Survey"), "D"),
        (("--obs-unit", "OrionKL-map-001"), "C"),
        (("--instrument", "CHAI"), "EC"),
        (("--instrument", "PrimeCam"), "ABD"),
        (("--module", "280GHz"), "AD"),
        (("--instrument", "PrimeCam", "--module", "350GHz"), "A"),
        (("--instrument", "CHAI", "--module", "HFA"), "E"),
        (("--since", "2026-11-21"), "BECD"),
        (("--since", "2026-11-21T03:00:00-03:00"), "BECD"),  # 06:00 UTC, inclusive
        (("--since", "2026-11-21T06:00:01Z"), "CD"),
        (("--until", "2026-11-21"), "ABEC"),  # a date: that whole day
        (("--until", "2026-11-21T06:00:00Z"), "A"),  # a time: before it
        (("--since", "2026-11-21", "--until", "2026-11-22"), "BEC"),
        (("--status", "partial"), "D"),
        (("--status", "success", "--status", "aborted"), "ABEC"),
        (("--instrument", "PrimeCam", "--since", "2026-11-21", "--status", "success"), "B"),
        (("--program", "CAL", "--instrument", "PrimeCam"), ""),
    ],
)
def test_obs_list_filters(
    run: InProcess, inventory: Inventory, args: tuple[str, ...], expected: str
) -> None:
    assert listed_ids(run, inventory, "obs", "list", *args) == executions(*expected)


def test_obs_list_text_matches_json(run: InProcess, inventory: Inventory) -> None:
    page = as_json(run, inventory, "obs", "list")
    text = ok(run(inventory.db_url, "obs", "list"))
    header = "EXECUTION  START (UTC)  STATUS  INSTRUMENT  FILES  OBS UNIT"
    assert text.splitlines()[0].split() == header.split()
    rows = text_rows(text)
    assert [row[0] for row in rows] == [item["id"] for item in page["items"]]
    first = page["items"][0]
    assert first["start_time"] == "2026-11-20T03:00:00Z"
    assert (first["modules"], first["file_count"], first["bytes"]) == (["280GHz", "350GHz"], 5, 500)
    assert rows[0] == [
        first["id"],
        "2026-11-20",
        "03:00",
        "success",
        "PrimeCam",
        "5",
        "ECDFS-deep-001",
    ]
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("limit", [1, 2, 4])
def test_obs_pages_hold_every_observation_once(
    run: InProcess, inventory: Inventory, limit: int
) -> None:
    seen: list[str] = []
    after: list[str] = []
    for _ in range(10):
        page = as_json(run, inventory, "obs", "list", "--limit", str(limit), *after)
        assert len(page["items"]) <= limit
        seen += [item["id"] for item in page["items"]]
        if page["next_after"] is None:
            break
        after = ["--after", page["next_after"]]
    assert seen == executions(*"ABECD")


def test_obs_text_pages_say_how_to_continue(run: InProcess, inventory: Inventory) -> None:
    seen: list[str] = []
    args = ["obs", "list", "--limit", "2"]
    for _ in range(5):
        lines = ok(run(inventory.db_url, *args)).splitlines()
        seen += [row[0] for row in text_rows("\n".join(lines))]
        if not lines[-1].startswith("-- "):
            break
        assert lines[-1].startswith("-- 2 shown; next page: the same command with --after ")
        args = ["obs", "list", "--limit", "2", "--after", lines[-1].split()[-1]]
    assert seen == executions(*"ABECD")


def test_obs_show(run: InProcess, inventory: Inventory) -> None:
    shown = as_json(run, inventory, "obs", "show", EXECUTION["A"])
    assert (shown["id"], shown["obs_unit"], shown["status"]) == (
        EXECUTION["A"],
        "ECDFS-deep-001",
        "success",
    )
    assert (shown["program"], shown["sub_program"], shown["source"]) == (
        "Deep Spectroscopic Survey",
        "ECDFS-deep",
        "ECDFS",
    )
    assert [(m["module"], m["file_count"], m["bytes"]) for m in shown["filings"]] == [
        ("280GHz", 3, 300),
        ("350GHz", 2, 200),
    ]
    assert shown["files_by_state"] == [
        {"state": "checksummed", "count": 3, "bytes": 300, "location": None},
        {"state": "filed", "count": 2, "bytes": 200, "location": None},
    ]
    assert shown["copies"] == [
        {"state": "present", "count": 5, "bytes": 500, "location": PRIMECAM},
    ]
    text = ok(run(inventory.db_url, "obs", "show", EXECUTION["A"]))
    assert f"execution   {EXECUTION['A']}" in text
    assert "instrument  PrimeCam (280GHz, 350GHz)" in text
    assert "checksummed      3  300 B" in text


def test_obs_show_where_copies_and_packages_are(run: InProcess, inventory: Inventory) -> None:
    shown = as_json(run, inventory, "obs", "show", EXECUTION["D"])
    assert shown["status"] == "partial"
    assert [(c["location"], c["state"], c["count"]) for c in shown["copies"]] == [
        ("chile-buffer-01", "deleted", 1),
        (PRIMECAM, "present", 1),
    ]
    assert shown["packages"] == [
        {"name": PACKAGE, "module": "280GHz", "part": 0, "state": "built", "size": 10_240}
    ]
    assert PACKAGE in ok(run(inventory.db_url, "obs", "show", EXECUTION["D"]))


# --- files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--state", "checksummed"), ["A/280GHz"]),
        (("--state", "packaged", "--state", "checksummed"), ["A/280GHz", "D/280GHz"]),
        (("--location", CHAI), ["C/LFA", "E/HFA"]),
        (("--location", "chile-buffer-01"), ["B/850GHz"]),  # D's copy there is deleted
        (("--location", "cologne-archive"), []),
        (("--execution", EXECUTION["A"]), ["A/280GHz", "A/350GHz"]),
        (("--module", "280GHz"), ["A/280GHz", "D/280GHz"]),
        (("--module", "LFA"), ["C/LFA"]),
        (("--module", "280GHz", "--state", "packaged"), ["D/280GHz"]),
        (("--location", PRIMECAM, "--state", "filed"), ["A/350GHz", "B/850GHz"]),
    ],
)
def test_files_list_filters(
    run: InProcess, inventory: Inventory, args: tuple[str, ...], expected: list[str]
) -> None:
    assert listed_ids(run, inventory, "files", "list", *args) == inventory.ids(*expected)


def test_files_list_missing_state(run: InProcess, inventory: Inventory) -> None:
    assert listed_ids(run, inventory, "files", "list", "--state", "missing") == [
        inventory.files["C/LFA"][0]
    ]


@pytest.mark.parametrize(
    ("pattern", "index"),
    [
        ("*det_000001.g3", 1),
        ("*det?000001.g3", 1),  # ? is one character
        ("*/part-0000/det_000002.g3", 2),
        ("*DET_000001*", None),  # case counts, on every backend
        ("*part_0000*", None),  # _ is itself, not a wildcard
        ("*det_00000[1]*", None),  # [ is itself, not a class
    ],
)
def test_files_list_path_glob(
    run: InProcess, inventory: Inventory, pattern: str, index: int | None
) -> None:
    expected = (
        []
        if index is None
        else sorted(ids[index] for ids in inventory.files.values() if len(ids) > index)
    )
    assert listed_ids(run, inventory, "files", "list", "--path", pattern) == expected


def test_files_list_text_matches_json(run: InProcess, inventory: Inventory) -> None:
    page = as_json(run, inventory, "files", "list", "--module", "LFA")
    rows = text_rows(ok(run(inventory.db_url, "files", "list", "--module", "LFA")))
    assert [int(row[0]) for row in rows] == [item["id"] for item in page["items"]]
    assert [row[-1] for row in rows] == [item["path"] for item in page["items"]]
    assert [row[1] for row in rows] == ["missing", "filed"]
    assert {tuple(item["locations"]) for item in page["items"]} == {(CHAI,)}
    assert all(row[2:4] == ["100", "B"] and row[4] == "CHAI/LFA" for row in rows)


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_files_pages_hold_every_file_once(run: InProcess, inventory: Inventory, limit: int) -> None:
    seen: list[int] = []
    after: list[str] = []
    for _ in range(20):
        page = as_json(run, inventory, "files", "list", "--limit", str(limit), *after)
        seen += [item["id"] for item in page["items"]]
        if page["next_after"] is None:
            break
        assert page["next_after"] == seen[-1]
        after = ["--after", str(page["next_after"])]
    assert seen == inventory.all_ids


def test_files_text_page_says_how_to_continue(run: InProcess, inventory: Inventory) -> None:
    first = ok(run(inventory.db_url, "files", "list", "--state", "filed", "--limit", "2"))
    last_line = first.splitlines()[-1]
    after = last_line.split()[-1]
    assert last_line == f"-- 2 shown; next page: the same command with --after {after}"
    rest = as_json(run, inventory, "files", "list", "--state", "filed", "--after", after)
    ids = [int(row[0]) for row in text_rows(first)] + [item["id"] for item in rest["items"]]
    still_filed = inventory.ids("A/350GHz", "B/850GHz", "E/HFA") + inventory.files["C/LFA"][1:]
    assert ids == sorted(still_filed) and len(ids) == 7


def test_files_show_every_copy(run: InProcess, inventory: Inventory) -> None:
    file_id = inventory.files["B/850GHz"][1]
    shown = as_json(run, inventory, "files", "show", str(file_id))
    assert (shown["id"], shown["state"], shown["size"]) == (file_id, "filed", FILE_SIZE)
    assert shown["path"].endswith("/850GHz/part-0000/det_000001.g3")
    assert shown["checksum"] and len(shown["checksum"]) == 32
    assert (shown["execution_id"], shown["obs_unit"]) == (EXECUTION["B"], "COSMOS-deep-001")
    assert [(c["location"], c["state"], c["verified_at"]) for c in shown["copies"]] == [
        (PRIMECAM, "present", None),
        ("chile-buffer-01", "verified", "2026-11-24T00:00:00Z"),
    ]
    assert shown["locations"] == ["chile-buffer-01", PRIMECAM]
    assert shown["package"] is None
    text = ok(run(inventory.db_url, "files", "show", str(file_id)))
    assert f"checksum   {shown['checksum']} (xxh3_128)" in text
    copy_row = ["chile-buffer-01", "chile", "BUFFER", "verified", "2026-11-24", "00:00:00Z"]
    assert copy_row in [line.split() for line in text.splitlines()]


def test_files_show_package_and_reasons(run: InProcess, inventory: Inventory) -> None:
    packaged = as_json(run, inventory, "files", "show", str(inventory.files["D/280GHz"][0]))
    package = packaged["package"]
    assert (package["name"], package["state"], package["size"]) == (PACKAGE, "built", 10_240)
    assert [(c["location"], c["state"]) for c in package["copies"]] == [
        ("chile-buffer-01", "verified")
    ]
    assert packaged["locations"] == [PRIMECAM]  # the deleted buffer copy holds nothing
    missing = as_json(run, inventory, "files", "show", str(inventory.files["C/LFA"][0]))
    assert (missing["state"], missing["failure_reason"]) == ("missing", "gone from SOURCE")


# --- catalog and sites ------------------------------------------------------------------


def test_catalog_list(run: InProcess, inventory: Inventory) -> None:
    catalog = as_json(run, inventory, "catalog", "list")
    modules = {i["name"]: [m["name"] for m in i["modules"]] for i in catalog["instruments"]}
    assert modules == {
        "CHAI": ["HFA", "LFA"],
        "PrimeCam": ["280GHz", "350GHz", "850GHz", "EoR-Spec"],
    }
    programs = {
        p["short_name"]: [u["name"] for u in p["obs_units"]] for p in catalog["observing_programs"]
    }
    assert programs["DSS"] == ["COSMOS-deep-001", "ECDFS-deep-001", "ECDFS-deep-002"]
    assert programs["GEco"] == ["OrionKL-map-001"]
    sources = {s["name"]: s for s in catalog["sources"]}
    assert sources["ECDFS"]["position"] == {"ra_deg": 53.12, "dec_deg": -27.81, "frame": "icrs"}
    assert sources["Jupiter"]["type"] == "solar_system_object"
    text = ok(run(inventory.db_url, "catalog", "list"))
    rows = [line.split() for line in text.splitlines()]
    assert ["PrimeCam", "primecam", "FYST", "280GHz,", "350GHz,", "850GHz,", "EoR-Spec"] in rows
    assert "observing program Deep Spectroscopic Survey (DSS)" in text
    for program in programs.values():
        assert all(f"  {unit} " in text for unit in program)


def test_sites_list_json_matches_text(run: InProcess, inventory: Inventory) -> None:
    overview = as_json(run, inventory, "sites", "list")
    assert [s["name"] for s in overview["sites"]] == ["chile", "cologne"]
    locations = sorted(loc["name"] for s in overview["sites"] for loc in s["locations"])
    text = ok(run(inventory.db_url, "sites", "list")).splitlines()
    assert [line.split()[0] for line in text if not line.startswith("route ")] == locations
    assert [r["name"] for r in overview["routes"]] == ["chile-to-cologne"]
    assert "route chile-to-cologne: chile → cologne [direct, rsync]" in text


def test_sites_show(run: InProcess, inventory: Inventory, data_root: Path) -> None:
    site = as_json(run, inventory, "sites", "show", "chile")
    assert [loc["name"] for loc in site["locations"]] == ["chile-buffer-01", CHAI, PRIMECAM]
    buffer = site["locations"][0]
    assert buffer["storage_settings"]["path"] == str(data_root / "chile-buffer-01")
    assert buffer["retention_days"] == 7
    assert [r["name"] for r in site["routes"]] == ["chile-to-cologne"]
    assert site["retention"]["SOURCE"] == {"keep_days": 30}
    assert "checksum" in site["slurm_profiles"]
    text = ok(run(inventory.db_url, "sites", "show", "chile"))
    assert text.startswith("site chile (cl)\n")
    assert "retention       BUFFER 7 d, SOURCE 30 d" in text


def test_empty_listings(run: InProcess, db_url: str, loaded_factory: sessionmaker[Session]) -> None:
    assert ok(run(db_url, "obs", "list")).strip() == "no observations match"
    assert ok(run(db_url, "files", "list")).strip() == "no files match"
    assert json.loads(ok(run(db_url, "files", "list", "--json"))) == {
        "items": [],
        "next_after": None,
    }


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("obs", "list", "--instrument", "PrimeKam"),
            "unknown instrument 'PrimeKam'; did you mean 'PrimeCam'? (known: CHAI, PrimeCam)",
        ),
        (
            ("obs", "list", "--instrument", "CHAI", "--module", "LFB"),
            "unknown CHAI module 'LFB'; did you mean 'LFA'? (known: HFA, LFA)",
        ),
        (
            ("obs", "list", "--module", "290GHz"),
            "unknown instrument module '290GHz'; did you mean '280GHz'?",
        ),
        (
            ("obs", "list", "--obs-unit", "ECDFS-deep-01"),
            "unknown obs unit 'ECDFS-deep-01'; did you mean 'ECDFS-deep-001'?",
        ),
        (
            ("obs", "list", "--program", "DDS"),
            "unknown observing program 'DDS'; did you mean 'DSS'?",
        ),
        (("obs", "list", "--after", str(uuid.UUID(int=7))), "no execution"),
        (
            ("files", "list", "--location", "chile-bufer-01"),
            "unknown location 'chile-bufer-01'; did you mean 'chile-buffer-01'?",
        ),
        (
            ("files", "list", "--module", "HFB"),
            "unknown instrument module 'HFB'; did you mean 'HFA'?",
        ),
        (("files", "list", "--execution", str(uuid.UUID(int=7))), "no execution"),
        (
            ("sites", "show", "chil"),
            "unknown site 'chil'; did you mean 'chile'? (known: chile, cologne)",
        ),
        (("obs", "show", str(uuid.UUID(int=7))), f"no execution {uuid.UUID(int=7)} in ops-db"),
        (("files", "show", "999999"), "no raw data file with id 999999 in ops-db"),
    ],
)
def test_unknown_names_and_ids_exit_4(
    run: InProcess, inventory: Inventory, args: tuple[str, ...], message: str
) -> None:
    result = run(inventory.db_url, *args)
    assert result.returncode == 4
    assert one_line_error(result).startswith(f"error: {message}")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--since", "yesterday", "is not an ISO 8601 time or date"),
        ("--until", "2026-11-21T06:00", "has no time zone"),
        ("--since", "2026-02-30", "is not an ISO 8601 time or date"),
    ],
)
def test_bad_time_is_a_usage_error(
    run: InProcess, inventory: Inventory, option: str, value: str, problem: str
) -> None:
    result = run(inventory.db_url, "obs", "list", option, value)
    assert result.returncode == 2
    assert f"Invalid value for '{option}'" in result.stderr and problem in result.stderr


def test_bad_state_and_limit_are_usage_errors(run: InProcess, inventory: Inventory) -> None:
    bad_state = run(inventory.db_url, "files", "list", "--state", "fild")
    assert bad_state.returncode == 2 and "'filed'" in bad_state.stderr
    assert run(inventory.db_url, "files", "list", "--limit", "0").returncode == 2


# --- pure pieces -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "end_of_day", "expected"),
    [
        ("2026-11-23", False, datetime(2026, 11, 23, tzinfo=UTC)),
        ("2026-11-23", True, datetime(2026, 11, 24, tzinfo=UTC)),
        ("2026-11-23T03:00:00Z", True, datetime(2026, 11, 23, 3, tzinfo=UTC)),
        ("2026-11-23T00:00-03:00", False, datetime(2026, 11, 23, 3, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, end_of_day: bool, expected: datetime) -> None:
    parsed = parse_time(text, end_of_day)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


def test_glob_to_like_escapes_like_wildcards() -> None:
    assert glob_to_like("a_b%c\\d*e?f") == "a\\_b\\%c\\\\d%e_f"


def test_table_aligns_columns() -> None:
    assert table(("ID", "NAME"), [(7, "x"), (1234, "long name")], right={0}) == [
        "  ID  NAME",
        "   7  x",
        "1234  long name",
    ]
