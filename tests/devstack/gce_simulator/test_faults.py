"""Fault injection and invariant checks of the Compute Engine simulator."""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, Fault, Profile
from tests.fixtures.gce import GCE_PROJECT, GceClients, step_until
from tests.fixtures.waits import wait_until
from vmbackup.model import labels as vm_labels

P = GCE_PROJECT
WP_ZONE = "us-central1-c"
WP = "wordpress-1-vm"
DONE = compute_v1.Operation.Status.DONE


def stop(clients: GceClients, name: str = WP, zone: str = WP_ZONE) -> compute_v1.Operation:
    op = clients.instances.stop_unary(project=P, zone=zone, instance=name)
    return clients.zone_operations.wait(project=P, zone=zone, operation=op.name)


def start(clients: GceClients, name: str = WP, zone: str = WP_ZONE) -> compute_v1.Operation:
    op = clients.instances.start_unary(project=P, zone=zone, instance=name)
    return clients.zone_operations.wait(project=P, zone=zone, operation=op.name)


def snapshot(
    clients: GceClients, name: str, disk: str = WP, zone: str = WP_ZONE, **labels: str
) -> compute_v1.Operation:
    resource = compute_v1.Snapshot(name=name, labels=labels)
    return clients.disks.create_snapshot_unary(project=P, zone=zone, disk=disk, snapshot_resource=resource)


