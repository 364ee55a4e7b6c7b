"""The fleet benchmark: one policy whose selector matches more VMs than Airflow's ``max_map_length``.

A real fleet has thousands of VMs; a 2-core machine cannot run them, so the limit is lowered instead
(``AIRFLOW__CORE__MAX_MAP_LENGTH``, Airflow's own setting, default 1024) and a selector matches more VMs than
it allows. The figures: whether every VM was backed up, the run's wall time, and how many task executions
Airflow spent per VM (each one a scheduling round and a process start on a real Composer worker: what limits
how large a fleet one environment can back up).

How each figure is measured:

- VMs backed up: the simulator's snapshots labelled with the run (one per disk of each VM, READY at the end).
- Task executions: Airflow's event log, every ``running`` of a task instance of the run (a first try, a
  retry, a sensor's reschedule or resume each count once).
- Wall time, downtime, API calls: as in bench/workflow.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.workflow_measurements import task_executions
from bench.workflow_results import ScenarioResult, WorkflowBenchConfig
from bench.workflow_scenarios import (
    BUCKET,
    NAMESPACE,
    PLUGINS_FOLDER,
    PROJECT,
    ZONE,
    Echo,
    _Stack,
    detect_wait_mode,
    run_scenario,
    write_policy_dag,
)
from devstack.airflow_local import LocalAirflow
from vmbackup.model import labels as vmlabels
from vmbackup.model.identifiers import run_hash
from vmbackup.model.policy import parse_policy

FLEET_LABEL = {"backup-fleet": "bench"}
MAX_MAP_LENGTH_ENV = "AIRFLOW__CORE__MAX_MAP_LENGTH"


@dataclass(frozen=True)
class FleetBenchConfig:
    vms: int = 40
    max_map_length: int = 16
    profile: str = "fast"
    time_scale: float = 1.0
    disk_gb: int = 10
    poke_interval: float = 1.0
    parallelism: int = 32
    run_timeout: float = 1800.0
    startup_timeout: float = 600.0


@dataclass
class FleetResult:
    config: FleetBenchConfig
    airflow_version: str
    wait_mode: str
    scenario: ScenarioResult
    backed_up: int
    task_executions: int

    @property
    def executions_per_vm(self) -> float:
        return self.task_executions / max(self.config.vms, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "airflow_version": self.airflow_version,
            "wait_mode": self.wait_mode,
            "scenario": asdict(self.scenario),
            "backed_up": self.backed_up,
            "task_executions": self.task_executions,
            "task_executions_per_vm": self.executions_per_vm,
        }


def backed_up_vms(snapshots: Sequence[dict[str, Any]], dag_id: str, run_id: str) -> int:
    """VMs with a READY snapshot of this run (snapshots carry the run as a label)."""
    run = run_hash(dag_id, run_id)
    return len(
        {
            labels.get(vmlabels.INSTANCE)
            for s in snapshots
            if (labels := s.get("labels") or {}).get(vmlabels.RUN) == run and s.get("status") == "READY"
        }
    )


def run_fleet_bench(cfg: FleetBenchConfig, echo: Echo = print) -> FleetResult:
    workflow_cfg = WorkflowBenchConfig(
        profile=cfg.profile, time_scale=cfg.time_scale, disk_gb=cfg.disk_gb, poke_interval=cfg.poke_interval
    )
    names = [f"fleet-vm-{i:03d}" for i in range(1, cfg.vms + 1)]
    policy = parse_policy(
        NAMESPACE,
        f"selector-{cfg.vms}",
        {
            "project": PROJECT,
            "selector": {"matchLabels": FLEET_LABEL, "zones": [ZONE]},
            "consistency": "stop",
            "schedule": "@daily",
            "retention": {"count": 7},
        },
        created=datetime.now(UTC),
    )
    with (
        _Stack(workflow_cfg.simulator_profile(), cfg.disk_gb) as stack,
        tempfile.TemporaryDirectory(prefix="vmbackup-fleet-") as tmp,
    ):
        for name in names:
            stack.simulator.add_instance(
                PROJECT, ZONE, name, labels=dict(FLEET_LABEL), disks=[{"name": name, "size_gb": cfg.disk_gb}]
            )
        dags = Path(tmp) / "dags"
        dags.mkdir()
        env = stack.airflow_env(workflow_cfg) | {MAX_MAP_LENGTH_ENV: str(cfg.max_map_length)}
        airflow = LocalAirflow(
            dags,
            PLUGINS_FOLDER,
            env,
            home=Path(tmp) / "airflow-home",
            parallelism=cfg.parallelism,
            echo=echo,
            startup_timeout=cfg.startup_timeout,
        )
        with airflow:
            mode = detect_wait_mode(airflow.api.base_url)
            dag_id = write_policy_dag(dags, policy.waiting(mode))
            scenario = run_scenario(f"fleet-{cfg.vms}", airflow.api, stack, dag_id, names, cfg.run_timeout, echo)
            executions = task_executions(airflow.api.event_logs(dag_id, scenario.run_id))
            backed_up = backed_up_vms(stack.simulator.snapshots(PROJECT), dag_id, scenario.run_id)
            return FleetResult(cfg, airflow.version, mode, scenario, backed_up, executions)


def render_report(result: FleetResult) -> str:
    cfg, s = result.config, result.scenario
    downtime = s.downtime_seconds
    return "\n".join(
        [
            "## Fleet benchmark",
            "",
            f"Airflow {result.airflow_version} with `{MAX_MAP_LENGTH_ENV}={cfg.max_map_length}`, {result.wait_mode} "
            f"waits; one policy whose selector matches {cfg.vms} VMs; simulator profile `{cfg.profile}` at time "
            f"scale {cfg.time_scale:g}; bucket {BUCKET}.",
            "",
            "| figure | measured |",
            "|---|---|",
            f"| run | {s.state} |",
            f"| VMs backed up | {result.backed_up} of {cfg.vms} |",
            f"| wall time | {_number(s.wall_seconds)} s |",
            f"| Airflow task executions per VM | {result.executions_per_vm:.2f} ({result.task_executions} in all) |",
            f"| Compute Engine API calls per VM | {s.calls_per_backup:.1f} |",
            f"| VM downtime mean / max | {_mean(downtime)} / {_number(max(downtime) if downtime else None)} s |",
        ]
    )


def _mean(values: Sequence[float]) -> str:
    return _number(sum(values) / len(values) if values else None)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def parse_args(argv: Sequence[str]) -> tuple[FleetBenchConfig, Path | None]:
    parser = argparse.ArgumentParser(
        prog="python -m bench fleet",
        description="A selector matching more VMs than Airflow's max_map_length, backed up in one run.",
    )
    parser.add_argument("--vms", type=int, default=40, help="VMs the selector matches (default 40)")
    parser.add_argument("--max-map-length", type=int, default=16, help="Airflow's [core] max_map_length (default 16)")
    parser.add_argument("--profile", choices=("realistic", "fast"), default="fast")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies every Compute Engine duration")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this path")
    args = parser.parse_args(list(argv))
    if args.vms < 1:
        parser.error("--vms must be at least 1")
    if args.max_map_length < 1:
        parser.error("--max-map-length must be at least 1")
    if args.time_scale <= 0:
        parser.error("--time-scale must be > 0")
    cfg = FleetBenchConfig(
        vms=args.vms, max_map_length=args.max_map_length, profile=args.profile, time_scale=args.time_scale
    )
    return cfg, args.json


def main(argv: Sequence[str]) -> int:
    """Exit 0 whatever the run's outcome: a measurement; the table says whether every VM was backed up."""
    cfg, json_path = parse_args(argv)

    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_fleet_bench(cfg, echo)
    print(render_report(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return 0
