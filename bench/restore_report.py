"""The restore benchmark's figures, the physical floor of a restore, and its table (bench/restore.py measures).

Both paths are measured in the same run on the same stack, so each row's old/new ratio comes from one run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack.gce_simulator import Profile

# The two ways a VMRestore (or a drill) reaches Airflow; bench/restore.py measures both in one run.
PER_RESTORE_DAG = "per-restore-dag"  # earlier versions: a DAG file per restore (a drill: per policy), synced, listed
SHIPPED_DAG = "shipped-dag"  # now: one DAG shipped with the plugins, each run started through the REST API
PATHS = (PER_RESTORE_DAG, SHIPPED_DAG)
PATH_TITLES = {PER_RESTORE_DAG: "a DAG file of its own (before)", SHIPPED_DAG: "shipped DAG + REST trigger (now)"}
KINDS = ("restore", "drill")
FIRST_WRITE_GOAL_SECONDS = 15.0  # issue 24: first write within 15 s of the apply, with a 4-minute sync modelled
NONE = "-"  # a figure not measured (a path left out with --path)


def restore_floor(profile: Profile, disk_sizes_gb: Iterable[int]) -> float:
    """The shortest time Compute Engine allows from a restore's first write to its VM RUNNING, in the profile's
    (scaled) seconds: the disks are created from their snapshots side by side (an operation PENDING, then
    CREATING for ``disk_create_seconds(size)``, then RESTORING, during which the simulator refuses to attach
    them), then the instance insert (PENDING, PROVISIONING, STAGING). Each figure is the profile's
    (devstack/gce_simulator/profile.py gives their sources; all are ESTIMATEs there)."""
    disks = max(profile.disk_create_seconds(size) for size in disk_sizes_gb)
    instance = profile.instance_provisioning_seconds + profile.instance_staging_seconds
    return profile.scaled(2 * profile.operation_pending_seconds + disks + profile.disk_restoring_seconds + instance)


@dataclass
class Sample:
    """One restore or drill, every time in seconds from the `kubectl apply` that asked for it."""

    kind: str  # restore | drill
    path: str
    queued: float  # its Airflow run created (the run's queued_at): the trigger that Airflow accepted
    first_write: float  # the first Compute Engine write (the simulator's call log)
    first_write_call: str  # which call it was, e.g. disks.insert
    running: float  # the new VM RUNNING (its instances.insert operation's end, the simulator's record)
    done: float  # reported done (VMRestore phase Succeeded, or the policy's status.verification; see restore.py)


@dataclass
class ProfileResult:
    profile: str
    timing: dict[str, Any]
    floor_seconds: float
    samples: list[Sample] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)  # 1-minute load average at the start and the end

    def of(self, kind: str, path: str) -> list[Sample]:
        return [s for s in self.samples if s.kind == kind and s.path == path]


@dataclass(frozen=True)
class Figure:
    """One row: a value per sample, shown in seconds or as a multiple (of the floor)."""

    kind: str
    title: str
    value: Callable[[Sample, float], float]  # (sample, floor) -> value
    unit: str = "s"


FIGURES = (
    Figure("restore", "apply -> run queued in Airflow", lambda s, _: s.queued),
    Figure("restore", "apply -> first Compute Engine write", lambda s, _: s.first_write),
    Figure("restore", "apply -> new VM RUNNING", lambda s, _: s.running),
    Figure("restore", "apply -> RUNNING / floor", lambda s, floor: s.running / floor, "x"),
    Figure("restore", "first write -> RUNNING / floor", lambda s, floor: (s.running - s.first_write) / floor, "x"),
    Figure("restore", "apply -> reported done", lambda s, _: s.done),
    Figure("drill", "apply -> run queued in Airflow", lambda s, _: s.queued),
    Figure("drill", "apply -> first Compute Engine write", lambda s, _: s.first_write),
    Figure("drill", "apply -> drill VM RUNNING", lambda s, _: s.running),
    Figure("drill", "apply -> reported done", lambda s, _: s.done),
)


def spread(values: Sequence[float], unit: str = "s") -> str:
    """median (min-max, n); a dash for none."""
    if not values:
        return NONE
    digits = 2 if unit == "x" else 1
    shown = f"{statistics.median(values):.{digits}f}{' s' if unit == 's' else 'x'}"
    if len(values) == 1:
        return f"{shown} (n=1)"
    return f"{shown} ({min(values):.{digits}f}-{max(values):.{digits}f}, n={len(values)})"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def ratio(old: Sequence[float], new: Sequence[float]) -> str:
    """old / new of the medians: how many times longer (or more) the per-restore DAG file path took."""
    before, now = median(old), median(new)
    if math.isnan(before) or math.isnan(now) or now <= 0:
        return NONE
    times = before / now
    return f"{times:.0f}x" if times >= 100 else f"{times:.1f}x"


def values_of(result: ProfileResult, figure: Figure, path: str) -> list[float]:
    return [figure.value(s, result.floor_seconds) for s in result.of(figure.kind, path)]


def goal_cell(result: ProfileResult, figure: Figure) -> str:
    """Issue 24's goal, on the restore's first write of each path measured."""
    if figure.kind != "restore" or figure.title != "apply -> first Compute Engine write":
        return ""
    verdicts = []
    for path in PATHS:
        first = median(values_of(result, figure, path))
        if not math.isnan(first):
            verdicts.append(
                f"{'before' if path == PER_RESTORE_DAG else 'now'} {'met' if first <= FIRST_WRITE_GOAL_SECONDS else 'MISSED'}"
            )
    return f"<= {FIRST_WRITE_GOAL_SECONDS:g} s: {', '.join(verdicts)}" if verdicts else ""


def table_rows(result: ProfileResult) -> list[tuple[str, ...]]:
    """(figure, per-restore DAG file, shipped DAG, old/new, goal), for the kinds measured."""
    rows: list[tuple[str, ...]] = []
    for figure in FIGURES:
        if not any(result.of(figure.kind, path) for path in PATHS):
            continue
        title = f"{figure.kind}: {figure.title}"
        if figure.unit == "x":
            title = f"{title} {result.floor_seconds:.1f} s"
        old, new = (values_of(result, figure, path) for path in PATHS)
        rows.append(
            (title, spread(old, figure.unit), spread(new, figure.unit), ratio(old, new), goal_cell(result, figure))
        )
    return rows


def render_table(result: ProfileResult) -> str:
    header = ("figure", PATH_TITLES[PER_RESTORE_DAG], PATH_TITLES[SHIPPED_DAG], "old / new", "goal")
    rows = [header, *table_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"profile {result.profile}: " + ", ".join(f"{k} {v}" for k, v in result.timing.items())]
    first_calls = sorted({s.first_write_call for s in result.samples})
    if first_calls:
        notes.append(f"first writes were: {', '.join(first_calls)}")
    if result.load_average:
        notes.append(
            "1-minute load average at the start and the end: " + ", ".join(f"{v:.1f}" for v in result.load_average)
        )
    return "\n".join(lines + notes)
