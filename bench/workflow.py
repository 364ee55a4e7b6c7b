"""The workflow benchmark: our backup DAG against the Composer tutorial's flow, on a real Airflow and scheduler.

Everything runs in one process tree, on one Airflow, against the same Compute Engine simulator profile. The 1-VM
scenarios back up `--repeat` VMs each (default 3), one after the other and interleaved with each other, and
report the mean per backup: a single backup's downtime varies by a few seconds with Airflow's scheduling.

1. ``ours``: the rendered DAG of a 1-VM stop-mode policy, rendered as the controller renders it for this Airflow:
   the controller's own WaitModeResolver asks the Airflow's health endpoint, finds the triggerer running and picks
   deferrable sensors (Composer 2.1+ and 3 run a triggerer when it is enabled; `airflow standalone` always does).
2. ``tutorial``: the tutorial's sequential flow (bench/tutorial_dag.py), poke-mode sensors, same operators.
3. ``ours x N``: the rendered DAG of an N-VM policy (default 20), same Airflow, same wait mode.
4. ``ours, reschedule``: the 1-VM DAG rendered as for an Airflow without a triggerer (the fallback), same Airflow.
5. ``ours, instant`` (``--method both``): the 1-VM DAG with spec.snapshot.method instant. ``--method instant``
   instead renders scenarios 1, 3 and 4 with instant snapshots.

Each backup gets fresh VMs with identical disks, so every run takes a first (full) snapshot.

How each figure is measured (no figure comes from Airflow's own idea of the VM):

- Downtime: the simulator's operations. The VM stops being RUNNING when its stop operation starts (STOPPING)
  and is RUNNING again when its start operation ends; downtime is the time between the two.
- Worker-slot-seconds waiting: Airflow's event log records `running` when a task instance starts executing on
  a worker and its new state (`up_for_reschedule`, `deferred`, `success`, ...) when that execution ends. The sum
  of those intervals over the waiting task instances (operator class ending in "Sensor", and the down window,
  which waits on Compute Engine inside its task where no triggerer runs) is the time waits held a worker slot;
  time in the triggerer or between reschedules is not a slot. Each execution's process start-up before
  `running` is left out for both flows alike.
- API calls: the simulator's call log between the start and the end of the run, by API method.
- Wall time: the DAG run's start_date to end_date as the scheduler recorded them (real LocalExecutor).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.tutorial_dag import write_tutorial_dag
from devstack.airflow_local import AirflowApi, LocalAirflow, parse_time
from devstack.gce_simulator import ComputeSimulator, Profile
from vmbackup.model.policy import BackupPolicy, WaitMode, parse_policy
from vmbackup.settings import POKE_INTERVAL_ENV, RETRY_DELAY_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGINS_FOLDER = REPO_ROOT / "plugins"
PROJECT = "bench-project"
ZONE = "us-central1-a"
NAMESPACE = "bench"
BUCKET = "bench-composer-bucket"
SLOT_RELEASING_EVENTS = frozenset(
    {"success", "failed", "up_for_reschedule", "deferred", "up_for_retry", "skipped", "removed", "upstream_failed"}
)
Echo = Callable[[str], None]
INSTANT_SCENARIO = "ours-instant"  # the 1-VM scenario with spec.snapshot.method instant (--method both)
ROLLING_SCENARIO = "ours-rolling-3vm"  # one tier of 3 VMs with spec.maxUnavailable 1
ROLLING_VMS, ROLLING_MAX_UNAVAILABLE = 3, 1
INSTANT_DOWNTIME_GOAL = 0.4  # issue 10: instant method's downtime vs the tutorial's flow


@dataclass(frozen=True)
class WorkflowBenchConfig:
    profile: str = "realistic"
    time_scale: float = 0.5
    vms: int = 20
    disk_gb: int = 50
    poke_interval: float | None = None  # default: the factory's 30 s, scaled like Compute Engine's time
    reschedule: bool = True  # also measure the fallback for an Airflow without a triggerer
    repeat: int = 3  # backups of each 1-VM scenario (interleaved); their figures are averaged
    fleet_repeat: int = 3  # runs of the fleet scenario, each on fresh VMs; the wall-time ratio's spread
    parallelism: int = 32
    method: str = "standard"  # spec.snapshot.method of our DAGs; "both": an extra 1-VM scenario with instant snapshots
    run_timeout: float = 1800.0
    startup_timeout: float = 240.0  # for Airflow to answer its health check (longer on a loaded machine)

    @property
    def poke_seconds(self) -> float:
        return self.poke_interval if self.poke_interval is not None else round(30.0 * self.time_scale, 3)

    def simulator_profile(self) -> Profile:
        return Profile.named(self.profile, time_scale=self.time_scale)


@dataclass
class ScenarioResult:
    """One DAG run and what the simulator and Airflow recorded about it."""

    name: str
    dag_id: str
    run_id: str
    state: str
    wall_seconds: float | None
    downtime_seconds: list[float]
    calls_by_method: dict[str, int]
    sensor_slot_seconds: float
    sensor_executions: int
    instances: int
    slot_seconds_by_sensor: dict[str, float] = field(default_factory=dict)
    task_executions: int = 0  # every task execution of the run (starts, pokes, resumes)
    # Each VM's down interval (VM, seconds from the trigger it stopped, seconds it was RUNNING again): the timeline.
    down_intervals: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def calls_per_backup(self) -> float:
        return sum(self.calls_by_method.values()) / max(self.instances, 1)

    @property
    def mean_downtime(self) -> float | None:
        return sum(self.downtime_seconds) / len(self.downtime_seconds) if self.downtime_seconds else None

    @property
    def slot_seconds_per_backup(self) -> float:
        return self.sensor_slot_seconds / max(self.instances, 1)


@dataclass
class Row:
    metric: str
    ours: float | None
    baseline: float | None
    ours_label: str
    baseline_label: str
    goal_ratio: float | None  # the ratio must be at most this; None: reported only
    goal_min: float | None = None  # or: the ratio must be at least this (a floor, e.g. VMs kept RUNNING)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline

    @property
    def verdict(self) -> str:
        if self.goal_ratio is None and self.goal_min is None:
            return "-"
        if self.ratio is None:
            return "NOT MEASURED"
        if self.goal_min is not None:
            return "met" if self.ratio >= self.goal_min else "MISSED"
        return "met" if self.goal_ratio is not None and self.ratio <= self.goal_ratio else "MISSED"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "ours": self.ours,
            "ours_label": self.ours_label,
            "baseline": self.baseline,
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "goal_ratio_max": self.goal_ratio,
            "goal_ratio_min": self.goal_min,
            "verdict": self.verdict,
        }


@dataclass
class BenchResult:
    config: WorkflowBenchConfig
    profile: Profile
    airflow_version: str
    executor: str
    wait_mode: str = "?"  # what the controller's detection chose for the bench's Airflow
    scenarios: dict[str, ScenarioResult] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    fleet_repeats: list[ScenarioResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config) | {"poke_seconds": self.config.poke_seconds},
            "profile": self.profile.to_dict(),
            "airflow_version": self.airflow_version,
            "executor": self.executor,
            "wait_mode": self.wait_mode,
            "rows": [row.to_dict() for row in self.rows],
            "scenarios": {
                name: dataclasses.asdict(s)
                | {"calls_per_backup": s.calls_per_backup, "slot_seconds_per_backup": s.slot_seconds_per_backup}
                for name, s in self.scenarios.items()
            },
            "simulator_violations": self.violations,
            "bench_seconds": self.seconds,
        }


# -- measurements (pure functions of what the simulator and Airflow recorded) ------------------------------------


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


# -- output -----------------------------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_table(rows: Sequence[Row]) -> str:
    lines = [
        "| metric | ours | baseline | ratio | goal | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        goal = f"<= {row.goal_ratio:g}x" if row.goal_ratio is not None else "-"
        if row.goal_min is not None:
            goal = f">= {row.goal_min:g}x"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "n/a"
        lines.append(
            f"| {row.metric} | {_number(row.ours)} ({row.ours_label}) | {_number(row.baseline)} "
            f"({row.baseline_label}) | {ratio} | {goal} | {row.verdict} |"
        )
    return "\n".join(lines)


def render_calls(scenarios: Mapping[str, ScenarioResult]) -> str:
    methods = sorted({m for s in scenarios.values() for m in s.calls_by_method})
    names = list(scenarios)
    lines = [
        "| API method (calls per backup) | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for method in methods:
        cells = [_number(scenarios[n].calls_by_method.get(method, 0) / max(scenarios[n].instances, 1)) for n in names]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    totals = [_number(scenarios[n].calls_per_backup) for n in names]
    lines.append("| **total** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def render_report(result: BenchResult) -> str:
    cfg, profile = result.config, result.profile
    s = result.scenarios
    parts = [
        "## Workflow benchmark",
        "",
        f"Airflow {result.airflow_version}, {result.executor} (parallelism {cfg.parallelism}); Compute Engine "
        f"simulator profile `{profile.name}` at time_scale {profile.time_scale:g} (every Compute Engine duration "
        f"x{profile.time_scale:g}): stop {profile.scaled(profile.stop_seconds):.1f}s, start "
        f"{profile.scaled(profile.start_seconds):.1f}s, snapshot CREATING "
        f"{profile.scaled(profile.snapshot_creating_seconds):.1f}s, first upload of a {cfg.disk_gb} GB disk "
        f"{profile.scaled(profile.snapshot_upload_seconds(cfg.disk_gb, first=True)):.1f}s, API latency "
        f"{profile.scaled(profile.api_latency) * 1000:.0f}ms, operation PENDING "
        f"{profile.scaled(profile.operation_pending_seconds):.2f}s; the physical floor of one VM's downtime "
        f"(stop, PENDING, CREATING, PENDING, start) {physical_floor(profile):.1f}s "
        f"({physical_floor(profile, 'instant'):.1f}s with instant snapshots). Sensor poke interval "
        f"{cfg.poke_seconds:g}s "
        "(the factory's 30 s, scaled the same way). Each backup used fresh VMs with one "
        f"{cfg.disk_gb} GB disk. The controller's wait-mode detection found "
        f"{'a live triggerer' if result.wait_mode == 'deferrable' else 'no live triggerer'} in this Airflow, so "
        f"`ours` and the fleet ran with {result.wait_mode} sensors. Each 1-VM scenario backed up {cfg.repeat} "
        f"VM(s) one after the other, interleaved with the others; its figures are the mean per backup and its "
        f"wall time the median. Measured in one run ({result.seconds / 60:.1f} min).",
        "",
        render_table(result.rows),
        "",
        render_calls(s),
        "",
        "Method: downtime from the simulator's stop/start operations (STOPPING begins -> RUNNING again); "
        "worker-slot-seconds = sum over sensor task instances of Airflow event-log intervals from `running` to "
        "the state each execution ended in (up_for_reschedule/deferred/success), i.e. time a sensor occupied an "
        "executor slot; wall time = DAG run start_date -> end_date (real scheduler, LocalExecutor).",
    ]
    for name, scenario in s.items():
        downtime = scenario.downtime_seconds
        detail = (
            f"downtime mean {_number(scenario.mean_downtime)}s "
            f"({', '.join(_number(d) for d in downtime) if len(downtime) <= 5 else 'max ' + _number(max(downtime))})"
            if downtime
            else "no downtime measured"
        )
        parts.append(
            f"- `{name}`: run {scenario.state}, {scenario.instances} VM(s), wall {_number(scenario.wall_seconds)}s, "
            f"{detail}, sensor slot-seconds {scenario.sensor_slot_seconds:.1f} over {scenario.sensor_executions} "
            f"executions ({_by_sensor(scenario)}), {scenario.task_executions / max(scenario.instances, 1):.1f} task "
            f"executions per VM, {scenario.calls_per_backup:.1f} API calls per backup"
        )
    for i, run in enumerate(result.fleet_repeats, start=1):
        downtime = run.downtime_seconds
        parts.append(
            f"- fleet repeat {i}: run {run.state}, wall {_number(run.wall_seconds)}s, downtime mean "
            f"{_number(run.mean_downtime)}s, max {_number(max(downtime) if downtime else None)}s"
        )
    if result.violations:
        parts.append(f"- simulator invariant violations: {len(result.violations)}: {result.violations[:3]}")
    else:
        parts.append("- simulator invariant violations: none")
    return "\n".join(parts)


def _by_sensor(scenario: ScenarioResult) -> str:
    parts = sorted(scenario.slot_seconds_by_sensor.items(), key=lambda item: -item[1])
    return ", ".join(f"{task.rsplit('.', 1)[-1]} {seconds:.1f}" for task, seconds in parts) or "none"


def build_rows(
    scenarios: Mapping[str, ScenarioResult],
    vms: int,
    wait_mode: str = "deferrable",
    method: str = "standard",
    floors: Mapping[str, float] | None = None,
    fleet_repeats: Sequence[ScenarioResult] = (),
) -> list[Row]:
    ours, tutorial = scenarios.get("ours"), scenarios.get("tutorial")
    fallback, many = scenarios.get("ours-reschedule"), scenarios.get(f"ours-{vms}vm")
    instant = scenarios.get(INSTANT_SCENARIO)
    primary = "instant" if method == "instant" else "standard"
    rows = [
        Row(
            f"VM downtime per backup (s), as deployed here ({wait_mode}, {primary} snapshots)",
            ours.mean_downtime if ours else None,
            tutorial.mean_downtime if tutorial else None,
            "our DAG",
            "tutorial flow",
            INSTANT_DOWNTIME_GOAL if primary == "instant" else 0.5,
        ),
        Row(
            f"worker-slot-seconds waiting per backup, as deployed here ({wait_mode})",
            ours.slot_seconds_per_backup if ours else None,
            tutorial.slot_seconds_per_backup if tutorial else None,
            "our sensors",
            "poke-mode sensors",
            0.1,
        ),
    ]
    if instant is not None:
        rows.append(
            Row(
                f"VM downtime per backup (s), instant snapshots ({wait_mode})",
                instant.mean_downtime,
                tutorial.mean_downtime if tutorial else None,
                "our DAG, instant",
                "tutorial flow",
                INSTANT_DOWNTIME_GOAL,
            )
        )
    if fallback is not None:
        rows.append(
            Row(
                "VM downtime per backup (s), no triggerer (reschedule)",
                fallback.mean_downtime,
                tutorial.mean_downtime if tutorial else None,
                "our DAG, reschedule",
                "tutorial flow",
                0.5,
            )
        )
        rows.append(
            Row(
                "worker-slot-seconds waiting per backup, no triggerer (reschedule)",
                fallback.slot_seconds_per_backup,
                tutorial.slot_seconds_per_backup if tutorial else None,
                "our sensors, reschedule",
                "poke-mode sensors",
                0.1,
            )
        )
    rows += [
        Row(
            "Compute Engine API calls per backup",
            ours.calls_per_backup if ours else None,
            tutorial.calls_per_backup if tutorial else None,
            "our DAG",
            "tutorial flow",
            None,
        ),
        Row(
            f"wall time, {vms} VMs vs 1 VM (s)",
            many.wall_seconds if many else None,
            ours.wall_seconds if ours else None,
            f"{vms} VMs",
            "1 VM",
            1.5,
        ),
    ]
    floors = floors or {}
    rows += floor_rows(ours, many, vms, floors.get(primary))
    if instant is not None and "instant" in floors:
        rows.append(
            Row(
                "VM downtime per backup vs the physical floor (s), 1 VM, instant snapshots",
                instant.mean_downtime,
                floors["instant"],
                "our DAG, instant",
                "floor, instant",
                1.1,
            )
        )
    rows += wall_repeat_rows(fleet_repeats, ours, vms)
    rows += rolling_rows(scenarios.get(ROLLING_SCENARIO))
    if many is not None:
        rows.append(
            Row(
                f"Compute Engine API calls per VM, {vms} VMs vs 1 VM",
                many.calls_per_backup,
                ours.calls_per_backup if ours else None,
                f"{vms} VMs",
                "1 VM",
                None,
            )
        )
    return rows


def floor_rows(ours: ScenarioResult | None, many: ScenarioResult | None, vms: int, floor: float | None) -> list[Row]:
    """Downtime against the physical floor: 1 VM (goal 1.1x) and every VM of the fleet run (mean and max, 1.2x)."""
    if floor is None:
        return []
    rows = [
        Row(
            "VM downtime per backup vs the physical floor (s), 1 VM",
            ours.mean_downtime if ours else None,
            floor,
            "our DAG",
            "floor",
            1.1,
        )
    ]
    if many is not None and many.downtime_seconds:
        rows.append(
            Row(
                f"VM downtime vs the physical floor (s), mean of the {vms}-VM run",
                many.mean_downtime,
                floor,
                f"{vms} VMs, mean",
                "floor",
                1.2,
            )
        )
        rows.append(
            Row(
                f"VM downtime vs the physical floor (s), worst VM of the {vms}-VM run",
                max(many.downtime_seconds),
                floor,
                f"{vms} VMs, max",
                "floor",
                1.2,
            )
        )
    return rows


def rolling_rows(rolling: ScenarioResult | None) -> list[Row]:
    """A 3-VM tier with maxUnavailable 1: the fewest VMs RUNNING at any instant of the simulator's timeline."""
    if rolling is None or rolling.state != "success":
        return []
    fewest = fewest_running(rolling.down_intervals, ROLLING_VMS)
    kept = ROLLING_VMS - ROLLING_MAX_UNAVAILABLE
    return [
        Row(
            f"fewest VMs RUNNING at once, a {ROLLING_VMS}-VM tier with maxUnavailable {ROLLING_MAX_UNAVAILABLE}",
            float(fewest),
            float(kept),
            "simulator timeline",
            "goal",
            None,
            goal_min=1.0,
        )
    ]


