"""The simulator's control plane, CLI, concurrency, restore calls and profiles."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, Fault, Profile, SimulatorControl, compute_client
from tests.fixtures.gce import GCE_PROJECT, GceClients, step_until, zone_operation_done
from tests.fixtures.tools import REPO_ROOT
from tests.fixtures.waits import wait_until

P = GCE_PROJECT
WP_ZONE = "us-central1-c"
WP = "wordpress-1-vm"
DONE = compute_v1.Operation.Status.DONE


def test_control_plane_from_another_thread_mirrors_the_simulator(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    control = SimulatorControl(gce_sim.base_url)
    results: dict[str, object] = {}

    def drive() -> None:
        control.reset()
        control.add_instance(
            P, "europe-west1-b", "eu-1", labels={"app": "eu"}, disks=["eu-1", {"name": "eu-1-data", "size_gb": 50}]
        )
        control.add_disk(P, "europe-west1-b", "spare", size_gb=30)
        control.inject(Fault.rate_limited("instances.stop", times=1))
        results["faults"] = control.faults
        results["profile"] = control.profile

    worker = threading.Thread(target=drive, daemon=True)
    worker.start()
    wait_until(lambda: not worker.is_alive(), what="the control-plane calls of the other thread")
    assert results["profile"] == Profile.fast()
    [fault] = results["faults"]  # type: ignore[misc]
    assert fault.status == 403
    assert fault.id

    with pytest.raises(exceptions.Forbidden):
        gce_clients.instances.stop_unary(project=P, zone="europe-west1-b", instance="eu-1")
    op = gce_clients.instances.stop_unary(project=P, zone="europe-west1-b", instance="eu-1")
    gce_clients.zone_operations.wait(project=P, zone="europe-west1-b", operation=op.name)

    assert control.instance(P, "europe-west1-b", "eu-1")["status"] == "TERMINATED"
    assert control.disk(P, "europe-west1-b", "eu-1-data")["sizeGb"] == "50"
    assert control.disk(P, "europe-west1-b", "spare")["users"] == []
    assert control.call_counts() == gce_sim.call_counts() == {"instances.stop": 2, "zoneOperations.wait": 1}
    assert [c["status"] for c in control.calls] == [403, 200, 200]
    [violation] = control.check_left_stopped()
    assert violation["instance"] == "eu-1"
    assert control.violations == gce_sim.violations
    assert control.wait_idle(5)
    assert control.snapshots(P) == []
    control.clear_faults()
    assert gce_sim.faults == []
    control.clear_calls()
    assert gce_sim.calls == []
    control.set_profile(Profile.realistic(time_scale=0.01))
    assert gce_sim.profile.name == "realistic"
    assert gce_sim.profile.time_scale == 0.01
    control.seed_classic(P)  # the classic VMs next to eu-1
    assert gce_sim.instance(P, WP_ZONE, WP)["status"] == "RUNNING"


def test_control_plane_from_another_process(gce_sim: ComputeSimulator) -> None:
    script = textwrap.dedent(
        f"""
        from devstack.gce_simulator import Fault, SimulatorControl
        control = SimulatorControl({gce_sim.base_url!r})
        control.inject(Fault.operation_error("instances.stop", "ZONE_RESOURCE_POOL_EXHAUSTED", "no capacity"))
        control.add_instance("{P}", "asia-east1-a", "from-subprocess")
        print(control.instance("{P}", "asia-east1-a", "from-subprocess")["status"])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "RUNNING"
    assert gce_sim.faults[0].error_code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert gce_sim.instance(P, "asia-east1-a", "from-subprocess")["name"] == "from-subprocess"


def test_control_plane_rejects_bad_input(gce_sim: ComputeSimulator) -> None:
    from devstack.gce_simulator import SimulatorControlError

    control = SimulatorControl(gce_sim.base_url)
    with pytest.raises(SimulatorControlError, match="404"):
        control.instance(P, WP_ZONE, "missing")
    with pytest.raises(SimulatorControlError, match="400"):
        control.add_instance(P, WP_ZONE, WP)  # already exists


def test_cli_prints_its_url_first_and_serves_until_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.gce_simulator",
            "--port",
            "0",
            "--profile",
            "realistic",
            "--time-scale",
            "0.01",
            "--seed",
            "classic",
            "--project",
            P,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        control = SimulatorControl(url)
        assert control.profile.name == "realistic"
        assert control.profile.time_scale == 0.01
        clients = compute_client(compute_v1.InstancesClient, url)
        assert clients.get(project=P, zone=WP_ZONE, instance=WP).status == "RUNNING"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)  # a failure bound: a loaded machine may take long to let it exit
    assert process.returncode == 0


