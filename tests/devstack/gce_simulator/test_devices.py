"""The simulator's disk attachment and serial console, driven by the real google-cloud-compute client."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, SimulatorControl
from devstack.gce_simulator.devices import SERIAL_BUFFER_BYTES
from tests.fixtures.gce import GCE_PROJECT, GceClients

P = GCE_PROJECT
ZONE = "us-central1-a"
DB = "db-1"  # boot disk db-1 (device persistent-disk-0), data disk db-1-data (device "data")


def wait(clients: GceClients, op: compute_v1.Operation) -> compute_v1.Operation:
    done = clients.zone_operations.wait(project=P, zone=ZONE, operation=op.name)
    assert done.status == compute_v1.Operation.Status.DONE
    return done


def stop(clients: GceClients, name: str = DB) -> None:
    done = wait(clients, clients.instances.stop_unary(project=P, zone=ZONE, instance=name))
    assert not done.error.errors


def serial(clients: GceClients, name: str, **params: int) -> compute_v1.SerialPortOutput:
    request = compute_v1.GetSerialPortOutputInstanceRequest(project=P, zone=ZONE, instance=name, **params)
    return clients.instances.get_serial_port_output(request=request)


def a_disk(gce_sim: ComputeSimulator, name: str) -> str:
    return str(gce_sim.add_disk(P, ZONE, name)["selfLink"])


def test_detach_then_attach_a_data_disk_keeps_the_device_name(gce_sim: ComputeSimulator, gce_clients: GceClients):
    op = gce_clients.instances.detach_disk_unary(project=P, zone=ZONE, instance=DB, device_name="data")
    assert op.operation_type == "detachDisk"
    assert not wait(gce_clients, op).error.errors
    assert [d.device_name for d in gce_clients.instances.get(project=P, zone=ZONE, instance=DB).disks] == [
        "persistent-disk-0"
    ]
    assert gce_clients.disks.get(project=P, zone=ZONE, disk="db-1-data").users == []
    new = a_disk(gce_sim, "db-1-data-restored")
    attached = compute_v1.AttachedDisk(source=new, device_name="data", auto_delete=False)
    op = gce_clients.instances.attach_disk_unary(project=P, zone=ZONE, instance=DB, attached_disk_resource=attached)
    assert op.operation_type == "attachDisk"
    assert not wait(gce_clients, op).error.errors
    vm = gce_clients.instances.get(project=P, zone=ZONE, instance=DB)
    assert [(d.device_name, d.boot, d.index) for d in vm.disks] == [("persistent-disk-0", True, 0), ("data", False, 1)]
    assert vm.disks[1].source == new
    assert gce_clients.disks.get(project=P, zone=ZONE, disk="db-1-data-restored").users == [vm.self_link]


def test_the_boot_disk_is_detached_only_from_a_terminated_instance(gce_clients: GceClients):
    with pytest.raises(exceptions.BadRequest, match="To detach the boot disk, the instance must be in TERMINATED"):
        gce_clients.instances.detach_disk_unary(project=P, zone=ZONE, instance=DB, device_name="persistent-disk-0")
    stop(gce_clients)
    op = gce_clients.instances.detach_disk_unary(project=P, zone=ZONE, instance=DB, device_name="persistent-disk-0")
    assert not wait(gce_clients, op).error.errors
    assert all(not d.boot for d in gce_clients.instances.get(project=P, zone=ZONE, instance=DB).disks)


def test_an_instance_without_a_boot_disk_does_not_start(gce_clients: GceClients):
    stop(gce_clients)
    wait(
        gce_clients,
        gce_clients.instances.detach_disk_unary(project=P, zone=ZONE, instance=DB, device_name="persistent-disk-0"),
    )
    done = wait(gce_clients, gce_clients.instances.start_unary(project=P, zone=ZONE, instance=DB))
    assert done.http_error_status_code == 400
    assert "has no boot disk" in done.error.errors[0].message
    assert gce_clients.instances.get(project=P, zone=ZONE, instance=DB).status == "TERMINATED"


def test_a_boot_disk_attached_to_a_stopped_instance_comes_first(gce_sim: ComputeSimulator, gce_clients: GceClients):
    stop(gce_clients)
    wait(
        gce_clients,
        gce_clients.instances.detach_disk_unary(project=P, zone=ZONE, instance=DB, device_name="persistent-disk-0"),
    )
    new = a_disk(gce_sim, "db-1-restored")
    attached = compute_v1.AttachedDisk(source=new, device_name="persistent-disk-0", boot=True, auto_delete=True)
    wait(
        gce_clients,
        gce_clients.instances.attach_disk_unary(project=P, zone=ZONE, instance=DB, attached_disk_resource=attached),
    )
    vm = gce_clients.instances.get(project=P, zone=ZONE, instance=DB)
    assert [(d.source.rsplit("/", 1)[-1], d.boot, d.auto_delete) for d in vm.disks] == [
        ("db-1-restored", True, True),
        ("db-1-data", False, False),
    ]


@pytest.mark.parametrize(
    ("attached", "message"),
    [
        ({"device_name": "data"}, "deviceName"),
        ({"device_name": "second-boot", "boot": True}, "must be in TERMINATED"),
    ],
)
def test_attach_refusals_name_the_problem(
    gce_sim: ComputeSimulator, gce_clients: GceClients, attached: dict[str, object], message: str
):
    resource = compute_v1.AttachedDisk(source=a_disk(gce_sim, "spare"), **attached)
    with pytest.raises(exceptions.BadRequest, match=message):
        gce_clients.instances.attach_disk_unary(project=P, zone=ZONE, instance=DB, attached_disk_resource=resource)


def test_a_disk_in_use_is_not_attached_twice(gce_clients: GceClients):
    web_disk = gce_clients.disks.get(project=P, zone=ZONE, disk="web-1").self_link
    resource = compute_v1.AttachedDisk(source=web_disk, device_name="other")
    with pytest.raises(exceptions.BadRequest, match="already being used by"):
        gce_clients.instances.attach_disk_unary(project=P, zone=ZONE, instance=DB, attached_disk_resource=resource)


def test_detaching_an_unknown_device_is_refused(gce_clients: GceClients):
    with pytest.raises(exceptions.BadRequest, match="No attached disk"):
        gce_clients.instances.detach_disk_unary(project=P, zone=ZONE, instance=DB, device_name="nope")


def test_a_booted_guest_prints_its_login_prompt_on_port_1(gce_sim: ComputeSimulator, gce_clients: GceClients):
    stop(gce_clients)
    wait(gce_clients, gce_clients.instances.start_unary(project=P, zone=ZONE, instance=DB))
    assert gce_sim.wait_for_serial(P, ZONE, DB, "login:", timeout=60)
    output = serial(gce_clients, DB)
    assert output.contents.endswith(f"{DB} login: ")
    assert output.start == 0
    assert output.next_ == len(output.contents.encode())
    assert output.self_link.endswith(f"/instances/{DB}/serialPort?port=1")


def test_start_next_and_negative_start_page_through_the_output(gce_sim: ComputeSimulator, gce_clients: GceClients):
    control = SimulatorControl(gce_sim.base_url)
    control.append_serial(P, ZONE, "app-1", "first line\n")
    first = serial(gce_clients, "app-1", port=1)
    assert (first.contents, first.start, first.next_) == ("first line\n", 0, 11)
    control.append_serial(P, ZONE, "app-1", "second\n")
    more = serial(gce_clients, "app-1", port=1, start=first.next_)
    assert (more.contents, more.start, more.next_) == ("second\n", 11, 18)
    assert serial(gce_clients, "app-1", port=1, start=-7).contents == "second\n"
    assert serial(gce_clients, "app-1", port=2).contents == ""


def test_output_past_the_1_mb_buffer_is_discarded_and_start_adjusted(
    gce_sim: ComputeSimulator, gce_clients: GceClients
):
    gce_sim.append_serial(P, ZONE, "app-1", "x" * 100)
    gce_sim.append_serial(P, ZONE, "app-1", "y" * SERIAL_BUFFER_BYTES)
    output = serial(gce_clients, "app-1", start=0)
    assert output.start == 100
    assert output.next_ == 100 + SERIAL_BUFFER_BYTES
    assert set(output.contents) == {"y"}


def test_ports_other_than_1_to_4_are_refused(gce_clients: GceClients):
    with pytest.raises(exceptions.BadRequest, match="'port'"):
        serial(gce_clients, "app-1", port=5)


def test_a_disk_restored_from_a_snapshot_boots_the_same_guest(gce_sim: ComputeSimulator, gce_clients: GceClients):
    SimulatorControl(gce_sim.base_url).set_guest_console(P, ZONE, "app-1", "kernel panic - not syncing\n")
    snapshot = compute_v1.Snapshot(name="app-1-snap")
    op = gce_clients.disks.create_snapshot_unary(project=P, zone=ZONE, disk="app-1", snapshot_resource=snapshot)
    wait(gce_clients, op)
    disk = compute_v1.Disk(name="app-1-copy", source_snapshot=f"projects/{P}/global/snapshots/app-1-snap")
    wait(gce_clients, gce_clients.disks.insert_unary(project=P, zone=ZONE, disk_resource=disk))
    while gce_clients.disks.get(project=P, zone=ZONE, disk="app-1-copy").status == "RESTORING":
        pass  # usable once READY (profile.py: disk_restoring_seconds)
    vm = compute_v1.Instance(
        name="app-1-copy",
        disks=[compute_v1.AttachedDisk(source=f"projects/{P}/zones/{ZONE}/disks/app-1-copy", boot=True)],
    )
    wait(gce_clients, gce_clients.instances.insert_unary(project=P, zone=ZONE, instance_resource=vm))
    assert gce_sim.wait_for_serial(P, ZONE, "app-1-copy", "kernel panic", timeout=60)


def attach(clients: GceClients, instance: str, source: str, **fields: object) -> compute_v1.Operation:
    attached = compute_v1.AttachedDisk(source=source, **fields)
    return clients.instances.attach_disk_unary(project=P, zone=ZONE, instance=instance, attached_disk_resource=attached)


def test_a_read_only_disk_can_be_shared_read_only_but_not_written(gce_sim: ComputeSimulator, gce_clients: GceClients):
    shared = a_disk(gce_sim, "reference-data")
    assert not wait(gce_clients, attach(gce_clients, DB, shared, device_name="ref", mode="READ_ONLY")).error.errors

    assert not wait(gce_clients, attach(gce_clients, "app-1", shared, device_name="ref", mode="READ_ONLY")).error.errors
    with pytest.raises(exceptions.BadRequest, match="is already being used by"):
        attach(gce_clients, "web-1", shared, device_name="ref", mode="READ_WRITE")
    assert len(gce_clients.disks.get(project=P, zone=ZONE, disk="reference-data").users) == 2


def test_disk_labels_are_set_with_their_fingerprint(gce_clients: GceClients):
    disk = gce_clients.disks.get(project=P, zone=ZONE, disk="db-1-data")
    body = compute_v1.ZoneSetLabelsRequest(labels={"team": "dba"}, label_fingerprint=disk.label_fingerprint)
    op = gce_clients.disks.set_labels_unary(
        project=P, zone=ZONE, resource="db-1-data", zone_set_labels_request_resource=body
    )
    assert op.operation_type == "setLabels"
    assert not wait(gce_clients, op).error.errors
    assert gce_clients.disks.get(project=P, zone=ZONE, disk="db-1-data").labels == {"team": "dba"}

    with pytest.raises(exceptions.PreconditionFailed, match="fingerprint"):
        gce_clients.disks.set_labels_unary(
            project=P, zone=ZONE, resource="db-1-data", zone_set_labels_request_resource=body
        )