def wall_repeat_rows(repeats: Sequence[ScenarioResult], ours: ScenarioResult | None, vms: int) -> list[Row]:
    """The fleet's wall-time ratio once per repeat, so its spread shows (one run's ratio moves a lot)."""
    if ours is None or ours.wall_seconds is None or len(repeats) < 2:
        return []
    return [
        Row(
            f"wall time, {vms} VMs vs 1 VM (s), repeat {i}",
            r.wall_seconds,
            ours.wall_seconds,
            f"{vms} VMs",
            "1 VM, median",
            1.5,
        )
        for i, r in enumerate(repeats, start=1)
    ]


# -- running ----------------------------------------------------------------------------------------------------


def policy_for(
    name: str, instances: Sequence[str], method: str = "standard", max_unavailable: int | None = None
) -> BackupPolicy:
    rolling = {"maxUnavailable": max_unavailable} if max_unavailable is not None else {}
    return parse_policy(
        NAMESPACE,
        name,
        {
            "project": PROJECT,
            "instances": [{"name": instance, "zone": ZONE} for instance in instances],
            "consistency": "stop",
            "snapshot": {"method": method},
            "schedule": "@daily",
            "retention": {"count": 7},
            **rolling,
        },
        # As the API server stamps every policy: its DAG's first scheduled run is then tomorrow, so no
        # scheduled run starts when the bench unpauses it (it would back up the VMs a second time).
        created=datetime.now(UTC),
    )


