"""Metrics of a whole run through the scheduler, read back from victoria-metrics, match
ops-db; a metrics server that is down changes nothing in the outcome."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import DataTransfer, DataTransferRoute, JobTask
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobTaskState, TransferState
from ccat_hpc.metrics import sink_from_env
from ccat_hpc.scheduler.loop import run
from tests.integration.test_metrics_server import export_when, free_port, metrics_url
from tests.integration.test_scheduler_faults import FAST_BREAKER, task_setup, two_observations
from tests.integration.test_transfer_archive import (
    assert_archived_exactly,
)

pytestmark = [
    pytest.mark.metrics,
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgres"]),
]


def run_until_idle(factory: sessionmaker[Session], db_url: str, tmp_path: Path, url: str) -> None:
    setup = task_setup(db_url, tmp_path)
    setup = dataclasses.replace(
        setup, environment={**setup.environment, "CCAT_HPC_METRICS_URL": url}
    )
    sink = sink_from_env({"CCAT_HPC_METRICS_URL": url})
    try:
        run(
            factory,
            lambda _step: setup,
            interval=0.2,
            once=False,
            dry_run=False,
            stop=threading.Event(),
            policy=FAST_BREAKER,
            metrics=sink,
            until_idle=True,
        )
    finally:
        sink.close()


def test_the_transfer_points_of_a_run_match_ops_db(
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    url = metrics_url()
    since = time.time()
    route = f"chile-to-cologne-{uuid.uuid4().hex[:8]}"  # this run's points only
    with transaction(sites) as session:
        session.execute(
            update(DataTransferRoute)
            .where(DataTransferRoute.name == "chile-to-cologne")
            .values(name=route)
        )
    sources = two_observations(sites, data_root, tmp_path)
    run_until_idle(sites, db_url, tmp_path, url)
    assert_archived_exactly(sites, sources, data_root)
    with sites() as session:
        hops, moved = session.execute(
            select(func.count(), func.sum(DataTransfer.bytes_transferred)).where(
                DataTransfer.state == TransferState.SUCCEEDED
            )
        ).one()
    assert hops >= 1 and moved > 0

    def total(rows: list[dict[str, object]]) -> float:
        return sum(sum(row["values"]) for row in rows)  # type: ignore[call-overload,misc]

    selector = f'{{__name__="ccat_transfer_bytes",route="{route}"}}'
    rows = export_when(url, selector, lambda found: total(found) >= moved)
    assert total(rows) == moved
    assert sum(len(row["values"]) for row in rows) == hops
    assert {row["metric"]["method"] for row in rows} == {"copy"}
    passes = export_when(url, '{__name__="ccat_scheduler_pass_seconds"}', bool)
    assert passes, "the scheduler wrote no pass points"
    # one point per task that ran, with its items (tests run one at a time: the window
    # since this test began holds this run's tasks only)
    with sites() as session:
        ran = session.scalars(select(JobTask).where(JobTask.state == JobTaskState.SUCCEEDED)).all()
        expected = sorted((t.batch.kind, len(t.items)) for t in ran)

    def tasks_since(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
        return sorted(
            (row["metric"]["kind"], int(value))
            for row in rows
            if row["metric"].get("outcome") == "done"
            for value, stamp in zip(row["values"], row["timestamps"], strict=True)
            if stamp >= since * 1000
        )

    rows = export_when(
        url, '{__name__="ccat_task_items"}', lambda found: len(tasks_since(found)) >= len(expected)
    )
    assert tasks_since(rows) == expected
    # every item those tasks held ended done, counted per step
    done: Counter[str] = Counter()
    for kind, items in expected:
        done[kind] += items

    def items_since(rows: list[dict[str, Any]]) -> Counter[str]:
        found: Counter[str] = Counter()
        for row in rows:
            if row["metric"].get("outcome") != "done":
                continue
            for value, stamp in zip(row["values"], row["timestamps"], strict=True):
                if stamp >= since * 1000:
                    found[row["metric"]["step"]] += int(value)
        return found

    rows = export_when(url, '{__name__="ccat_items_items"}', lambda f: items_since(f) == done)
    assert items_since(rows) == done


def test_a_metrics_server_that_is_down_changes_nothing(
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    sources = two_observations(sites, data_root, tmp_path)
    run_until_idle(sites, db_url, tmp_path, f"http://127.0.0.1:{free_port()}")
    assert_archived_exactly(sites, sources, data_root)
