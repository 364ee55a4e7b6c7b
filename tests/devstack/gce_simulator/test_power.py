"""Power states through the real client: graceful shutdown, Local SSDs, stockouts, suspend/resume, Spot VMs."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1
from google.cloud.compute_v1 import Operation

from devstack.gce_simulator import ComputeSimulator, Profile, SimulatorControl
from tests.fixtures.gce import GCE_PROJECT, LASTING_STOCKOUT_SECONDS, GceClients, statuses_until_done

P = GCE_PROJECT
ZONE = "europe-west1-b"
DONE = compute_v1.Operation.Status.DONE


def wait(clients: GceClients, op: compute_v1.Operation) -> compute_v1.Operation:
    return clients.zone_operations.wait(project=P, zone=ZONE, operation=op.name)


def vm_statuses(sim: ComputeSimulator, clients: GceClients, start: Callable[[], Operation], name: str) -> list[str]:
    """The statuses of VM ``name`` between each timed transition of the operation ``start`` begins (clock held)."""
    _, seen = statuses_until_done(
        sim, clients, ZONE, start, lambda: clients.instances.get(project=P, zone=ZONE, instance=name).status
    )
    return seen


def test_graceful_shutdown_holds_the_vm_in_pending_stop_for_its_max_duration(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.add_instance(P, ZONE, "gs-1", graceful_shutdown_seconds=600)
    vm = gce_clients.instances.get(project=P, zone=ZONE, instance="gs-1")
    assert vm.scheduling.graceful_shutdown.enabled
    assert vm.scheduling.graceful_shutdown.max_duration.seconds == 600
    stop = partial(gce_clients.instances.stop_unary, project=P, zone=ZONE, instance="gs-1")
    seen = vm_statuses(gce_sim, gce_clients, stop, "gs-1")
    assert "PENDING_STOP" in seen
    assert seen.index("PENDING_STOP") < seen.index("STOPPING")
    assert gce_sim.instance(P, ZONE, "gs-1")["status"] == "TERMINATED"


def test_no_graceful_shutdown_skips_pending_stop(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(P, ZONE, "gs-2", graceful_shutdown_seconds=3600)
    request = compute_v1.StopInstanceRequest(project=P, zone=ZONE, instance="gs-2", no_graceful_shutdown=True)
    stop = partial(gce_clients.instances.stop_unary, request=request)
    assert "PENDING_STOP" not in vm_statuses(gce_sim, gce_clients, stop, "gs-2")
    assert gce_sim.instance(P, ZONE, "gs-2")["status"] == "TERMINATED"


def test_graceful_shutdown_defaults_to_ten_minutes_and_is_capped_at_an_hour(gce_sim: ComputeSimulator) -> None:
    gce_sim.add_instance(P, ZONE, "gs-default", graceful_shutdown_seconds=0)
    gce_sim.add_instance(P, ZONE, "gs-long", graceful_shutdown_seconds=7200)
    durations = [
        gce_sim.instance(P, ZONE, name)["scheduling"]["gracefulShutdown"]["maxDuration"]["seconds"]
        for name in ("gs-default", "gs-long")
    ]
    assert durations == ["600", "3600"]


def test_stopping_a_vm_with_a_local_ssd_needs_discard_local_ssd(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.add_instance(P, ZONE, "ssd-1", local_ssds=1)
    [scratch] = [
        d for d in gce_clients.instances.get(project=P, zone=ZONE, instance="ssd-1").disks if d.type_ == "SCRATCH"
    ]
    assert scratch.interface == "NVME"
    with pytest.raises(exceptions.BadRequest) as caught:
        gce_clients.instances.stop_unary(project=P, zone=ZONE, instance="ssd-1")
    assert caught.value.errors[0]["reason"] == "badRequest"
    assert "VM has a Local SSD attached but an undefined value for `discard-local-ssd`" in caught.value.message
    assert gce_sim.instance(P, ZONE, "ssd-1")["status"] == "RUNNING"


def test_discard_local_ssd_stops_the_vm_and_discards_the_ssd_data(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.add_instance(P, ZONE, "ssd-2", local_ssds=1)
    request = compute_v1.StopInstanceRequest(project=P, zone=ZONE, instance="ssd-2", discard_local_ssd=True)
    assert wait(gce_clients, gce_clients.instances.stop_unary(request=request)).status == DONE
    vm = gce_sim.instance(P, ZONE, "ssd-2")
    assert vm["status"] == "TERMINATED"
    assert [d.get("simulatorDataDiscarded") for d in vm["disks"] if d["type"] == "SCRATCH"] == [True]


def test_a_stockout_fails_the_start_until_it_ends(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(P, ZONE, "so-1", status="TERMINATED")
    SimulatorControl(gce_sim.base_url).stockout(ZONE, seconds=LASTING_STOCKOUT_SECONDS)
    done = wait(gce_clients, gce_clients.instances.start_unary(project=P, zone=ZONE, instance="so-1"))
    [error] = done.error.errors
    assert error.code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert error.message.startswith(f"The zone 'projects/{P}/zones/{ZONE}' does not have enough resources")
    assert gce_sim.instance(P, ZONE, "so-1")["status"] == "TERMINATED"
    gce_sim.stockout(ZONE, seconds=0)  # capacity is back
    done = wait(gce_clients, gce_clients.instances.start_unary(project=P, zone=ZONE, instance="so-1"))
    assert not done.error.errors
    assert gce_sim.instance(P, ZONE, "so-1")["status"] == "RUNNING"


def test_a_stockout_fails_instances_insert(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_disk(P, ZONE, "boot-x")
    gce_sim.stockout(ZONE, seconds=LASTING_STOCKOUT_SECONDS)
    disk = compute_v1.AttachedDisk(source=f"projects/{P}/zones/{ZONE}/disks/boot-x", boot=True)
    instance = compute_v1.Instance(name="new-1", disks=[disk])
    done = wait(gce_clients, gce_clients.instances.insert_unary(project=P, zone=ZONE, instance_resource=instance))
    assert [e.code for e in done.error.errors] == ["ZONE_RESOURCE_POOL_EXHAUSTED"]
    with pytest.raises(exceptions.NotFound):
        gce_clients.instances.get(project=P, zone=ZONE, instance="new-1")


def test_suspend_then_resume(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(P, ZONE, "sus-1")
    suspend = partial(gce_clients.instances.suspend_unary, project=P, zone=ZONE, instance="sus-1")
    assert "SUSPENDING" in vm_statuses(gce_sim, gce_clients, suspend, "sus-1")
    assert gce_sim.instance(P, ZONE, "sus-1")["status"] == "SUSPENDED"
    assert wait(gce_clients, gce_clients.instances.resume_unary(project=P, zone=ZONE, instance="sus-1")).status == DONE
    assert gce_sim.instance(P, ZONE, "sus-1")["status"] == "RUNNING"


def test_start_on_a_suspended_vm_is_refused(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(P, ZONE, "sus-2", status="SUSPENDED")
    with pytest.raises(exceptions.BadRequest) as caught:
        gce_clients.instances.start_unary(project=P, zone=ZONE, instance="sus-2")
    assert "resume" in caught.value.message
    assert gce_sim.instance(P, ZONE, "sus-2")["status"] == "SUSPENDED"


def test_suspend_with_a_local_ssd_needs_discard_local_ssd(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(P, ZONE, "sus-ssd", local_ssds=2)
    with pytest.raises(exceptions.BadRequest):
        gce_clients.instances.suspend_unary(project=P, zone=ZONE, instance="sus-ssd")


def test_stop_on_a_terminated_vm_returns_without_error(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(P, ZONE, "off-1", status="TERMINATED")
    done = wait(gce_clients, gce_clients.instances.stop_unary(project=P, zone=ZONE, instance="off-1"))
    assert done.status == DONE
    assert not done.error.errors


def test_a_spot_vm_is_preempted_by_a_system_operation(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.set_profile(Profile.fast(stop_seconds=0.2))
    gce_sim.add_instance(P, ZONE, "spot-1", provisioning_model="SPOT")
    assert gce_clients.instances.get(project=P, zone=ZONE, instance="spot-1").scheduling.provisioning_model == "SPOT"
    op = SimulatorControl(gce_sim.base_url).preempt(P, ZONE, "spot-1")
    assert op["operationType"] == "compute.instances.preempted"
    done = gce_clients.zone_operations.wait(project=P, zone=ZONE, operation=op["name"])
    assert done.status == DONE
    assert gce_sim.instance(P, ZONE, "spot-1")["status"] == "TERMINATED"


def test_only_spot_vms_can_be_preempted(gce_sim: ComputeSimulator) -> None:
    gce_sim.add_instance(P, ZONE, "std-1")
    with pytest.raises(ValueError, match="not a Spot VM"):
        gce_sim.preempt(P, ZONE, "std-1")
