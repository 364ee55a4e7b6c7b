"""The controller benchmark's results and its table (bench/controller.py measures them)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from controller.airflow_api import PAGE_LIMIT

SMALL_POLICIES = 10
LATENCY_GOAL_SECONDS = 1.0
CHANGE_DEADLINE_SECONDS = 30.0  # a spec change whose DAG has not changed by then counts as missed


@dataclass
class CycleCount:
    poll: int
    pause: int
    other: int


@dataclass
class Results:
    policies: int
    poll_interval: float
    changes: int
    apply_seconds: float = math.nan
    peak_rss_mib: float = math.nan
    restart_peak_rss_mib: float = math.nan
    restart_dag_uploads: int = -1
    restart_rewritten_objects: int = -1
    restart_settle_seconds: float = math.nan
    cycles_small: list[CycleCount] = field(default_factory=list)
    cycles_large: list[CycleCount] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    missed_changes: int = 0
    change_deadline: float = CHANGE_DEADLINE_SECONDS


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 50 values is the largest but none)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# -- the table ------------------------------------------------------------------------------------------


def median_count(cycles: Sequence[CycleCount], kind: str) -> float:
    return statistics.median(getattr(c, kind) for c in cycles) if cycles else math.nan


def table_rows(r: Results) -> list[tuple[str, str, str, str]]:
    """(figure, measured, goal, verdict); verdict is met, MISSED or '' where there is no goal."""
    n = r.policies
    poll_small, poll_large = median_count(r.cycles_small, "poll"), median_count(r.cycles_large, "poll")
    pages = math.ceil(n / PAGE_LIMIT)
    p50, p99 = percentile(r.latencies, 0.50), percentile(r.latencies, 0.99)

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    return [
        (f"{n} policies applied -> all DAGs in the bucket", f"{r.apply_seconds:.1f} s", "", ""),
        ("controller peak RSS (VmHWM), first run", f"{r.peak_rss_mib:.0f} MiB", "", ""),
        ("controller peak RSS (VmHWM), after restart", f"{r.restart_peak_rss_mib:.0f} MiB", "", ""),
        (
            "restart, same policies: DAG uploads (metric)",
            str(r.restart_dag_uploads),
            "0",
            verdict(r.restart_dag_uploads == 0),
        ),
        (
            "restart: DAG objects rewritten (bucket generations)",
            str(r.restart_rewritten_objects),
            "0",
            verdict(r.restart_rewritten_objects == 0),
        ),
        (f"restart: settle time (process start -> {n} resume reconciles)", f"{r.restart_settle_seconds:.1f} s", "", ""),
        (f"Airflow requests per status cycle, {SMALL_POLICIES} policies", f"{poll_small:g}", "", ""),
        (
            f"Airflow requests per status cycle, {n} policies",
            f"{poll_large:g}",
            f"<= {poll_small:g} + {pages} page(s)",
            verdict(poll_large <= poll_small + pages),
        ),
        (
            f"per-policy unpause retries per cycle, {n} policies (DAGs not parsed)",
            f"{median_count(r.cycles_large, 'pause'):g}",
            "",
            "",
        ),
        (f"one change -> DAG in bucket, p50 ({len(r.latencies)} changes)", f"{p50 * 1000:.0f} ms", "", ""),
        (
            f"one change -> DAG in bucket, p99 ({len(r.latencies)} changes)",
            f"{p99 * 1000:.0f} ms",
            "< 1000 ms",
            verdict(p99 < LATENCY_GOAL_SECONDS and r.missed_changes == 0),
        ),
        (
            f"changes whose DAG never changed ({r.change_deadline:g} s)",
            str(r.missed_changes),
            "0",
            verdict(r.missed_changes == 0),
        ),
    ]


def render_table(r: Results) -> str:
    rows = [("figure", "measured", "goal", ""), *table_rows(r)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