def test_blocked_waits_counts_the_long_polls_parked_right_now(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    results: list[compute_v1.Operation] = []

    def wait(op_name: str) -> None:
        client = compute_client(compute_v1.ZoneOperationsClient, gce_sim.base_url)
        results.append(client.wait(project=P, zone=WP_ZONE, operation=op_name))

    with gce_sim.clock_held() as step:
        op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        assert gce_sim.blocked_waits() == 0
        waiter = threading.Thread(target=wait, args=(op.name,), daemon=True)
        waiter.start()
        wait_until(lambda: gce_sim.blocked_waits() == 1, what="the wait parked")
        step_until(step, lambda: zone_operation_done(gce_clients, WP_ZONE, op), "the stop DONE")
    wait_until(lambda: not waiter.is_alive(), what="the wait answered")
    assert [r.status for r in results] == [DONE]
    assert gce_sim.blocked_waits() == 0
    gce_sim.set_profile(Profile.fast(wait_cap=0.2))
    with gce_sim.clock_held():  # a wait that returns at its cap is no longer counted either
        op = gce_clients.instances.start_unary(project=P, zone=WP_ZONE, instance=WP)
        assert gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name).status != DONE
        assert gce_sim.blocked_waits() == 0


def test_many_concurrent_long_polls_are_served(gce_sim: ComputeSimulator) -> None:
    gce_sim.set_profile(Profile.fast(wait_cap=500.0))  # no wait returns at its cap while the others are started
    zone = "us-east1-b"
    names = [f"vm-{i}" for i in range(40)]
    for name in names:
        gce_sim.add_instance(P, zone, name)
    instances = compute_client(compute_v1.InstancesClient, gce_sim.base_url)
    results: list[compute_v1.Operation] = []
    lock = threading.Lock()

    def wait(op_name: str) -> None:
        client = compute_client(compute_v1.ZoneOperationsClient, gce_sim.base_url)
        result = client.wait(project=P, zone=zone, operation=op_name)
        with lock:
            results.append(result)

    with gce_sim.clock_held():  # no stop ends before every waiter is parked
        ops = [instances.stop_unary(project=P, zone=zone, instance=name) for name in names]
        threads = [threading.Thread(target=wait, args=(op.name,), daemon=True) for op in ops]
        for thread in threads:
            thread.start()
        # they wait side by side, not one after the other
        wait_until(lambda: gce_sim.blocked_waits() == len(names), what="every wait parked at once")
    wait_until(lambda: not any(thread.is_alive() for thread in threads), what="every wait answered")
    assert len(results) == len(names)
    assert all(r.status == DONE for r in results)
    assert {gce_sim.instance(P, zone, n)["status"] for n in names} == {"TERMINATED"}


def test_realistic_profile_scaled_down_keeps_its_ratios(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    scale = 0.004
    gce_sim.set_profile(Profile.realistic(time_scale=scale, api_latency=0.0))
    began = time.monotonic()
    op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
    gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name)
    elapsed = time.monotonic() - began
    expected = (Profile.realistic().stop_seconds + Profile.realistic().operation_pending_seconds) * scale
    assert elapsed >= expected * 0.9  # no upper bound: a loaded machine only ever makes it slower


def test_realistic_upload_time_scales_with_disk_size() -> None:
    profile = Profile.realistic()
    assert profile.snapshot_upload_seconds(200, first=True) > 5 * profile.snapshot_upload_seconds(10, first=True)
    assert profile.snapshot_upload_seconds(200, first=False) < profile.snapshot_upload_seconds(200, first=True)
    assert Profile.realistic(time_scale=0.01).scaled(100.0) == pytest.approx(1.0)


