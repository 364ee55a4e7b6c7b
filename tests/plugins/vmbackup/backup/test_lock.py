"""The instance lock: two runs (of one or two policies) never both hold a VM, thanks to labelFingerprint."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from vmbackup.backup.resolution import Target
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels

pytestmark = pytest.mark.airflow

PROJECT = "demo-project"
ZONE = "us-central1-c"
VM = "wordpress-1-vm"


def target(run: str) -> Target:
    return Target(project=PROJECT, zone=ZONE, instance=VM, tier=None, run=run, status="RUNNING", disks=[])


@pytest.fixture
def hook(gce_sim: Any) -> ComputeEngineHook:
    return ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.001)


def race(hook: ComputeEngineHook, runs: list[str]) -> dict[str, str]:
    from vmbackup.backup.lock import InstanceHeldError, acquire_lock

    barrier = threading.Barrier(len(runs))

    def contend(run: str) -> str:
        barrier.wait()
        try:
            acquire_lock(hook, target(run), 600)
            return "won"
        except InstanceHeldError:
            return "held"

    with ThreadPoolExecutor(len(runs)) as pool:
        return dict(zip(runs, pool.map(contend, runs), strict=True))


@pytest.mark.parametrize("round_", range(3))
def test_only_one_of_racing_runs_gets_the_lock(hook: ComputeEngineHook, gce_sim: Any, round_: int) -> None:
    outcome = race(hook, ["ralpha", "rbeta", "rgamma"])
    (winner,) = [run for run, result in outcome.items() if result == "won"]
    assert gce_sim.instance(PROJECT, ZONE, VM)["labels"][vmlabels.LOCK].startswith(winner + "-")


def test_lock_keeps_the_instances_own_labels(hook: ComputeEngineHook, gce_sim: Any) -> None:
    from vmbackup.backup.lock import acquire_lock, release_lock

    acquire_lock(hook, target("rone"), 600)
    assert release_lock(hook, target("rone")) is True
    assert gce_sim.instance(PROJECT, ZONE, VM)["labels"] == {"app": "wordpress"}


def test_a_run_cannot_release_another_runs_lock(hook: ComputeEngineHook, gce_sim: Any) -> None:
    from vmbackup.backup.lock import acquire_lock, release_lock

    acquire_lock(hook, target("rone"), 600)
    assert release_lock(hook, target("rtwo")) is False
    assert vmlabels.LOCK in gce_sim.instance(PROJECT, ZONE, VM)["labels"]
