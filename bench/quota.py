"""The rate-quota benchmark: a fleet of one project backed up under Compute Engine's per-minute quotas, scaled to bind.

`python -m bench quota`: the simulator enforces its documented rate quotas (devstack/gce_simulator/quotas.py) with
a scaled window (`--window`, seconds standing for Google's minute) and low limits, so the fleet's calls need several
windows; the down window (backup/down_window.py, the product's code) backs the VMs up from `--processes` hooks
standing for a Composer environment's processes (the triggerer, workers), each with its own rate budget and all
sharing one bucket ledger on gcp-storage-emulator (compute/rate_budget.py). No Airflow: this measures the Compute
Engine side of a fleet, what the quotas limit.

Figures: failed VMs (a window's error), VMs left stopped (the simulator's check), 403s the simulator answered, the
highest calls admitted in one window per quota group (the simulator's count) against its budget, and the wall time
against the quota floor: for each group, the calls it needed divided by its budget per window, times the window.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devstack.gce_simulator import ComputeSimulator, Profile
from vmbackup.backup.down_window import FULL, run_window
from vmbackup.backup.resolution import resolve_targets
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.compute.rate_budget import BucketLedger, RateBudget, group_of
from vmbackup.model.policy import parse_policy
from vmbackup.settings import AirflowSettings

PROJECT = "quota-project"
ZONE = "us-central1-a"
BUCKET = "quota-composer-bucket"
# The simulator's quota per window, and our budget: equal, as a project whose quota only we use
QUOTAS = {"zonal_write_requests": 60, "read_requests": 120, "operation_read_requests": 120, "list_requests": 120}


@dataclass(frozen=True)
class QuotaBenchConfig:
    vms: int = 200
    window: float = 2.0  # seconds standing for Google's minute
    processes: int = 2
    # VMs in flight: VMBACKUP_MAX_VMS_IN_FLIGHT_PER_PROJECT (20) per process; the bench's hooks share one process
    # and so one cap, set to what two processes would have
    project_limit: int = 40
    quotas: dict[str, int] = field(default_factory=lambda: dict(QUOTAS))


@dataclass
class QuotaResult:
    vms: int
    failed: int
    left_stopped: int
    refused_403: int
    wall_seconds: float
    floor_seconds: float
    calls_by_group: dict[str, int]
    peak_by_group: dict[str, int]
    budgets: dict[str, int]

    def table(self) -> str:
        rows = [
            "| quota group | calls | budget a window | highest calls in one window (simulator) |",
            "|---|---|---|---|",
        ]
        for group in sorted(self.calls_by_group):
            budget = self.budgets.get(group, "-")
            rows.append(f"| {group} | {self.calls_by_group[group]} | {budget} | {self.peak_by_group.get(group, 0)} |")
        summary = (
            f"{self.vms} VMs: {self.failed} failed, {self.left_stopped} left stopped, {self.refused_403} calls refused"
            f" (403); wall {self.wall_seconds:.1f}s against a quota floor of {self.floor_seconds:.1f}s"
            f" ({self.wall_seconds / max(self.floor_seconds, 1e-9):.2f}x)"
        )
        return "\n".join([summary, *rows])


def quota_floor(calls_by_group: dict[str, int], budgets: dict[str, int], window: float) -> float:
    """The least wall time the quotas allow: the busiest group's calls over its budget, in windows."""
    return max((math.ceil(n / budgets[g]) - 1) * window for g, n in calls_by_group.items() if g in budgets)


def run(cfg: QuotaBenchConfig) -> QuotaResult:
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from devstack.airflow_local import free_port

    port = free_port()
    store = create_server("127.0.0.1", port, in_memory=True)
    store.start()
    # Operations are kept an hour at least (docs/benchmarks.md, "Rate quotas"): a scaled hour, 60 windows, as the quotas
    profile = Profile.fast(
        rate_quota_window_seconds=cfg.window,
        rate_quota_limits=dict(cfg.quotas),
        operation_retention_seconds=60 * cfg.window,
    )
    sim = ComputeSimulator(profile)
    sim.start()
    try:
        client = storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
        )
        bucket = client.create_bucket(BUCKET)
        return _backup_fleet(cfg, sim, bucket)
    finally:
        sim.stop()
        store.stop()


def _backup_fleet(cfg: QuotaBenchConfig, sim: ComputeSimulator, bucket: Any) -> QuotaResult:
    names = [f"vm-{i:04d}" for i in range(cfg.vms)]
    for name in names:
        sim.add_instance(PROJECT, ZONE, name, disks=[{"name": name, "size_gb": 10}])
    settings = AirflowSettings(quota_window_seconds=cfg.window, quota_deadline_seconds=30 * cfg.window)
    hooks = [
        ComputeEngineHook(
            endpoint=sim.base_url,
            settings=settings,
            budget=RateBudget(BucketLedger(bucket, process_id=f"p{i}"), dict(cfg.quotas), cfg.window),
        )
        for i in range(cfg.processes)
    ]
    policy = parse_policy(
        "bench", "quota", {"project": PROJECT, "instances": [{"name": n, "zone": ZONE} for n in names]}
    )
    sim.clear_calls()
    started = time.monotonic()
    targets = resolve_targets(policy, "manual__quota", hooks[0])["groups"]["instances"]
    shares = [targets[i :: cfg.processes] for i in range(cfg.processes)]

    def process(i: int) -> list[Any]:
        return list(
            run_window(
                hooks[i],
                policy,
                shares[i],
                None,
                FULL,
                max_unavailable=len(shares[i]),
                project_limit=cfg.project_limit,
                poll_seconds=0.2,
                lock_ttl_seconds=600,
            )
        )

    with ThreadPoolExecutor(cfg.processes) as pool:
        windows = [w for share in pool.map(process, range(cfg.processes)) for w in share]
    wall = time.monotonic() - started
    sim.wait_idle()
    calls = sim.calls
    by_group = Counter(group_of(str(c["method"])) for c in calls if c["status"] != 403)
    return QuotaResult(
        vms=cfg.vms,
        failed=sum(1 for w in windows if w.get("error")),
        left_stopped=len(sim.check_left_stopped()),
        refused_403=sum(1 for c in calls if c["status"] == 403),
        wall_seconds=wall,
        floor_seconds=quota_floor(dict(by_group), dict(cfg.quotas), cfg.window),
        calls_by_group=dict(sorted(by_group.items())),
        peak_by_group=sim.quota_usage().get(PROJECT, {}),
        budgets=dict(cfg.quotas),
    )


def parse_args(argv: Sequence[str]) -> tuple[QuotaBenchConfig, int, Path | None]:
    parser = argparse.ArgumentParser(prog="python -m bench quota", description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument("--window", type=float, default=2.0, help="seconds standing for Google's minute (default 2)")
    parser.add_argument("--processes", type=int, default=2, help="hooks sharing the bucket ledger (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs, for the spread (default 3)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(list(argv))
    if args.vms < 1 or args.window <= 0 or args.processes < 1:
        parser.error("--vms and --processes must be at least 1, --window positive")
    return QuotaBenchConfig(vms=args.vms, window=args.window, processes=args.processes), args.repeat, args.json


def main(argv: Sequence[str]) -> int:
    cfg, repeat, json_path = parse_args(argv)
    results = []
    for i in range(repeat):
        result = run(cfg)
        results.append(result)
        print(f"run {i + 1}:\n{result.table()}\n", flush=True)
    if json_path:
        json_path.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    ok = all(r.failed == 0 and r.left_stopped == 0 for r in results)
    return 0 if ok else 1
