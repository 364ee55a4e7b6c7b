"""The restore benchmark's figures, the physical floor of a restore, and its table (bench/restore.py measures)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack.gce_simulator import Profile

# The two ways a VMRestore (or a drill) can reach Airflow; bench/restore.py measures the one the controller takes.
PER_RESTORE_DAG = "per-restore-dag"  # today: a DAG file per restore (a drill: per policy), through sync and listing
SHIPPED_DAG = "shipped-dag"  # issue 24: one DAG shipped with the plugins, each run started through the REST API
PATHS = (PER_RESTORE_DAG, SHIPPED_DAG)
PATH_TITLES = {PER_RESTORE_DAG: "a DAG file of its own (today)", SHIPPED_DAG: "shipped DAG + REST trigger"}
FIRST_WRITE_GOAL_SECONDS = 15.0  # issue 24: first write within 15 s of the apply, with a 4-minute sync modelled
NONE = "-"  # a figure not measured (a path this checkout does not take)


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
    first_write: float  # the first Compute Engine write (the simulator's call log)
    first_write_call: str  # which call it was, e.g. disks.insert
    running: float  # the new VM RUNNING (its instances.insert operation's end, the simulator's record)
    done: float  # the object reported done (VMRestore phase Succeeded / the policy's verification time)


@dataclass
class ProfileResult:
    profile: str
    timing: dict[str, Any]
    floor_seconds: float
    samples: list[Sample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def of(self, kind: str, path: str) -> list[Sample]:
        return [s for s in self.samples if s.kind == kind and s.path == path]


def spread(values: Sequence[float]) -> str:
    """median (min-max, n) in seconds; a dash for none."""
    if not values:
        return NONE
    if len(values) == 1:
        return f"{values[0]:.1f} s (n=1)"
    return f"{statistics.median(values):.1f} s ({min(values):.1f}-{max(values):.1f}, n={len(values)})"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _cells(result: ProfileResult, kind: str, attr: str) -> list[str]:
    return [spread([getattr(s, attr) for s in result.of(kind, path)]) for path in PATHS]


def table_rows(result: ProfileResult) -> list[tuple[str, ...]]:
    """(figure, per-restore DAG, shipped DAG, goal / ratio)."""
    floor = result.floor_seconds
    rows: list[tuple[str, ...]] = []
    for kind in ("restore", "drill"):
        firsts = {path: median([s.first_write for s in result.of(kind, path)]) for path in PATHS}
        goal = ""
        if kind == "restore" and not math.isnan(firsts[SHIPPED_DAG]):
            met = firsts[SHIPPED_DAG] <= FIRST_WRITE_GOAL_SECONDS
            goal = f"<= {FIRST_WRITE_GOAL_SECONDS:g} s (shipped): {'met' if met else 'MISSED'}"
        if not any(math.isnan(v) for v in firsts.values()):
            goal = f"{goal}; shipped/today {firsts[SHIPPED_DAG] / firsts[PER_RESTORE_DAG]:.2f}x".lstrip("; ")
        rows.append((f"{kind}: apply -> first Compute Engine write", *_cells(result, kind, "first_write"), goal))
        rows.append((f"{kind}: apply -> new VM RUNNING", *_cells(result, kind, "running"), ""))
        if kind == "restore":
            ratios = [", ".join(f"{s.running / floor:.1f}x" for s in result.of(kind, path)) or NONE for path in PATHS]
            rows.append((f"restore: apply -> RUNNING / floor {floor:.1f} s", *ratios, ""))
            work = [
                ", ".join(f"{(s.running - s.first_write) / floor:.2f}x" for s in result.of(kind, path)) or NONE
                for path in PATHS
            ]
            rows.append(("restore: first write -> RUNNING / floor", *work, ""))
        rows.append((f"{kind}: apply -> reported done", *_cells(result, kind, "done"), ""))
    return rows


def render_table(result: ProfileResult) -> str:
    header = ("figure", PATH_TITLES[PER_RESTORE_DAG], PATH_TITLES[SHIPPED_DAG], "goal / ratio")
    rows = [header, *table_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    first_calls = sorted({s.first_write_call for s in result.samples})
    notes = [f"profile {result.profile}: " + ", ".join(f"{k} {v}" for k, v in result.timing.items())]
    if first_calls:
        notes.append(f"first writes were: {', '.join(first_calls)}")
    notes.extend(f"skipped: {message}" for message in result.skipped)
    return "\n".join(lines + notes)
