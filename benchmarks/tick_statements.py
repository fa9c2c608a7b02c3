"""The SQL statements a scheduler pass sends, with their times, and their EXPLAIN ANALYZE.

The statements are recorded from the engine's cursor events while the public
``one_pass`` runs, so whatever the snapshot queries become, these are the ones shown.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: Any
    many: bool
    seconds: float

    @property
    def is_select(self) -> bool:
        return not self.many and self.sql.lstrip().upper().startswith(("SELECT", "WITH"))

    def short(self, width: int = 110) -> str:
        flat = re.sub(r"\s+", " ", self.sql).strip()
        flat = re.sub(r"\b\w+\.(\w+)", r"\1", flat)  # table.column → column
        return flat if len(flat) <= width else flat[: width - 1] + "…"


@contextmanager
def recorded(engine: Engine) -> Iterator[list[Statement]]:
    """Every statement the engine runs inside the block (time as the client sees it)."""
    log: list[Statement] = []

    def before(conn: Any, _cursor: Any, _sql: str, _params: Any, _ctx: Any, _many: bool) -> None:
        conn.info.setdefault("tick_bench_started", []).append(time.perf_counter())

    def after(conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        started = conn.info["tick_bench_started"].pop()
        log.append(Statement(sql, params, many, time.perf_counter() - started))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def median_times(runs: Sequence[Sequence[Statement]]) -> list[tuple[Statement, float]]:
    """Each statement of the first run with its median time over the runs (runs that sent
    other statements than the first are left out)."""
    first = runs[0]
    same = [run for run in runs if [s.sql for s in run] == [s.sql for s in first]]
    return [
        (statement, statistics.median(run[i].seconds for run in same))
        for i, statement in enumerate(first)
    ]


def explain_analyze(engine: Engine, statement: Statement) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a recorded SELECT, with the parameters it was sent."""
    with engine.connect() as connection:
        result = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.parameters
        )
        return [str(line) for line in result.scalars()]


def plan_summary(plan: Sequence[str]) -> str:
    """The execution time and whether a sequential scan is in the plan."""
    execution = next((line for line in plan if line.startswith("Execution Time")), "")
    seq_scans = sorted({m for line in plan for m in re.findall(r"Seq Scan on (\w+)", line)})
    note = f"; seq scan on {', '.join(seq_scans)}" if seq_scans else ""
    return execution + note


def show_statements(
    title: str, timed: Sequence[tuple[Statement, float]], pass_seconds: float
) -> None:
    """Each statement with its time, and their sum beside the whole pass."""
    sql = sum(t for _, t in timed)
    print(
        f"\n{title}: {len(timed)} statements, {sql * 1000:.1f} ms in all (as the client "
        f"sees them), of a pass of {pass_seconds * 1000:.1f} ms"
    )
    for statement, seconds in timed:
        print(f"  {seconds * 1000:8.2f} ms  {statement.short()}")


def show_explains(engine: Engine, statements: Sequence[Statement]) -> None:
    """EXPLAIN ANALYZE of every SELECT of ``statements``, in their order."""
    print("\nEXPLAIN (ANALYZE, BUFFERS) of each SELECT of an idle pass (the snapshot):")
    for number, statement in enumerate(s for s in statements if s.is_select):
        plan = explain_analyze(engine, statement)
        print(f"\n[{number + 1}] {statement.short(1000)}\n    params: {statement.parameters}")
        print("\n".join(f"    {line}" for line in plan))
        print(f"    => {plan_summary(plan)}", flush=True)
