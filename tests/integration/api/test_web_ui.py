"""The web UI in a real browser (Debian's headless Chromium driven by Playwright) against
a real `ccat-hpc api serve`: sign in, browse to a file and see its copies, request a
staging and watch it become READY, release it; an operator sees a failure and an open
breaker on the monitor and runs a campaign. Every page fits a laptop screen without
horizontal scrolling, has one h1 and labels every field; a screenshot of each page is
saved under test-artifacts/ui/ (not committed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ccat_hpc.db.models import CircuitBreaker, DataLocation, RawDataPackage
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import BreakerState, PackageState
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import REPO
from tests.integration.api.conftest import SQLITE, Served
from tests.integration.test_staging import stage_now

CHROMIUM = os.environ.get("CCAT_HPC_CHROMIUM", "/usr/bin/chromium")
#: flags for a closed network and a root user (no sandbox); no first-run work
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("CCAT_HPC_SCREENSHOTS", REPO / "test-artifacts" / "ui"))
LAPTOP = {"width": 1280, "height": 800}
FAILURE = "archive copy unreadable: EIO twice"

pytestmark = [SQLITE, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: scripts/system-packages.sh installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def ui(served: Served) -> Served:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return served


def new_page(browser: Any) -> Any:
    page = browser.new_page(viewport=LAPTOP)
    page.set_default_timeout(10_000)
    return page


def signed_in(browser: Any, served: Served, user: str) -> Any:
    page = new_page(browser)
    page.goto(f"{served.url}/ui")
    assert page.url.startswith(f"{served.url}/ui/signin")
    page.get_by_label("API token").fill(served.tokens[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/observations")
    return page


def check_page(page: Any, name: str) -> None:
    """One h1, every visible field labelled, no horizontal scrolling; a screenshot."""
    assert page.locator("h1").count() == 1, name
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map(e => e.name)"""
    )
    assert unlabelled == [], (name, unlabelled)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, (name, overflow)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_sign_in_and_browse_to_the_copies_of_a_file(browser: Any, ui: Served) -> None:
    page = new_page(browser)
    page.goto(f"{ui.url}/ui/observations")
    page.get_by_label("API token").fill("ccat_00000000_" + "A" * 43)
    page.get_by_role("button", name="Sign in").click()
    assert "is not known" in page.get_by_role("alert").inner_text()
    check_page(page, "signin")

    page = signed_in(browser, ui, "alice")
    check_page(page, "observations")
    page.get_by_label("Obs unit").select_option("ECDFS-deep-001")
    page.get_by_role("button", name="Show").click()
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    rows.first.get_by_role("link").click()
    page.wait_for_url("**/ui/observations/*")
    check_page(page, "observation")
    page.locator("tbody a[href^='/ui/files/']").first.click()
    page.wait_for_url("**/ui/files/*")
    copies = page.get_by_role("table", name="Where every copy is")
    text = copies.inner_text()
    assert "chile-source-primecam" in text and "cologne-archive" in text and "verified" in text
    assert "Archived to cologne-archive" in page.inner_text("main")
    check_page(page, "file")


def test_request_a_staging_watch_it_become_ready_and_release_it(
    browser: Any, ui: Served, tmp_path: Path
) -> None:
    page = signed_in(browser, ui, "alice")
    page.get_by_role("link", name="My staging").click()
    page.get_by_label("Obs unit").select_option("ECDFS-deep-001")
    page.get_by_label("Only files matching (optional)").fill("*280GHz*")
    page.get_by_role("button", name="Request staging").click()
    assert "3 file(s)" in page.get_by_role("status").inner_text()
    assert page.locator("td[data-state=STAGING]").count() == 1
    check_page(page, "staging-requested")

    assert stage_now(ui.factory, tmp_path) is not None  # the scheduler's stage job
    page.locator("td[data-state=READY]").wait_for(timeout=15_000)  # the page reloads itself
    check_page(page, "staging-ready")
    page.get_by_role("button", name="Release staging request 1").click()
    assert "released" in page.get_by_role("status").inner_text()


def test_an_operator_sees_failures_and_breakers_and_runs_a_campaign(
    browser: Any, ui: Served
) -> None:
    with transaction(ui.factory) as session:
        package = session.scalars(select(RawDataPackage).order_by(RawDataPackage.id)).first()
        assert package is not None
        package.state = PackageState.FAILED
        package.failure_reason = FAILURE
        buffer = session.scalars(
            select(DataLocation).where(DataLocation.name == "cologne-buffer-01")
        ).one()
        session.add(
            CircuitBreaker(
                scope="location",
                target_id=buffer.id,
                name=buffer.name,
                state=BreakerState.OPEN,
                failures=3,
                reason="disk full",
            )
        )
    page = signed_in(browser, ui, "op")
    page.get_by_role("link", name="Pipeline monitor").click()
    breakers = page.get_by_role("table", name="Open breakers").inner_text()
    assert "cologne-buffer-01" in breakers and "disk full" in breakers
    assert FAILURE in page.get_by_role("table", name="Failures").inner_text()
    assert page.locator("svg[role=img] polyline").count() == 1  # the chile-to-cologne route
    check_page(page, "monitor")

    page.get_by_role("link", name="Campaigns").click()
    page.get_by_label("Kind").select_option("re-verify")
    page.get_by_label("Copies at location (optional)").fill("cologne-archive")
    page.get_by_role("button", name="Start campaign").click()
    page.get_by_role("button", name="Pause campaign 1").click()
    assert "paused" in page.locator("tbody tr").first.inner_text()
    check_page(page, "campaigns")

    scientist = signed_in(browser, ui, "alice")
    scientist.goto(f"{ui.url}/ui/campaigns")
    assert scientist.get_by_role("button", name="Start campaign").count() == 0


def test_an_instrument_files_a_manifest_from_the_browser(
    browser: Any, ui: Served, data_root: Path, tmp_path: Path
) -> None:
    spec = SyntheticObservation(
        "PrimeCam", "850GHz", "ECDFS-deep-001", "chile-source-primecam", 2, 100
    )
    manifest = drop_manifest(write_observation(spec, data_root / spec.location), tmp_path, "new")
    page = signed_in(browser, ui, "primecam-daq")
    page.get_by_role("link", name="File a manifest").click()
    page.get_by_label("Manifest (.json)").set_input_files(str(manifest))
    page.get_by_role("button", name="File it").click()
    assert page.get_by_role("status").inner_text().startswith("filed new.json: 2 files")
    check_page(page, "file-manifest")
    page.get_by_role("button", name="File it").click()
    page.get_by_text("unchanged new.json").wait_for()
    page.goto(f"{ui.url}/ui/observations")
    assert page.locator("tbody tr").count() == 3
