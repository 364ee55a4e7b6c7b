"""A GPU VM (an ML inference VM: N1 with a T4) restored by the restore DAG comes back with its GPUs, named in its own
zone, set to stop for host maintenance; a restore that could not give it its GPUs fails at planning, before any
disk is made, naming the field. dag.test() on real Airflow, the simulator (which refuses GPUs a zone does not
offer, and GPUs on a VM that would live-migrate, as Compute Engine does)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.recovery import ZONE, RecoveryStack
from vmbackup.model.policy import BackupPolicy

pytestmark = pytest.mark.airflow

T4 = "nvidia-tesla-t4"
DR_PROJECT = "dr-project"
DR_ZONE = "europe-west4-a"
DR_NIC = {"network": "dr-net", "subnetwork": "dr-subnet"}


@pytest.fixture
def lost(stack: RecoveryStack) -> BackupPolicy:
    """An inference VM with one T4 and a models disk, backed up; then the VM and its models disk are gone."""
    disks = [{"name": "infer-1", "size_gb": 20}, {"name": "infer-1-models", "size_gb": 50, "device_name": "models"}]
    stack.sim.add_instance(
        GCE_PROJECT, ZONE, "infer-1", machine_type="n1-standard-8", disks=disks, guest_accelerators={T4: 1}
    )
    policy = stack.policy("infer", instances=[{"name": "infer-1", "zone": ZONE}])
    stack.back_up(policy)
    stack.delete_instance("infer-1")
    stack.delete_disk("infer-1-models")
    return policy


def gpus(vm: dict[str, Any]) -> list[tuple[str, int]]:
    return [(g["acceleratorType"], g["acceleratorCount"]) for g in vm.get("guestAccelerators", [])]


def test_a_lost_gpu_vm_comes_back_with_its_gpus(stack: RecoveryStack, lost: BackupPolicy) -> None:
    outcome, report = stack.restore(lost, "infer-back")

    assert outcome.state == "success", outcome.task_states
    assert report is not None
    assert report.phase == "Succeeded"
    vm = stack.sim.instance(GCE_PROJECT, ZONE, "infer-back")
    assert vm["status"] == "RUNNING"
    assert [(t.rsplit("/", 1)[-1], n) for t, n in gpus(vm)] == [(T4, 1)]  # from the backup record
    assert vm["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_a_gpu_vm_restored_into_another_project_and_zone_names_its_gpu_there(
    stack: RecoveryStack, lost: BackupPolicy
) -> None:
    spec = {"targetProject": DR_PROJECT, "targetZone": DR_ZONE, "overrides": {"networkInterfaces": [DR_NIC]}}

    outcome, _ = stack.restore(lost, "infer-dr", **spec)

    assert outcome.state == "success", outcome.task_states
    vm = stack.sim.instance(DR_PROJECT, DR_ZONE, "infer-dr")
    ((gpu_type, count),) = gpus(vm)
    assert gpu_type.endswith(f"/projects/{DR_PROJECT}/zones/{DR_ZONE}/acceleratorTypes/{T4}")
    assert count == 1


def test_a_target_zone_without_the_gpu_fails_before_any_disk(stack: RecoveryStack, lost: BackupPolicy) -> None:
    stack.sim.world.withdrawn_accelerator_types[DR_ZONE] = {T4}
    spec = {"targetProject": DR_PROJECT, "targetZone": DR_ZONE, "overrides": {"networkInterfaces": [DR_NIC]}}

    outcome, report = stack.restore(lost, "infer-dr", **spec)

    assert outcome.state == "failed"
    assert report is not None
    assert (report.message or "").startswith(
        f"spec.targetZone: zone {DR_ZONE} (project {DR_PROJECT}) does not offer GPU {T4}"
    )
    assert f"gcloud compute accelerator-types list --filter=name={T4}" in (report.message or "")
    assert [key for key in stack.sim.world.disks if key[0] == DR_PROJECT] == []


def test_a_machine_type_that_cannot_have_gpus_fails_before_any_disk(stack: RecoveryStack, lost: BackupPolicy) -> None:
    outcome, report = stack.restore(lost, "infer-back", overrides={"machineType": "n2-standard-8"})

    assert outcome.state == "failed"
    assert report is not None
    assert (report.message or "").startswith("spec.overrides.machineType: machine type n2-standard-8 cannot have GPUs")
    assert [key[2] for key in stack.sim.world.disks if key[2].startswith("infer-back")] == []