def detect_wait_mode(base_url: str) -> WaitMode:
    """What the controller would render for this Airflow: its own resolver, over the REST API."""
    import asyncio

    from controller.airflow_api import AirflowClient
    from controller.airflow_auth import make_auth
    from controller.airflow_link import AirflowControl
    from controller.wait_mode import WaitModeResolver

    async def ask() -> WaitMode:
        airflow = AirflowControl(AirflowClient(base_url, make_auth("none")))  # the health endpoint needs no login
        try:
            return await WaitModeResolver().mode(("bench", base_url), airflow)
        finally:
            await airflow.close()

    return asyncio.run(ask())


def write_policy_dag(folder: Path, policy: BackupPolicy) -> str:
    from dags_templates.render import render_dag

    (folder / f"{policy.dag_id}.py").write_text(render_dag(policy))
    return policy.dag_id


class _Stack:
    """The storage emulator and the simulator, shared by every Airflow the bench starts."""

    def __init__(self, profile: Profile, disk_gb: int):
        self.profile = profile
        self.disk_gb = disk_gb
        self.simulator = ComputeSimulator(profile)
        self.storage: Any = None
        self.storage_url = ""

    def __enter__(self) -> _Stack:
        from gcp_storage_emulator.server import create_server
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        from devstack.airflow_local import free_port

        port = free_port()
        self.storage = create_server("127.0.0.1", port, in_memory=True)
        self.storage.start()
        self.storage_url = f"http://127.0.0.1:{port}"
        client = storage.Client(
            project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.storage_url}
        )
        client.create_bucket(BUCKET)
        self.simulator.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.simulator.stop()
        if self.storage is not None:
            self.storage.stop()

    def seed(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        for name in names:
            self.simulator.add_instance(PROJECT, ZONE, name, disks=[{"name": name, "size_gb": self.disk_gb}])
        return names

    def airflow_env(self, cfg: WorkflowBenchConfig) -> dict[str, str]:
        return {
            "VMBACKUP_COMPUTE_ENDPOINT": self.simulator.base_url,
            **self.simulator.profile.quota_window_env(),
            "GCS_BUCKET": BUCKET,
            "STORAGE_EMULATOR_HOST": self.storage_url,
            POKE_INTERVAL_ENV: str(cfg.poke_seconds),
            RETRY_DELAY_ENV: str(max(1.0, cfg.poke_seconds)),
        }


def run_scenario(
    name: str, api: AirflowApi, stack: _Stack, dag_id: str, instances: Sequence[str], timeout: float, echo: Echo
) -> ScenarioResult:
    """Trigger one run on an otherwise idle Airflow and read what the simulator and Airflow recorded."""
    api.wait_for_dag(dag_id, timeout=180)
    stack.simulator.wait_idle(timeout=30)
    since = time.time()
    run_id = api.start_run(dag_id)
    echo(f"[{name}] triggered {dag_id} ({len(instances)} VM(s))")
    run = api.wait_for_run(dag_id, run_id, timeout=timeout)
    stack.simulator.wait_idle(timeout=30)
    until = time.time()
    task_instances = api.task_instances(dag_id, run_id)
    events = api.event_logs(dag_id, run_id)
    by_task = slot_intervals_by_task(events, sensor_keys(task_instances))
    intervals = [seconds for per_task in by_task.values() for seconds in per_task]
    down = instance_down_intervals(stack.simulator.operations(), ZONE, instances)
    result = ScenarioResult(
        name=name,
        dag_id=dag_id,
        run_id=run_id,
        state=run.state,
        wall_seconds=run.seconds,
        downtime_seconds=[(up - stopped).total_seconds() for _, stopped, up in down],
        down_intervals=[(vm, stopped.timestamp() - since, up.timestamp() - since) for vm, stopped, up in down],
        calls_by_method=calls_between(stack.simulator.calls, since, until),
        sensor_slot_seconds=sum(intervals),
        sensor_executions=len(intervals),
        instances=len(instances),
        slot_seconds_by_sensor={task: round(sum(v), 2) for task, v in sorted(by_task.items())},
        task_executions=task_executions(events),
    )
    if run.state != "success":
        failed = sorted({ti["task_id"] for ti in task_instances if ti["state"] == "failed"})
        echo(f"[{name}] run ended {run.state}; failed tasks: {', '.join(failed) or 'none'}")
    echo(
        f"[{name}] {run.state} in {_number(run.seconds)}s; downtime mean {_number(result.mean_downtime)}s; "
        f"sensor slot-seconds {result.sensor_slot_seconds:.1f}; {result.calls_per_backup:.1f} calls/backup"
    )
    return result


def merge_repeats(name: str, runs: Sequence[ScenarioResult]) -> ScenarioResult:
    """Several backups of one scenario as one: per-backup figures become means over them, wall time the median."""
    walls = sorted(r.wall_seconds for r in runs if r.wall_seconds is not None)
    calls: Counter[str] = Counter()
    by_sensor: Counter[str] = Counter()
    for r in runs:
        calls.update(r.calls_by_method)
        by_sensor.update(r.slot_seconds_by_sensor)
    failed = [r.state for r in runs if r.state != "success"]
    return ScenarioResult(
        name=name,
        dag_id=runs[0].dag_id,
        run_id=", ".join(r.run_id for r in runs),
        state=failed[0] if failed else "success",
        wall_seconds=walls[len(walls) // 2] if walls else None,
        downtime_seconds=[d for r in runs for d in r.downtime_seconds],
        calls_by_method=dict(sorted(calls.items())),
        sensor_slot_seconds=sum(r.sensor_slot_seconds for r in runs),
        sensor_executions=sum(r.sensor_executions for r in runs),
        instances=sum(r.instances for r in runs),
        slot_seconds_by_sensor={task: round(seconds, 2) for task, seconds in sorted(by_sensor.items())},
        task_executions=sum(r.task_executions for r in runs),
        down_intervals=[interval for r in runs for interval in r.down_intervals],
    )


def run_workflow_bench(
    cfg: WorkflowBenchConfig, echo: Echo = print, while_up: Callable[[LocalAirflow, str], None] | None = None
) -> BenchResult:
    """All scenarios on one Airflow; ``while_up(airflow, fleet_dag_id)`` runs before it stops (scripts/pictures.py)."""
    started = time.monotonic()
    profile = cfg.simulator_profile()
    reps = range(1, cfg.repeat + 1)
    method = "instant" if cfg.method == "instant" else "standard"
    ours_policies = [policy_for(f"one-vm-{i}", [f"ours-vm-{i}"], method) for i in reps]
    tutorial_policies = [policy_for(f"tutorial-vm-{i}", [f"tutorial-vm-{i}"]) for i in reps]
    fleet_reps = range(1, cfg.fleet_repeat + 1)
    fleet_names = {r: [f"fleet-{r}-vm-{i:02d}" for i in range(1, cfg.vms + 1)] for r in fleet_reps}
    fleet_policies = {r: policy_for(f"fleet-{cfg.vms}-{r}", names, method) for r, names in fleet_names.items()}
    fallback_policies = [
        policy_for(f"one-vm-reschedule-{i}", [f"reschedule-vm-{i}"], method).waiting("reschedule") for i in reps
    ]
    rolling_names = [f"rolling-vm-{i}" for i in range(1, ROLLING_VMS + 1)]
    rolling_policy = policy_for("rolling-3vm", rolling_names, method, ROLLING_MAX_UNAVAILABLE)
    instant_policies = (
        [policy_for(f"one-vm-instant-{i}", [f"instant-vm-{i}"], "instant") for i in reps]
        if cfg.method == "both"
        else []
    )
    with _Stack(profile, cfg.disk_gb) as stack, tempfile.TemporaryDirectory(prefix="vmbackup-bench-") as tmp:
        for policy in (
            *ours_policies,
            *tutorial_policies,
            *fleet_policies.values(),
            *fallback_policies,
            *instant_policies,
            rolling_policy,
        ):
            for target in policy.spec.instances or []:
                stack.seed([target.name])
        dags = Path(tmp) / "dags"
        dags.mkdir()
        tutorial_dags = [write_tutorial_dag(dags, p) for p in tutorial_policies]
        fallback_dags = [write_policy_dag(dags, p) for p in fallback_policies] if cfg.reschedule else []
        echo(f"simulator at {stack.simulator.base_url}; storage emulator at {stack.storage_url}")
        airflow = LocalAirflow(
            dags,
            PLUGINS_FOLDER,
            stack.airflow_env(cfg),
            home=Path(tmp) / "airflow-home",
            parallelism=cfg.parallelism,
            echo=echo,
            startup_timeout=cfg.startup_timeout,
        )
        with airflow:
            result = BenchResult(cfg, profile, airflow.version, airflow.executor)
            # The DAGs the controller would upload to this Airflow: rendered after asking it for a triggerer.
            result.wait_mode = mode = detect_wait_mode(airflow.api.base_url)
            echo(f"the controller's wait-mode detection chose {mode} sensors for this Airflow")
            planned = {
                "ours": [(write_policy_dag(dags, p.waiting(mode)), p) for p in ours_policies],
                "tutorial": list(zip(tutorial_dags, tutorial_policies, strict=True)),
                "ours-reschedule": list(zip(fallback_dags, fallback_policies, strict=True)) if cfg.reschedule else [],
                INSTANT_SCENARIO: [(write_policy_dag(dags, p.waiting(mode)), p) for p in instant_policies],
            }
            fleet_dags = {r: write_policy_dag(dags, p.waiting(mode)) for r, p in fleet_policies.items()}
            rolling_dag = write_policy_dag(dags, rolling_policy.waiting(mode))
            api = airflow.api
            runs: dict[str, list[ScenarioResult]] = {name: [] for name in planned}
            fleet_runs: list[ScenarioResult] = []
            for i in reps:  # interleaved, so a slow spell of the machine hits every scenario alike
                for name, backups in planned.items():
                    if backups:
                        dag_id, policy = backups[i - 1]
                        vms = [t.name for t in policy.spec.instances or []]
                        runs[name].append(run_scenario(f"{name} #{i}", api, stack, dag_id, vms, cfg.run_timeout, echo))
                if i in fleet_dags:
                    fleet_runs.append(
                        run_scenario(
                            f"ours-{cfg.vms}vm #{i}", api, stack, fleet_dags[i], fleet_names[i], cfg.run_timeout, echo
                        )
                    )
            for r in fleet_reps:  # fleet repeats beyond the 1-VM repeats
                if r > cfg.repeat:
                    fleet_runs.append(
                        run_scenario(
                            f"ours-{cfg.vms}vm #{r}", api, stack, fleet_dags[r], fleet_names[r], cfg.run_timeout, echo
                        )
                    )
            rolling = run_scenario(ROLLING_SCENARIO, api, stack, rolling_dag, rolling_names, cfg.run_timeout, echo)
            fleet = dataclasses.replace(fleet_runs[0], name=f"ours-{cfg.vms}vm")
            merged = {name: merge_repeats(name, done) for name, done in runs.items() if done}
            result.scenarios = {
                "ours": merged["ours"],
                "tutorial": merged["tutorial"],
                fleet.name: fleet,
                ROLLING_SCENARIO: rolling,
            }
            for extra in ("ours-reschedule", INSTANT_SCENARIO):
                if extra in merged:
                    result.scenarios[extra] = merged[extra]
            if while_up is not None:
                while_up(airflow, fleet_dags[1])
        result.violations = list(stack.simulator.violations)
    result.fleet_repeats = fleet_runs
    floors = {m: physical_floor(profile, m) for m in ("standard", "instant")}
    result.rows = build_rows(result.scenarios, cfg.vms, result.wait_mode, cfg.method, floors, fleet_runs)
    result.seconds = time.monotonic() - started
    return result


def parse_args(argv: Sequence[str]) -> tuple[WorkflowBenchConfig, Path | None]:
    parser = argparse.ArgumentParser(
        prog="python -m bench workflow",
        description="Our backup DAG vs the Composer tutorial's flow on a real Airflow and the Compute Engine simulator.",
    )
    parser.add_argument("--profile", choices=("realistic", "fast"), default="realistic")
    parser.add_argument(
        "--time-scale", type=float, default=0.5, help="multiplies every Compute Engine duration (default 0.5)"
    )
    parser.add_argument("--vms", type=int, default=20, help="VMs in the fleet run (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="backups of each 1-VM scenario, averaged (default 3)")
    parser.add_argument(
        "--fleet-repeat", type=int, default=3, help="runs of the fleet scenario, for its spread (default 3)"
    )
    parser.add_argument("--disk-gb", type=int, default=50, help="size of each VM's disk (default 50)")
    parser.add_argument("--poke-interval", type=float, default=None, help="sensor poke seconds (default 30 x scale)")
    parser.add_argument(
        "--no-reschedule", action="store_true", help="skip the no-triggerer fallback (reschedule) scenario"
    )
    parser.add_argument("--parallelism", type=int, default=32, help="Airflow [core] parallelism (default 32)")
    parser.add_argument(
        "--method",
        choices=("standard", "instant", "both"),
        default="standard",
        help="spec.snapshot.method of our DAGs; both: standard, plus a 1-VM scenario with instant snapshots",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this path")
    args = parser.parse_args(list(argv))
    if args.time_scale <= 0:
        parser.error("--time-scale must be > 0 (e.g. 0.5)")
    if args.vms < 1:
        parser.error("--vms must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.fleet_repeat < 1:
        parser.error("--fleet-repeat must be at least 1")
    if args.disk_gb < 1:
        parser.error("--disk-gb must be at least 1")
    cfg = WorkflowBenchConfig(
        profile=args.profile,
        time_scale=args.time_scale,
        vms=args.vms,
        disk_gb=args.disk_gb,
        poke_interval=args.poke_interval,
        reschedule=not args.no_reschedule,
        repeat=args.repeat,
        fleet_repeat=args.fleet_repeat,
        parallelism=args.parallelism,
        method=args.method,
    )
    return cfg, args.json


def main(argv: Sequence[str]) -> int:
    """Exit 0 whether goals are met or not: this is a measurement; MISSED rows say which goal was not reached."""
    cfg, json_path = parse_args(argv)

    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_workflow_bench(cfg, echo)
    print(render_report(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
        echo(f"wrote {json_path}")
    return 0
