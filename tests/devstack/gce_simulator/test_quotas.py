"""Rate quotas per group and minute, and the concurrent operations quota, through the real client.

Each test holds the simulator's clock: the rate quota window stands still and no operation moves on its own, so
the calls of a test fall in one window and meet an operation in flight however slow the machine is.
"""

from __future__ import annotations

import math

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, Fault, Profile, SimulatorControl
from tests.fixtures.gce import GCE_PROJECT, GceClients, step_until

P = GCE_PROJECT
WP_ZONE = "us-central1-c"
WP = "wordpress-1-vm"
DONE = compute_v1.Operation.Status.DONE
WINDOW = 60.0  # seconds: Compute Engine's minute; a held clock crosses it only when advanced


def test_an_exceeded_rate_quota_answers_403_rate_limit_exceeded_with_google_body(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.set_profile(Profile.fast(rate_quota_limits={"read_requests": 2}))
    with gce_sim.clock_held():
        for _ in range(2):
            gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
        with pytest.raises(exceptions.Forbidden) as caught:
            gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
    error = caught.value.errors[0]
    assert (error["reason"], error["domain"]) == ("rateLimitExceeded", "usageLimits")
    assert error["message"].startswith("Quota exceeded for quota metric 'compute.googleapis.com/read_requests'")
    assert "of service 'compute.googleapis.com'" in error["message"]
    assert caught.value.reason == "RATE_LIMIT_EXCEEDED"


def test_the_quota_refills_at_the_next_window_boundary(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    """Windows are aligned to the clock: "the quota refills at the start of the next synchronized interval ...
    rather than refilling immediately" (quotas.py), not a minute after the first call."""
    gce_sim.set_profile(Profile.fast(rate_quota_window_seconds=WINDOW, rate_quota_limits={"list_requests": 1}))
    with gce_sim.clock_held():
        now = gce_sim.advance_clock(0)
        boundary = (math.floor(now / WINDOW) + 1) * WINDOW
        list(gce_clients.instances.list(project=P, zone=WP_ZONE))
        with pytest.raises(exceptions.Forbidden):
            list(gce_clients.instances.list(project=P, zone=WP_ZONE))
        gce_sim.advance_clock(boundary - 0.5 - now)  # half a second before the boundary: still used up
        with pytest.raises(exceptions.Forbidden):
            list(gce_clients.instances.list(project=P, zone=WP_ZONE))
        gce_sim.advance_clock(1.0)  # half a second after it
        assert [i.name for i in gce_clients.instances.list(project=P, zone=WP_ZONE)] == [WP]


def test_only_a_held_clock_is_advanced(gce_sim: ComputeSimulator) -> None:
    with pytest.raises(RuntimeError, match="not held"):
        gce_sim.advance_clock(WINDOW)
    with gce_sim.clock_held():
        gce_sim.reset()  # ends the hold, the quota window's too
        with pytest.raises(RuntimeError, match="not held"):
            gce_sim.advance_clock(WINDOW)


def test_each_group_is_counted_separately(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.set_profile(Profile.fast(rate_quota_limits={"read_requests": 1}))
    with gce_sim.clock_held():
        gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
        with pytest.raises(exceptions.Forbidden):
            gce_clients.disks.get(project=P, zone=WP_ZONE, disk=WP)  # another read: same group
        assert list(gce_clients.instances.list(project=P, zone=WP_ZONE))  # a list: its own group


def test_snapshot_writes_share_the_global_resource_write_group(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.set_profile(Profile.fast(rate_quota_limits={"global_resource_write_requests": 1}))
    source = f"projects/{P}/zones/{WP_ZONE}/disks/{WP}"
    with gce_sim.clock_held():
        with pytest.raises(exceptions.NotFound):
            gce_clients.snapshots.delete_unary(project=P, snapshot="nope")  # counted even though it fails
        with pytest.raises(exceptions.Forbidden):
            gce_clients.snapshots.insert_unary(
                project=P, snapshot_resource=compute_v1.Snapshot(name="s", source_disk=source)
            )


def test_quotas_are_per_project(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.set_profile(Profile.fast(rate_quota_limits={"read_requests": 1}))
    gce_sim.add_instance("other-project", WP_ZONE, "vm-1")
    with gce_sim.clock_held():
        gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
        assert gce_clients.instances.get(project="other-project", zone=WP_ZONE, instance="vm-1").name == "vm-1"
        with pytest.raises(exceptions.Forbidden):  # the window is the same: P's quota is used up
            gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)


def test_quota_usage_reports_the_busiest_window_per_group_and_project(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    with gce_sim.clock_held():
        for _ in range(3):
            gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
    usage = SimulatorControl(gce_sim.base_url).quota_usage()
    assert usage[P]["read_requests"] == 3


def test_a_quota_can_be_tightened_through_the_control_plane(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    SimulatorControl(gce_sim.base_url).set_rate_quota("zonal_write_requests", 1)
    with gce_sim.clock_held():
        op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)  # the window's one write
        with pytest.raises(exceptions.Forbidden):
            gce_clients.instances.start_unary(project=P, zone=WP_ZONE, instance=WP)
    assert gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name).status == DONE


def test_a_rate_limited_fault_answers_the_documented_403(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.inject(Fault.rate_limited("instances.stop"))
    with pytest.raises(exceptions.Forbidden) as caught:
        gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
    assert caught.value.errors[0]["domain"] == "usageLimits"
    assert caught.value.reason == "RATE_LIMIT_EXCEEDED"


def snapshot_status(sim: ComputeSimulator, name: str) -> str | None:
    return {s["name"]: s["status"] for s in sim.snapshots(P)}.get(name)


def test_too_many_operations_in_flight_answer_concurrent_operations_quota_exceeded(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.set_profile(Profile.fast(concurrent_operations_limit=1))
    resource = compute_v1.Snapshot(name="slow-1")
    with gce_sim.clock_held() as step:
        op = gce_clients.disks.create_snapshot_unary(project=P, zone=WP_ZONE, disk=WP, snapshot_resource=resource)
        step_until(step, lambda: snapshot_status(gce_sim, "slow-1") == "UPLOADING", "the snapshot UPLOADING")
        with pytest.raises(exceptions.Forbidden) as caught:  # the snapshot's operation is in flight until READY
            gce_clients.instances.stop_unary(project=P, zone="us-central1-a", instance="web-1")
    error = caught.value.errors[0]
    assert (error["reason"], error["domain"], error["message"]) == (
        "rateLimitExceeded",
        "usageLimits",
        "Rate Limit Exceeded",
    )
    assert caught.value.reason == "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"
    assert gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name).status == DONE
    stop = gce_clients.instances.stop_unary(project=P, zone="us-central1-a", instance="web-1")
    assert gce_clients.zone_operations.wait(project=P, zone="us-central1-a", operation=stop.name).status == DONE


def test_the_concurrent_operations_quota_counts_per_region(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    """The error's location is "global | REGION" ("Compute Engine concurrent operation quotas"): another region's
    operations do not count."""
    gce_sim.set_profile(Profile.fast(concurrent_operations_limit=1))
    gce_sim.add_instance(P, "europe-west1-b", "eu-1")
    resource = compute_v1.Snapshot(name="slow-2")
    with gce_sim.clock_held():
        op = gce_clients.disks.create_snapshot_unary(project=P, zone=WP_ZONE, disk=WP, snapshot_resource=resource)
        with pytest.raises(exceptions.Forbidden) as caught:  # us-central1 is at its limit
            gce_clients.instances.stop_unary(project=P, zone="us-central1-a", instance="web-1")
        stop = gce_clients.instances.stop_unary(project=P, zone="europe-west1-b", instance="eu-1")  # europe-west1: free
    assert caught.value.details[0]["metadata"]["location"] == "us-central1"
    assert gce_clients.zone_operations.wait(project=P, zone="europe-west1-b", operation=stop.name).status == DONE
    assert gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name).status == DONE
