"""The named fault presets (presets.py), each through the real client; the control plane and the CLI select them."""

from __future__ import annotations

import signal
import subprocess
import sys
from functools import partial

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, SimulatorControl, compute_client
from tests.fixtures.gce import (
    GCE_PROJECT,
    LASTING_STOCKOUT_SECONDS,
    GceClients,
    statuses_until_done,
    step_until,
    zone_operation_done,
)
from tests.fixtures.tools import REPO_ROOT
from tests.fixtures.waits import wait_until

P = GCE_PROJECT
WP_ZONE = "us-central1-c"
WP = "wordpress-1-vm"
VM = {"project": P, "zone": WP_ZONE, "instance": WP}
DONE = compute_v1.Operation.Status.DONE


def stop(clients: GceClients, **flags: bool) -> compute_v1.Operation:
    request = compute_v1.StopInstanceRequest(project=P, zone=WP_ZONE, instance=WP, **flags)
    return clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=clients.instances.stop_unary(request).name)


def test_rate_quota_403_once(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("rate_quota_403_once", method="instances.get")
    with pytest.raises(exceptions.Forbidden) as caught:
        gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
    assert caught.value.errors[0]["reason"] == "rateLimitExceeded"
    assert gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).name == WP


def test_tight_write_quota(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("tight_write_quota", per_minute=1)
    with gce_sim.clock_held():  # one quota window for the whole test
        op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        with pytest.raises(exceptions.Forbidden):
            gce_clients.instances.start_unary(project=P, zone=WP_ZONE, instance=WP)
    assert gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name).status == DONE


def test_tight_read_quota(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("tight_read_quota", per_minute=1)
    with gce_sim.clock_held():  # one quota window for the whole test
        gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
        with pytest.raises(exceptions.Forbidden):
            gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)


def test_stockout(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("stockout", minutes=LASTING_STOCKOUT_SECONDS / 60, zone=WP_ZONE)
    assert stop(gce_clients).status == DONE
    op = gce_clients.instances.start_unary(project=P, zone=WP_ZONE, instance=WP)
    done = gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
    assert [e.code for e in done.error.errors] == ["ZONE_RESOURCE_POOL_EXHAUSTED"]


def test_graceful_shutdown(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("graceful_shutdown", seconds=900)
    vm = gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
    assert vm.scheduling.graceful_shutdown.max_duration.seconds == 900
    stop = partial(gce_clients.instances.stop_unary, **VM)
    _, seen = statuses_until_done(gce_sim, gce_clients, WP_ZONE, stop, lambda: gce_clients.instances.get(**VM).status)
    assert "PENDING_STOP" in seen
    assert seen.index("PENDING_STOP") < seen.index("STOPPING")
    assert seen[-1] == "TERMINATED"


def test_local_ssd(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("local_ssd")
    with pytest.raises(exceptions.BadRequest):
        gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
    assert stop(gce_clients, discard_local_ssd=True).status == DONE


def test_no_guest_flush(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("no_guest_flush")
    request = compute_v1.CreateSnapshotDiskRequest(
        project=P, zone=WP_ZONE, disk=WP, snapshot_resource=compute_v1.Snapshot(name="gf"), guest_flush=True
    )
    op = gce_clients.disks.create_snapshot_unary(request=request)
    done = gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
    assert [e.code for e in done.error.errors] == ["INVALID_USAGE"]


def test_spot_vms(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("spot_vms")
    op = gce_sim.preempt(P, WP_ZONE, WP)
    gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op["name"])
    assert gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).status == "TERMINATED"


def test_purged_operations(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("purged_operations", retention_seconds=0.01)
    op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)

    def purged() -> bool:
        with gce_sim.world.cond:
            return not gce_sim.world.operations

    wait_until(purged, what="the stop's operation purged")
    with pytest.raises(exceptions.NotFound):
        gce_clients.zone_operations.get(project=P, zone=WP_ZONE, operation=op.name)


def test_busy_resources(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.apply_preset("busy_resources", extra_seconds=600.0)  # the stop is in flight for as long as the test
    op = gce_clients.instances.stop_unary(**VM)
    with pytest.raises(exceptions.BadRequest) as caught:
        gce_clients.instances.start_unary(**VM)
    assert caught.value.errors[0]["reason"] == "resourceNotReady"
    with gce_sim.clock_held() as step:  # the stop's 600 s end now, step by step
        assert not zone_operation_done(gce_clients, WP_ZONE, op)
        step_until(step, lambda: zone_operation_done(gce_clients, WP_ZONE, op), "the stop DONE")


def test_presets_are_listed_and_applied_through_the_control_plane(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    control = SimulatorControl(gce_sim.base_url)
    assert "tight_write_quota" in control.presets()
    control.apply_preset("local_ssd", count=2)
    disks = gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).disks
    assert [d.device_name for d in disks if d.type_ == "SCRATCH"] == ["local-ssd-0", "local-ssd-1"]


def test_the_cli_applies_a_preset_after_seeding() -> None:
    command = [sys.executable, "-m", "devstack.gce_simulator", "--seed", "classic", "--project", P]
    process = subprocess.Popen(
        [*command, "--preset", "local_ssd"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        instances = compute_client(compute_v1.InstancesClient, url)
        with pytest.raises(exceptions.BadRequest):
            instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
