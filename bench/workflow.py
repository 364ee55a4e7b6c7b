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
import json
import sys
from collections.abc import Sequence
from pathlib import Path

# Re-exported: tests and scripts/pictures.py import these from bench.workflow, as before the split.
from bench.workflow_measurements import (
    calls_between,
    fewest_running,
    instance_down_intervals,
    instance_downtimes,
    physical_floor,
    sensor_keys,
    slot_intervals,
    slot_intervals_by_task,
    task_executions,
)
from bench.workflow_report import (
    build_rows,
    floor_rows,
    render_calls,
    render_report,
    render_table,
    rolling_rows,
    wall_repeat_rows,
)
from bench.workflow_results import BenchResult, Row, ScenarioResult, WorkflowBenchConfig
from bench.workflow_scenarios import merge_repeats, policy_for, run_scenario, run_workflow_bench

__all__ = [
    "BenchResult",
    "Row",
    "ScenarioResult",
    "WorkflowBenchConfig",
    "build_rows",
    "calls_between",
    "fewest_running",
    "floor_rows",
    "instance_down_intervals",
    "instance_downtimes",
    "main",
    "merge_repeats",
    "parse_args",
    "physical_floor",
    "policy_for",
    "render_calls",
    "render_report",
    "render_table",
    "rolling_rows",
    "run_scenario",
    "run_workflow_bench",
    "sensor_keys",
    "slot_intervals",
    "slot_intervals_by_task",
    "task_executions",
    "wall_repeat_rows",
]


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