# ----------------------------------------------------------------------------------------------- faults --
def test_rate_limit_storm_answers_403_for_n_calls_then_recovers(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.inject(Fault.rate_limited("instances.stop", times=3))
    for _ in range(3):
        with pytest.raises(exceptions.Forbidden) as caught:
            gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        assert caught.value.errors[0]["reason"] == "rateLimitExceeded"
    assert stop(gce_clients).status == DONE
    statuses = [c["status"] for c in gce_sim.calls if c["method"] == "instances.stop"]
    assert statuses == [403, 403, 403, 200]
    assert gce_sim.call_counts()["instances.stop"] == 4


def test_a_fault_can_let_the_first_calls_through(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.inject(Fault(method="instances.stop", status=403, reason="rateLimitExceeded", times=1, after=1))
    assert stop(gce_clients).status == DONE
    with pytest.raises(exceptions.Forbidden):
        gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
    assert [c["status"] for c in gce_sim.calls if c["method"] == "instances.stop"] == [200, 403]


def test_backend_error_on_reads_is_retried_by_the_client(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.inject(Fault.backend_error("instances.get", times=2))
    assert gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).status == "RUNNING"
    assert [c["status"] for c in gce_sim.calls] == [503, 503, 200]


def test_backend_error_on_a_mutation_reaches_the_caller(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.inject(Fault.backend_error("disks.createSnapshot"))
    with pytest.raises(exceptions.ServiceUnavailable) as caught:
        snapshot(gce_clients, "s1")
    assert caught.value.errors[0]["reason"] == "backendError"
    assert gce_sim.snapshots(P) == []


def test_internal_error_and_a_custom_http_error(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.inject(Fault.internal_error("instances.start"))
    with pytest.raises(exceptions.InternalServerError):
        gce_clients.instances.start_unary(project=P, zone=WP_ZONE, instance=WP)
    gce_sim.inject(
        Fault.http_error("instances.stop", 403, reason="forbidden", message="Required 'compute.instances.stop'")
    )
    with pytest.raises(exceptions.Forbidden) as caught:
        gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
    assert "compute.instances.stop" in caught.value.message


def test_fault_matches_on_the_resource_name(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.inject(Fault.rate_limited("instances.*", target="web-*", times=None))
    with pytest.raises(exceptions.Forbidden):
        gce_clients.instances.stop_unary(project=P, zone="us-central1-a", instance="web-1")
    with pytest.raises(exceptions.Forbidden):
        gce_clients.instances.stop_unary(project=P, zone="us-central1-b", instance="web-2")
    assert stop(gce_clients).status == DONE  # wordpress-1-vm is not matched
    gce_sim.clear_faults()
    assert stop(gce_clients, "web-1", "us-central1-a").status == DONE


def test_wildcard_fault_hits_every_method_including_operation_waits(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
    gce_sim.inject(Fault.rate_limited("*", times=2))
    with pytest.raises(exceptions.Forbidden):
        gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
    with pytest.raises(exceptions.Forbidden):
        gce_clients.instances.list(project=P, zone=WP_ZONE)
    assert gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name).status == DONE


def test_operation_error_leaves_the_instance_as_it_was(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.inject(Fault.operation_error("instances.stop", "QUOTA_EXCEEDED", "Quota 'CPUS' exceeded."))
    done = stop(gce_clients)
    assert done.status == DONE
    [error] = done.error.errors
    assert error.code == "QUOTA_EXCEEDED"
    assert error.message == "Quota 'CPUS' exceeded."
    assert done.http_error_status_code == 403
    assert gce_sim.instance(P, WP_ZONE, WP)["status"] == "RUNNING"
    assert not stop(gce_clients).error.errors  # times=1: the next stop works


def test_operation_error_on_create_snapshot_fails_the_snapshot(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.inject(Fault.operation_error("disks.createSnapshot", "RESOURCE_OPERATION_RATE_EXCEEDED", "Too frequent."))
    op = snapshot(gce_clients, "s-failed")
    done = gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
    assert done.error.errors[0].code == "RESOURCE_OPERATION_RATE_EXCEEDED"
    assert gce_clients.snapshots.get(project=P, snapshot="s-failed").status == "FAILED"


def test_slow_fault_lengthens_the_operation(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.inject(Fault.slow("instances.stop", 2.0))
    began = time.monotonic()
    with gce_sim.clock_held() as step:  # the stop runs (STOPPING) from a step; its slow part then needs the clock
        op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        step_until(
            step,
            lambda: gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).status == "STOPPING",
            "the VM stopping",
        )
    gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
    assert time.monotonic() - began >= 2.0
    assert gce_sim.instance(P, WP_ZONE, WP)["status"] == "TERMINATED"


def test_slow_fault_on_a_read_delays_the_response(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.inject(Fault.slow("instances.get", 0.3))
    began = time.monotonic()
    gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
    assert time.monotonic() - began >= 0.3


def test_wait_returns_at_the_cap_while_the_operation_still_runs(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.set_profile(Profile.fast(wait_cap=0.2))
    with gce_sim.clock_held() as step:  # the stop runs until the clock is released
        op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        assert step()  # PENDING -> RUNNING
        began = time.monotonic()
        first = gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
        assert time.monotonic() - began >= 0.15
        assert first.status == compute_v1.Operation.Status.RUNNING  # returned at the cap, the stop still running
    wait_until(
        lambda: gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name).status == DONE,
        what="the stop DONE, one capped wait after another",
    )


def test_unknown_operation_is_404(gce_clients: GceClients) -> None:
    with pytest.raises(exceptions.NotFound):
        gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation="operation-nope")
    with pytest.raises(exceptions.NotFound):
        gce_clients.global_operations.get(project=P, operation="operation-nope")


# ------------------------------------------------------------------------------------------- invariants --
def test_consistent_backup_done_right_flags_nothing(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    stop(gce_clients)
    op = snapshot(
        gce_clients, "ok-1", **{vm_labels.CONSISTENCY: vm_labels.consistency_value("stop"), vm_labels.RUN: "r1"}
    )
    wait_until(
        lambda: gce_clients.snapshots.get(project=P, snapshot="ok-1").status != "CREATING",
        what="the snapshot past CREATING",
    )
    start(gce_clients)  # UPLOADING or later: the disk may be written again
    gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
    assert gce_sim.check_left_stopped() == []
    assert gce_sim.violations == []


def test_snapshot_of_a_running_vm_with_consistency_stop_is_flagged(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    snapshot(gce_clients, "bad-1", **{vm_labels.CONSISTENCY: "stop"})
    assert gce_sim.wait_idle(timeout=600)  # the disk refuses a second snapshot while the first is in flight
    snapshot(gce_clients, "fine-1", **{vm_labels.CONSISTENCY: "none"})  # crash-consistent by choice: no flag
    [violation] = gce_sim.violations
    assert violation["kind"] == "snapshot-of-running-disk"
    assert violation["instance"] == WP
    assert violation["instance_status"] == "RUNNING"
    assert violation["snapshot"] == "bad-1"


def test_snapshot_while_the_vm_is_still_stopping_is_flagged(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.set_profile(Profile.fast(stop_seconds=3600))  # nothing waits for the stop: a long window costs nothing
    gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
    wait_until(lambda: gce_sim.instance(P, WP_ZONE, WP)["status"] == "STOPPING", what="the VM stopping")
    snapshot(gce_clients, "early", **{vm_labels.CONSISTENCY: "stop"})
    assert [v["instance_status"] for v in gce_sim.violations] == ["STOPPING"]


def test_restart_while_the_snapshot_is_still_creating_is_flagged(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.set_profile(Profile.fast(snapshot_creating_seconds=3600))  # nothing waits for the snapshot: a wide window
    stop(gce_clients)
    snapshot(gce_clients, "creating", **{vm_labels.CONSISTENCY: "stop"})
    start(gce_clients)
    assert [v["kind"] for v in gce_sim.violations] == ["start-during-snapshot-creating"]


def test_vm_left_stopped_is_flagged_on_demand(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    with gce_sim.clock_held():  # the stop is in flight until the clock is released
        op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        assert gce_sim.check_left_stopped() == []  # an operation is in flight: not (yet) a violation
    gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
    [violation] = gce_sim.check_left_stopped()
    assert violation["kind"] == "left-in-wrong-state"
    assert violation["instance"] == WP
    assert violation["status"] == "TERMINATED"
    assert violation["baseline_status"] == "RUNNING"
    assert gce_sim.violations == [violation]


def test_a_vm_seeded_stopped_must_be_left_stopped(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(P, "us-central1-f", "batch-1", status="TERMINATED")
    assert gce_sim.check_left_stopped() == []
    start(gce_clients, "batch-1", "us-central1-f")
    assert [v["instance"] for v in gce_sim.check_left_stopped()] == ["batch-1"]


def test_duplicate_snapshot_for_the_same_run_and_disk_is_flagged(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    run = {vm_labels.RUN: "run-abc"}
    gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=snapshot(gce_clients, "d-1", **run).name)
    snapshot(gce_clients, "d-1-other", disk="db-1", zone="us-central1-a", **run)  # another disk: fine
    assert gce_sim.violations == []
    snapshot(gce_clients, "d-2", **run)
    [violation] = gce_sim.violations
    assert violation["kind"] == "duplicate-snapshot"
    assert violation["snapshot"] == "d-2"
    assert violation["duplicate_of"] == "d-1"
