"""A restore for a real disaster: the VM is gone, and it comes back in another project and region, on the network
and subnetwork the user named, from the snapshots the policy's project keeps. dag.test() on real Airflow, the
simulator (which makes a disk from another project's snapshot and refuses a subnetwork outside the zone's region,
as Compute Engine does)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.recovery import RecoveryStack

pytestmark = pytest.mark.airflow

DR_PROJECT = "dr-project"
DR_ZONE = "europe-west1-b"
DR_NIC = {"network": "dr-net", "subnetwork": "dr-subnet"}


@pytest.fixture
def lost(stack: RecoveryStack) -> Any:
    """The policy, backed up, after its VM and data disk are gone."""
    policy = stack.policy()
    stack.back_up(policy)
    stack.delete_instance("db-1")
    stack.delete_disk("db-1-data")
    return policy


def test_a_lost_vm_comes_back_in_another_project_and_region(stack: RecoveryStack, lost: Any) -> None:
    spec = {"targetProject": DR_PROJECT, "targetZone": DR_ZONE, "overrides": {"networkInterfaces": [DR_NIC]}}

    outcome, report = stack.restore(lost, "db-back", **spec)

    assert outcome.state == "success", outcome.task_states
    assert report is not None
    assert report.phase == "Succeeded"
    vm = stack.sim.instance(DR_PROJECT, DR_ZONE, "db-back")
    assert vm["status"] == "RUNNING"
    assert vm["machineType"].endswith("/machineTypes/n2-standard-4")  # as the backup recorded it
    (nic,) = vm["networkInterfaces"]
    assert nic["network"].endswith(f"projects/{DR_PROJECT}/global/networks/dr-net")
    assert nic["subnetwork"].endswith(f"projects/{DR_PROJECT}/regions/europe-west1/subnetworks/dr-subnet")
    assert "accessConfigs" not in nic  # no external IP address unless asked for


def test_the_disks_are_made_in_the_target_project_from_the_policys_snapshots(stack: RecoveryStack, lost: Any) -> None:
    spec = {"targetProject": DR_PROJECT, "targetZone": DR_ZONE, "overrides": {"networkInterfaces": [DR_NIC]}}

    stack.restore(lost, "db-back", **spec)

    for name in ("db-back", "db-back-db-1-data"):
        disk = stack.sim.disk(DR_PROJECT, DR_ZONE, name)
        assert f"/projects/{GCE_PROJECT}/global/snapshots/" in disk["sourceSnapshot"]
    assert [s["name"] for s in stack.sim.snapshots(DR_PROJECT)] == []  # nothing copied: read where they are


def test_an_external_ip_only_when_asked_for(stack: RecoveryStack, lost: Any) -> None:
    nic = {**DR_NIC, "externalIp": True}
    spec = {"targetProject": DR_PROJECT, "targetZone": DR_ZONE, "overrides": {"networkInterfaces": [nic]}}

    stack.restore(lost, "db-back", **spec)

    assert stack.sim.instance(DR_PROJECT, DR_ZONE, "db-back")["networkInterfaces"][0]["accessConfigs"][0]["natIP"]


def test_a_subnetwork_outside_the_target_zones_region_fails_before_anything_is_created(
    stack: RecoveryStack, lost: Any
) -> None:
    subnet = f"projects/{DR_PROJECT}/regions/europe-west1/subnetworks/dr-subnet"
    spec = {
        "targetProject": DR_PROJECT,
        "overrides": {"networkInterfaces": [{"network": "dr-net", "subnetwork": subnet}]},
    }

    outcome, report = stack.restore(lost, "db-back", **spec)  # no targetZone: the source's, in us-central1

    assert outcome.state == "failed"
    assert report is not None
    assert report.message is not None
    assert "spec.overrides.networkInterfaces" in report.message
    assert "us-central1" in report.message
    assert [key for key in stack.sim.world.disks if key[0] == DR_PROJECT] == []


def test_a_machine_type_the_target_zone_does_not_offer_fails_before_any_disk(stack: RecoveryStack, lost: Any) -> None:
    stack.sim.world.withdrawn_machine_types[DR_ZONE] = {"n2-standard-4"}  # the source's, as recorded
    spec = {"targetProject": DR_PROJECT, "targetZone": DR_ZONE, "overrides": {"networkInterfaces": [DR_NIC]}}

    outcome, report = stack.restore(lost, "db-back", **spec)

    assert outcome.state == "failed"
    assert report is not None
    assert (report.message or "").startswith(
        f"spec.overrides.machineType: machine type n2-standard-4 is not offered in zone {DR_ZONE}"
    )
    assert [key for key in stack.sim.world.disks if key[0] == DR_PROJECT] == []
