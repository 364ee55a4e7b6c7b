"""Running the workflow benchmark's scenarios: the stack, the policies and DAGs, one Airflow, every run."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.tutorial_dag import write_tutorial_dag
from bench.workflow_measurements import (
    calls_between,
    instance_down_intervals,
    physical_floor,
    sensor_keys,
    slot_intervals_by_task,
    task_executions,
)
from bench.workflow_report import build_rows, number_text
from bench.workflow_results import (
    INSTANT_SCENARIO,
    ROLLING_MAX_UNAVAILABLE,
    ROLLING_SCENARIO,
    ROLLING_VMS,
    BenchResult,
    ScenarioResult,
    WorkflowBenchConfig,
)
from devstack.airflow_local import AirflowApi, LocalAirflow
from devstack.gce_simulator import ComputeSimulator, Profile
from vmbackup.model.policy import BackupPolicy, WaitMode, parse_policy
from vmbackup.settings import POKE_INTERVAL_ENV, RETRY_DELAY_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGINS_FOLDER = REPO_ROOT / "plugins"
PROJECT = "bench-project"
ZONE = "us-central1-a"
NAMESPACE = "bench"
BUCKET = "bench-composer-bucket"
Echo = Callable[[str], None]


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
        f"[{name}] {run.state} in {number_text(run.seconds)}s; downtime mean {number_text(result.mean_downtime)}s; "
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


@dataclass(frozen=True)
class WorkflowPlan:
    """Every policy the bench backs up, each on its own fresh VMs (every run takes a first, full snapshot)."""

    ours: list[BackupPolicy]
    tutorial: list[BackupPolicy]
    fleet_names: dict[int, list[str]]
    fleet: dict[int, BackupPolicy]
    fallback: list[BackupPolicy]
    rolling_names: list[str]
    rolling: BackupPolicy
    instant: list[BackupPolicy]

    @classmethod
    def for_config(cls, cfg: WorkflowBenchConfig) -> WorkflowPlan:
        reps = range(1, cfg.repeat + 1)
        method = "instant" if cfg.method == "instant" else "standard"
        fleet_reps = range(1, cfg.fleet_repeat + 1)
        fleet_names = {r: [f"fleet-{r}-vm-{i:02d}" for i in range(1, cfg.vms + 1)] for r in fleet_reps}
        rolling_names = [f"rolling-vm-{i}" for i in range(1, ROLLING_VMS + 1)]
        return cls(
            ours=[policy_for(f"one-vm-{i}", [f"ours-vm-{i}"], method) for i in reps],
            tutorial=[policy_for(f"tutorial-vm-{i}", [f"tutorial-vm-{i}"]) for i in reps],
            fleet_names=fleet_names,
            fleet={r: policy_for(f"fleet-{cfg.vms}-{r}", names, method) for r, names in fleet_names.items()},
            fallback=[
                policy_for(f"one-vm-reschedule-{i}", [f"reschedule-vm-{i}"], method).waiting("reschedule") for i in reps
            ],
            rolling_names=rolling_names,
            rolling=policy_for("rolling-3vm", rolling_names, method, ROLLING_MAX_UNAVAILABLE),
            instant=(
                [policy_for(f"one-vm-instant-{i}", [f"instant-vm-{i}"], "instant") for i in reps]
                if cfg.method == "both"
                else []
            ),
        )

    def policies(self) -> tuple[BackupPolicy, ...]:
        return (*self.ours, *self.tutorial, *self.fleet.values(), *self.fallback, *self.instant, self.rolling)


@dataclass(frozen=True)
class ScenarioDags:
    """The DAG ids each scenario triggers: the 1-VM scenarios' (DAG, policy) per backup, the fleet's per repeat."""

    one_vm: dict[str, list[tuple[str, BackupPolicy]]]
    fleet: dict[int, str]
    rolling: str


def write_scenario_dags(
    folder: Path, plan: WorkflowPlan, mode: WaitMode, tutorial_dags: list[str], fallback_dags: list[str]
) -> ScenarioDags:
    """Our DAGs as the controller would upload them to this Airflow: rendered after asking it for a triggerer."""
    one_vm = {
        "ours": [(write_policy_dag(folder, p.waiting(mode)), p) for p in plan.ours],
        "tutorial": list(zip(tutorial_dags, plan.tutorial, strict=True)),
        "ours-reschedule": list(zip(fallback_dags, plan.fallback, strict=True)) if fallback_dags else [],
        INSTANT_SCENARIO: [(write_policy_dag(folder, p.waiting(mode)), p) for p in plan.instant],
    }
    fleet = {r: write_policy_dag(folder, p.waiting(mode)) for r, p in plan.fleet.items()}
    return ScenarioDags(one_vm, fleet, write_policy_dag(folder, plan.rolling.waiting(mode)))


def run_scenarios(
    api: AirflowApi, stack: _Stack, cfg: WorkflowBenchConfig, plan: WorkflowPlan, dags: ScenarioDags, echo: Echo
) -> tuple[dict[str, ScenarioResult], list[ScenarioResult]]:
    """Every run, one at a time: the scenarios by name (1-VM ones merged over their backups) and the fleet runs."""
    runs: dict[str, list[ScenarioResult]] = {name: [] for name in dags.one_vm}
    fleet_runs: list[ScenarioResult] = []

    def fleet_run(r: int) -> ScenarioResult:
        return run_scenario(
            f"ours-{cfg.vms}vm #{r}", api, stack, dags.fleet[r], plan.fleet_names[r], cfg.run_timeout, echo
        )

    for i in range(1, cfg.repeat + 1):  # interleaved, so a slow spell of the machine hits every scenario alike
        for name, backups in dags.one_vm.items():
            if backups:
                dag_id, policy = backups[i - 1]
                vms = [t.name for t in policy.spec.instances or []]
                runs[name].append(run_scenario(f"{name} #{i}", api, stack, dag_id, vms, cfg.run_timeout, echo))
        if i in dags.fleet:
            fleet_runs.append(fleet_run(i))
    for r in range(1, cfg.fleet_repeat + 1):  # fleet repeats beyond the 1-VM repeats
        if r > cfg.repeat:
            fleet_runs.append(fleet_run(r))
    rolling = run_scenario(ROLLING_SCENARIO, api, stack, dags.rolling, plan.rolling_names, cfg.run_timeout, echo)
    fleet = dataclasses.replace(fleet_runs[0], name=f"ours-{cfg.vms}vm")
    merged = {name: merge_repeats(name, done) for name, done in runs.items() if done}
    scenarios = {"ours": merged["ours"], "tutorial": merged["tutorial"], fleet.name: fleet, ROLLING_SCENARIO: rolling}
    for extra in ("ours-reschedule", INSTANT_SCENARIO):
        if extra in merged:
            scenarios[extra] = merged[extra]
    return scenarios, fleet_runs


def run_workflow_bench(
    cfg: WorkflowBenchConfig, echo: Echo = print, while_up: Callable[[LocalAirflow, str], None] | None = None
) -> BenchResult:
    """All scenarios on one Airflow; ``while_up(airflow, fleet_dag_id)`` runs before it stops (scripts/pictures.py)."""
    started = time.monotonic()
    profile = cfg.simulator_profile()
    plan = WorkflowPlan.for_config(cfg)
    with _Stack(profile, cfg.disk_gb) as stack, tempfile.TemporaryDirectory(prefix="vmbackup-bench-") as tmp:
        for policy in plan.policies():
            for target in policy.spec.instances or []:
                stack.seed([target.name])
        dags = Path(tmp) / "dags"
        dags.mkdir()
        tutorial_dags = [write_tutorial_dag(dags, p) for p in plan.tutorial]
        fallback_dags = [write_policy_dag(dags, p) for p in plan.fallback] if cfg.reschedule else []
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
            result.wait_mode = mode = detect_wait_mode(airflow.api.base_url)
            echo(f"the controller's wait-mode detection chose {mode} sensors for this Airflow")
            scenario_dags = write_scenario_dags(dags, plan, mode, tutorial_dags, fallback_dags)
            result.scenarios, fleet_runs = run_scenarios(airflow.api, stack, cfg, plan, scenario_dags, echo)
            if while_up is not None:
                while_up(airflow, scenario_dags.fleet[1])
        result.violations = list(stack.simulator.violations)
    result.fleet_repeats = fleet_runs
    floors = {m: physical_floor(profile, m) for m in ("standard", "instant")}
    result.rows = build_rows(result.scenarios, cfg.vms, result.wait_mode, cfg.method, floors, fleet_runs)
    result.seconds = time.monotonic() - started
    return result
