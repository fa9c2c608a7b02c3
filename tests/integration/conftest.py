"""Fixtures of the pipeline tests that move data: the archive's storage and the sites."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db.session import transaction
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from tests.conftest import REPO
from tests.integration.test_bundle_step import set_pipeline
from tests.integration.test_storage import s3_environment
from tests.integration.test_transfer_archive import bundled, run_step


@pytest.fixture
def archive_kind(
    request: pytest.FixtureRequest, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The archive's storage (a folder unless a test asks for both); the site configs are
    loaded with it (S3: a fresh prefix, 5 MiB parts)."""
    kind = str(getattr(request, "param", "disk"))
    if kind == "s3":
        s3_environment()
        monkeypatch.setenv("CCAT_ARCHIVE_STORAGE", "s3")
        monkeypatch.setenv("CCAT_S3_PREFIX", f"pipeline-tests/{uuid.uuid4().hex}")
        monkeypatch.setenv("CCAT_S3_PART_SIZE_MB", "5")
    return kind


@pytest.fixture
def sites(
    factory: sessionmaker[Session], data_root: Path, archive_kind: str
) -> sessionmaker[Session]:
    """ops-db with the shipped sites (and Cornell) and the catalog; every folder there."""
    configs = [
        *shipped_site_configs(),
        *sorted((REPO / "ccat_hpc/site_configs/examples").glob("*.yaml")),
    ]
    with transaction(factory) as session:
        load_site_configs(session, read_site_configs(configs))
    with transaction(factory) as session:
        load_catalog_file(session, example_catalog_path())
    for name in (
        "chile-source-primecam",
        "chile-buffer-01",
        "cologne-buffer-01",
        "cologne-archive",
        "cornell-buffer-01",
    ):
        (data_root / name).mkdir()
    set_pipeline(factory, bundle_max_wait_minutes=0)
    return factory


@pytest.fixture
def archived(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> Iterator[dict[str, bytes]]:
    """Two packages archived in Cologne; the files' bytes as they were on SOURCE."""
    sources = bundled(sites, data_root, tmp_path)
    assert run_step(sites, "transfer", tmp_path) is not None
    assert run_step(sites, "archive", tmp_path) is not None
    yield {str(path): path.read_bytes() for path in sources}
