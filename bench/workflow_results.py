"""The workflow benchmark's configuration and what it measured: one module both the runner and the report read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from devstack.gce_simulator import Profile

INSTANT_SCENARIO = "ours-instant"  # the 1-VM scenario with spec.snapshot.method instant (--method both)
ROLLING_SCENARIO = "ours-rolling-3vm"  # one tier of 3 VMs with spec.maxUnavailable 1
ROLLING_VMS, ROLLING_MAX_UNAVAILABLE = 3, 1


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
