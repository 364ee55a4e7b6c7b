"""The instance lock: two runs (of one or two policies) never both hold a VM, thanks to labelFingerprint."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from vmbackup.backup.resolution import Target
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.model.identifiers import lock_holder

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
    from vmbackup.vm.lock import InstanceHeldError, acquire_lock

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
    from vmbackup.vm.lock import acquire_lock, release_lock

    acquire_lock(hook, target("rone"), 600)
    assert release_lock(hook, target("rone")) is True
    assert gce_sim.instance(PROJECT, ZONE, VM)["labels"] == {"app": "wordpress"}


def test_a_run_cannot_release_another_runs_lock(hook: ComputeEngineHook, gce_sim: Any) -> None:
    from vmbackup.vm.lock import acquire_lock, release_lock

    acquire_lock(hook, target("rone"), 600)
    assert release_lock(hook, target("rtwo")) is False
    assert vmlabels.LOCK in gce_sim.instance(PROJECT, ZONE, VM)["labels"]


def test_a_held_instance_names_the_policy_and_run_holding_it(hook: ComputeEngineHook) -> None:
    from vmbackup.vm.lock import InstanceHeldError, acquire_lock

    nightly = target("rone") | {
        "holder": lock_holder("policy", "team-a", "nightly", "scheduled__2026-01-31T02:00:00+00:00")
    }
    acquire_lock(hook, nightly, 600)  # type: ignore[arg-type]
    with pytest.raises(InstanceHeldError, match="held by policy team-a/nightly run scheduled__2026-01-31t02-00"):
        acquire_lock(hook, target("rtwo"), 600)


def test_releasing_removes_the_holder_labels_too(hook: ComputeEngineHook, gce_sim: Any) -> None:
    from vmbackup.vm.lock import acquire_lock, release_lock

    nightly = target("rone") | {"holder": lock_holder("policy", "team-a", "nightly", "manual__x")}
    acquire_lock(hook, nightly, 600)  # type: ignore[arg-type]
    assert vmlabels.LOCK_POLICY in gce_sim.instance(PROJECT, ZONE, VM)["labels"]
    release_lock(hook, nightly)  # type: ignore[arg-type]
    assert gce_sim.instance(PROJECT, ZONE, VM)["labels"] == {"app": "wordpress"}


def test_an_expired_locks_holder_labels_are_replaced_by_the_new_holders(hook: ComputeEngineHook, gce_sim: Any) -> None:
    from vmbackup.vm.lock import acquire_lock

    old = target("rold") | {"holder": lock_holder("restore", "team-b", "db-back", "manual__x")}
    acquire_lock(hook, old, -60)  # type: ignore[arg-type]  # already expired
    acquire_lock(hook, target("rnew"), 600)
    labels = gce_sim.instance(PROJECT, ZONE, VM)["labels"]
    assert labels[vmlabels.LOCK].startswith("rnew-")
    assert vmlabels.LOCK_RESTORE not in labels
    assert vmlabels.LOCK_NAMESPACE not in labels


def test_a_recorded_release_names_the_run_that_released_the_instance(hook: ComputeEngineHook, gce_sim: Any) -> None:
    from vmbackup.vm.lock import acquire_lock, release_lock, released_by_us

    acquire_lock(hook, target("rone"), 600)
    assert release_lock(hook, target("rone"), record=True) is True
    instance = hook.get_instance(PROJECT, ZONE, VM)
    assert instance.labels[vmlabels.RELEASED_BY] == "rone"
    assert released_by_us(instance, target("rone"))
    assert not released_by_us(instance, target("rtwo"))
