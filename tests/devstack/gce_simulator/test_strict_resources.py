"""Busy and RESTORING resources, purged operations, snapshot frequency and guestFlush, through the real client."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, Profile
from tests.fixtures.gce import GCE_PROJECT, GceClients, step_until, zone_operation_done
from tests.fixtures.waits import wait_until

P = GCE_PROJECT
WP_ZONE = "us-central1-c"
WP = "wordpress-1-vm"
DONE = compute_v1.Operation.Status.DONE


def snapshot(clients: GceClients, name: str, disk: str = WP, guest_flush: bool = False) -> compute_v1.Operation:
    request = compute_v1.CreateSnapshotDiskRequest(
        project=P, zone=WP_ZONE, disk=disk, snapshot_resource=compute_v1.Snapshot(name=name), guest_flush=guest_flush
    )
    return clients.disks.create_snapshot_unary(request=request)


def wait(clients: GceClients, op: compute_v1.Operation) -> compute_v1.Operation:
    return clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)


def test_a_disk_with_a_snapshot_in_flight_refuses_another_at_once(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    with gce_sim.clock_held():  # the first snapshot is in flight until the clock is released
        first = snapshot(gce_clients, "first")
        with pytest.raises(exceptions.BadRequest) as caught:
            snapshot(gce_clients, "second")
    assert caught.value.errors[0]["reason"] == "resourceNotReady"
    assert caught.value.errors[0]["message"] == f"The resource 'projects/{P}/zones/{WP_ZONE}/disks/{WP}' is not ready"
    with pytest.raises(exceptions.NotFound):
        gce_clients.snapshots.get(project=P, snapshot="second")
    assert wait(gce_clients, first).status == DONE


def test_a_disk_from_a_snapshot_is_restoring_before_ready(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    assert not wait(gce_clients, snapshot(gce_clients, "src")).error.errors
    source = gce_clients.snapshots.get(project=P, snapshot="src").self_link
    disk = compute_v1.Disk(name="restored", source_snapshot=source)
    with gce_sim.clock_held() as step:  # stopped the moment the insert is DONE: RESTORING lasts until released
        insert = gce_clients.disks.insert_unary(project=P, zone=WP_ZONE, disk_resource=disk)
        step_until(step, lambda: zone_operation_done(gce_clients, WP_ZONE, insert), "the insert DONE")
        assert wait(gce_clients, insert).status == DONE
        assert gce_clients.disks.get(project=P, zone=WP_ZONE, disk="restored").status == "RESTORING"
        with pytest.raises(exceptions.BadRequest) as caught:
            snapshot(gce_clients, "of-restoring", disk="restored")
    assert caught.value.errors[0]["reason"] == "resourceNotReady"
    wait_until(
        lambda: gce_clients.disks.get(project=P, zone=WP_ZONE, disk="restored").status == "READY",
        what="the restored disk READY",
    )


def test_a_done_operation_is_purged_after_the_retention_period(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.set_profile(Profile.fast(operation_retention_seconds=0.2))
    with gce_sim.clock_held() as step:  # stopped the moment the stop is DONE: not purged until released
        op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        step_until(step, lambda: zone_operation_done(gce_clients, WP_ZONE, op), "the stop DONE")
        assert wait(gce_clients, op).status == DONE

    def purged() -> bool:
        try:
            gce_clients.zone_operations.get(project=P, zone=WP_ZONE, operation=op.name)
        except exceptions.NotFound:
            return True
        return False

    wait_until(purged, what="the DONE operation purged")
    with pytest.raises(exceptions.NotFound):
        gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
    assert op.name in {o["name"] for o in gce_sim.operations()}  # the control plane still shows it


def test_a_second_snapshot_within_the_minimum_interval_fails_as_too_frequent(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.set_profile(Profile.fast(snapshot_min_interval_seconds=3600.0))  # nothing waits for it to pass
    assert not wait(gce_clients, snapshot(gce_clients, "s-1")).error.errors
    done = wait(gce_clients, snapshot(gce_clients, "s-2"))
    [error] = done.error.errors
    assert error.code == "RESOURCE_OPERATION_RATE_EXCEEDED"
    assert error.message.endswith("Too frequent operations from the source resource.")
    with pytest.raises(exceptions.NotFound):
        gce_clients.snapshots.get(project=P, snapshot="s-2")


def test_a_disk_takes_at_most_six_snapshots_per_rate_window(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    # The 7 snapshots (14 round trips) must fit in one window, and nothing waits for it to pass: a long one
    gce_sim.set_profile(Profile.fast(snapshot_min_interval_seconds=0.0, snapshot_rate_window_seconds=3600.0))
    codes = [[e.code for e in wait(gce_clients, snapshot(gce_clients, f"s-{i}")).error.errors] for i in range(7)]
    assert codes == [[]] * 6 + [["RESOURCE_OPERATION_RATE_EXCEEDED"]]


def test_guest_flush_fails_on_a_running_vm_without_support(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(P, WP_ZONE, "no-flush", guest_flush_supported=False)
    done = wait(gce_clients, snapshot(gce_clients, "flushed", disk="no-flush", guest_flush=True))
    assert [e.code for e in done.error.errors] == ["INVALID_USAGE"]
    with pytest.raises(exceptions.NotFound):
        gce_clients.snapshots.get(project=P, snapshot="flushed")


def test_guest_flush_succeeds_where_the_vm_supports_it(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    done = wait(gce_clients, snapshot(gce_clients, "flushed-ok", guest_flush=True))
    assert not done.error.errors
    assert gce_clients.snapshots.get(project=P, snapshot="flushed-ok").status == "READY"
