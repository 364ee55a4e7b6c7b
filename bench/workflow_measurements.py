"""The workflow benchmark's measurements: pure functions of what the simulator and Airflow recorded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from devstack.airflow_local import parse_time
from devstack.gce_simulator import Profile

SLOT_RELEASING_EVENTS = frozenset(
    {"success", "failed", "up_for_reschedule", "deferred", "up_for_retry", "skipped", "removed", "upstream_failed"}
)


def instance_downtimes(operations: Iterable[Mapping[str, Any]], zone: str, names: Iterable[str]) -> list[float]:
    """Seconds each instance was not RUNNING: its stop operation's start to its following start operation's end."""
    return [(up - down).total_seconds() for _, down, up in instance_down_intervals(operations, zone, names)]


def instance_down_intervals(
    operations: Iterable[Mapping[str, Any]], zone: str, names: Iterable[str]
) -> list[tuple[str, datetime, datetime]]:
    """(instance, stopped, RUNNING again) per stop: its stop operation's start to its following start's end."""
    by_target: dict[str, list[Mapping[str, Any]]] = {}
    for op in operations:
        by_target.setdefault(str(op.get("targetLink", "")), []).append(op)
    downtimes = []
    for name in names:
        suffix = f"/zones/{zone}/instances/{name}"
        ops = sorted(
            (op for link, items in by_target.items() if link.endswith(suffix) for op in items),
            key=lambda op: str(op.get("insertTime")),
        )
        stopped_at: datetime | None = None
        for op in ops:
            if op.get("operationType") == "stop" and op.get("startTime") and not op.get("error"):
                stopped_at = parse_time(op["startTime"])
            elif op.get("operationType") == "start" and op.get("endTime") and stopped_at is not None:
                started_at = parse_time(op["endTime"])
                assert started_at is not None
                downtimes.append((name, stopped_at, started_at))
                stopped_at = None
    return downtimes


def slot_intervals(events: Iterable[Mapping[str, Any]], task_keys: set[tuple[str, int]]) -> list[float]:
    """Lengths of each execution of the given task instances: from `running` to the next state it ended in."""
    return [seconds for per_task in slot_intervals_by_task(events, task_keys).values() for seconds in per_task]


def slot_intervals_by_task(
    events: Iterable[Mapping[str, Any]], task_keys: set[tuple[str, int]]
) -> dict[str, list[float]]:
    """slot_intervals per task id (every map index together): which wait holds the slots."""
    running_since: dict[tuple[str, int], datetime] = {}
    intervals: dict[str, list[float]] = {}
    for event in sorted(events, key=lambda e: (str(e["when"]), e.get("event_log_id", 0))):
        task_id = event.get("task_id")
        if not task_id:
            continue
        key = (task_id, event.get("map_index") if event.get("map_index") is not None else -1)
        if key not in task_keys:
            continue
        when = parse_time(event["when"])
        assert when is not None
        if event["event"] == "running":
            running_since[key] = when
        elif event["event"] in SLOT_RELEASING_EVENTS and key in running_since:
            intervals.setdefault(task_id, []).append((when - running_since.pop(key)).total_seconds())
    return intervals


WAITING_OPERATORS = ("Sensor", "DownWindowOperator")  # class-name endings of the tasks that wait on Compute Engine


def sensor_keys(task_instances: Iterable[Mapping[str, Any]]) -> set[tuple[str, int]]:
    return {
        (ti["task_id"], ti.get("map_index", -1) if ti.get("map_index") is not None else -1)
        for ti in task_instances
        if str(ti.get("operator") or ti.get("operator_name") or "").endswith(WAITING_OPERATORS)
    }


def calls_between(calls: Iterable[Mapping[str, Any]], since: float, until: float) -> dict[str, int]:
    counts = Counter(str(c["method"]) for c in calls if since <= float(c["time"]) <= until)
    return dict(sorted(counts.items()))


def fewest_running(intervals: Iterable[tuple[str, datetime, datetime]], vms: int) -> int:
    """The fewest of ``vms`` VMs RUNNING at any instant, from each VM's down intervals (a rolling tier's promise)."""
    edges = sorted(
        [(down, 1) for _, down, _ in intervals] + [(up, -1) for _, _, up in intervals], key=lambda e: (e[0], e[1])
    )
    down_now = most_down = 0
    for _, step in edges:  # at a tie the start counts first: a VM up at t and another down at t never overlap
        down_now += step
        most_down = max(most_down, down_now)
    return vms - most_down


def task_executions(events: Iterable[Mapping[str, Any]]) -> int:
    """How many times Airflow ran a task instance (each `running` in its event log: a process or a resume)."""
    return sum(1 for e in events if e.get("event") == "running" and e.get("task_id"))


def physical_floor(profile: Profile, method: str = "standard") -> float:
    """The shortest downtime Compute Engine allows one VM in stop mode, in the profile's (scaled) seconds.

    The VM is down from its stop operation's start: the guest stops, the cut's operation waits PENDING and the
    snapshot stays CREATING (an instant snapshot: until READY), the start operation waits PENDING and boots. No
    workflow can start the VM sooner.
    """
    cut = profile.instant_snapshot_creating_seconds if method == "instant" else profile.snapshot_creating_seconds
    return profile.scaled(profile.stop_seconds + cut + profile.start_seconds + 2 * profile.operation_pending_seconds)
