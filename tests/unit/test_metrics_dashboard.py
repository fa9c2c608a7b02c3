"""The Grafana dashboard queries only metrics and labels that ccat_hpc.metrics.series defines."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ccat_hpc.metrics.series import ALL_SERIES, queryable_metrics
from tests.conftest import REPO

DASHBOARD = REPO / "dashboards" / "grafana-ccat-hpc.json"
METRIC_RE = re.compile(r"\bccat_[a-z0-9_]+")
BY_RE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHERS_RE = re.compile(r"\{([^}]*)\}")
MATCHER_RE = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
SERIES_OF = {metric: s for s in ALL_SERIES for metric in s.metrics()}


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    found = []
    for panel in panels:
        found.append(panel)
        found += all_panels(panel.get("panels", []))
    return [panel for panel in found if panel.get("type") != "row"]


def dashboard_panels() -> list[dict[str, Any]]:
    return all_panels(json.loads(DASHBOARD.read_text())["panels"])


def labels_in(expr: str) -> set[str]:
    names = {name.strip() for group in BY_RE.findall(expr) for name in group.split(",")}
    for group in MATCHERS_RE.findall(expr):
        names |= set(MATCHER_RE.findall(group))
    return names - {""}


def test_every_panel_queries_victoria_metrics_through_the_datasource_variable() -> None:
    panels = dashboard_panels()
    assert len(panels) >= 8
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"


@pytest.mark.parametrize("panel", dashboard_panels(), ids=lambda panel: panel["title"])
def test_a_panel_queries_only_series_metrics_and_their_tags(panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        expr = target["expr"]
        metrics = set(METRIC_RE.findall(expr))
        assert metrics, f"{expr!r} queries no ccat metric"
        assert metrics <= queryable_metrics(), f"unknown metrics {metrics - queryable_metrics()}"
        tags = {tag for metric in metrics for tag in SERIES_OF[metric].tags}
        assert labels_in(expr) <= tags, f"{expr!r}: labels {labels_in(expr) - tags} not tags"


def test_the_dashboard_shows_every_series() -> None:
    shown: set[str] = set()
    for panel in dashboard_panels():
        for target in panel["targets"]:
            metrics = METRIC_RE.findall(target["expr"])
            shown |= {SERIES_OF[m].measurement for m in metrics if m in SERIES_OF}
    assert shown == {s.measurement for s in ALL_SERIES}


def test_the_label_check_sees_by_clauses_and_matchers() -> None:
    expr = 'sum by (step, outcome) (ccat_items_items{failure_class!="", x=~"a|b"})'
    assert labels_in(expr) == {"step", "outcome", "failure_class", "x"}
