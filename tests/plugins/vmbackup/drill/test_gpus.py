"""A drill of a GPU VM boots the drill VM with the source's GPUs (a drill proves the VM comes back as it was), and a
drill machine type that cannot have them fails at planning, naming spec.verification.machineType. The shared drill
DAG with a signed conf, dag.test() on real Airflow, the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.recovery import ZONE, RecoveryStack
from tests.plugins.vmbackup.drill.test_dag_run import KEY, VERIFICATION, drill, drill_resources
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.run_signature import SIGNING_KEY_ENV

pytestmark = pytest.mark.airflow

T4 = "nvidia-tesla-t4"


@pytest.fixture
def stack(gce_sim: Any, gce_clients: Any, gcs_bucket: Any, airflow_dags: Any, monkeypatch: Any) -> RecoveryStack:
    monkeypatch.setenv(SIGNING_KEY_ENV, KEY)
    return RecoveryStack(gce_sim, gce_clients, airflow_dags, gcs_bucket, monkeypatch)


def gpu_policy(stack: RecoveryStack, **verification: Any) -> BackupPolicy:
    """An inference VM with one T4, backed up."""
    stack.sim.add_instance(GCE_PROJECT, ZONE, "infer-1", machine_type="n1-standard-8", guest_accelerators={T4: 1})
    policy = stack.policy(
        "infer", instances=[{"name": "infer-1", "zone": ZONE}], verification={**VERIFICATION, **verification}
    )
    stack.back_up(policy)
    return policy


def test_a_drill_of_a_gpu_vm_boots_it_with_its_gpus(stack: RecoveryStack) -> None:
    policy = gpu_policy(stack)

    state, report = drill(stack, policy)

    assert state == "success"
    assert report.result == "Succeeded", report.message
    # the accepted insert (one refused while a disk was still RESTORING is retried: resourceNotReady)
    [insert] = [c for c in stack.sim.calls if c["method"] == "instances.insert" and c["status"] == 200]
    [gpu] = insert["body"]["guestAccelerators"]
    assert gpu["acceleratorType"] == f"projects/{GCE_PROJECT}/zones/{ZONE}/acceleratorTypes/{T4}"
    assert insert["body"]["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert drill_resources(stack) == []


def test_a_drill_machine_type_that_cannot_have_gpus_fails_naming_the_field(stack: RecoveryStack) -> None:
    policy = gpu_policy(stack, machineType="e2-medium")

    state, report = drill(stack, policy)

    assert state == "failed"
    assert report.failed_step == "plan"
    assert report.message.startswith("spec.verification.machineType: machine type e2-medium cannot have GPUs")
    assert drill_resources(stack) == []