def test_restore_a_disk_from_a_snapshot_and_a_vm_from_disks(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    zone = "us-central1-a"
    with gce_sim.clock_held():  # the snapshot is not READY until the clock is released
        snap_op = gce_clients.disks.create_snapshot_unary(
            project=P, zone=zone, disk="db-1-data", snapshot_resource=compute_v1.Snapshot(name="db-data-snap")
        )
        with pytest.raises(exceptions.BadRequest):  # not READY yet
            gce_clients.disks.insert_unary(
                project=P,
                zone=zone,
                disk_resource=compute_v1.Disk(name="too-early", source_snapshot="global/snapshots/db-data-snap"),
            )
    gce_clients.zone_operations.wait(project=P, zone=zone, operation=snap_op.name)

    disk_op = gce_clients.disks.insert_unary(
        project=P,
        zone=zone,
        disk_resource=compute_v1.Disk(
            name="db-1-data-restored", source_snapshot=f"projects/{P}/global/snapshots/db-data-snap"
        ),
    )
    assert disk_op.operation_type == "insert"
    gce_clients.zone_operations.wait(project=P, zone=zone, operation=disk_op.name)
    seen: set[str] = set()  # RESTORING a little after the insert is DONE, then READY

    def restored_when_ready() -> compute_v1.Disk | None:
        disk = gce_clients.disks.get(project=P, zone=zone, disk="db-1-data-restored")
        seen.add(disk.status)
        return disk if disk.status == "READY" else None

    restored = wait_until(restored_when_ready, what="the restored disk READY")
    assert seen <= {"RESTORING", "READY"}
    assert restored.size_gb == 100
    assert restored.source_snapshot.endswith("/global/snapshots/db-data-snap")

    # an attached disk cannot be used for a new VM
    busy = compute_v1.Instance(
        name="db-1-clone",
        machine_type=f"zones/{zone}/machineTypes/n2-standard-4",
        disks=[compute_v1.AttachedDisk(source=f"projects/{P}/zones/{zone}/disks/db-1", boot=True)],
    )
    with pytest.raises(exceptions.BadRequest):
        gce_clients.instances.insert_unary(project=P, zone=zone, instance_resource=busy)

    boot_snap = gce_clients.disks.create_snapshot_unary(
        project=P, zone=zone, disk="db-1", snapshot_resource=compute_v1.Snapshot(name="db-boot-snap")
    )
    gce_clients.zone_operations.wait(project=P, zone=zone, operation=boot_snap.name)
    vm = compute_v1.Instance(
        name="db-1-restored",
        machine_type=f"zones/{zone}/machineTypes/n2-standard-4",
        labels={"app": "shop"},
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_snapshot="global/snapshots/db-boot-snap"
                ),
            ),
            compute_v1.AttachedDisk(source=restored.self_link, device_name="data"),
        ],
    )
    with gce_sim.clock_held():  # PROVISIONING until the clock is released
        insert = gce_clients.instances.insert_unary(project=P, zone=zone, instance_resource=vm)
        assert gce_sim.instance(P, zone, "db-1-restored")["status"] == "PROVISIONING"
    gce_clients.zone_operations.wait(project=P, zone=zone, operation=insert.name)
    created = gce_clients.instances.get(project=P, zone=zone, instance="db-1-restored")
    assert created.status == "RUNNING"
    assert created.machine_type.endswith("/machineTypes/n2-standard-4")
    assert [d.device_name for d in created.disks][1] == "data"
    assert gce_clients.disks.get(project=P, zone=zone, disk="db-1-data-restored").users == [created.self_link]
    with pytest.raises(exceptions.Conflict):
        gce_clients.instances.insert_unary(project=P, zone=zone, instance_resource=vm)
    assert gce_sim.check_left_stopped() == []


def test_reset_clears_everything(gce_sim: ComputeSimulator) -> None:
    gce_sim.inject(Fault.backend_error("*"))
    gce_sim.reset()
    assert gce_sim.faults == []
    assert gce_sim.calls == []
    assert gce_sim.violations == []
    assert gce_sim.snapshots(P) == []
    control = SimulatorControl(gce_sim.base_url)
    assert control.health()["ok"] is True


def test_a_held_clock_moves_only_when_stepped(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.set_profile(Profile.fast(wait_cap=0.5))  # operations.wait returns what it has after 0.5 s
    with gce_sim.clock_held() as step:
        op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        assert gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name).status != DONE
        while gce_clients.zone_operations.get(project=P, zone=WP_ZONE, operation=op.name).status != DONE:
            assert step()
        assert gce_sim.instance(P, WP_ZONE, WP)["status"] == "TERMINATED"


def test_reset_ends_a_held_clock(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    with gce_sim.clock_held():
        gce_sim.reset()
        gce_sim.seed_classic(P)
        op = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        assert gce_clients.zone_operations.wait(project=P, zone=WP_ZONE, operation=op.name).status == DONE


def test_delete_an_instance_and_its_disks(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    zone = "us-central1-a"
    with pytest.raises(exceptions.BadRequest):  # still attached to db-1
        gce_clients.disks.delete_unary(project=P, zone=zone, disk="db-1-data")
    op = gce_clients.instances.delete_unary(project=P, zone=zone, instance="db-1")
    assert op.operation_type == "delete"
    gce_clients.zone_operations.wait(project=P, zone=zone, operation=op.name)
    with pytest.raises(exceptions.NotFound):
        gce_clients.instances.get(project=P, zone=zone, instance="db-1")
    with pytest.raises(exceptions.NotFound):  # the boot disk is autoDelete
        gce_clients.disks.get(project=P, zone=zone, disk="db-1")
    assert gce_clients.disks.get(project=P, zone=zone, disk="db-1-data").users == []
    op = gce_clients.disks.delete_unary(project=P, zone=zone, disk="db-1-data")
    gce_clients.zone_operations.wait(project=P, zone=zone, operation=op.name)
    with pytest.raises(exceptions.NotFound):
        gce_clients.disks.get(project=P, zone=zone, disk="db-1-data")
