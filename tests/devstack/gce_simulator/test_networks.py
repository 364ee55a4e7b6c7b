"""The simulator's instances.insert networking and cross-project restores, driven by the real google-cloud-compute
client: a disk made in another project from this project's snapshot, a subnetwork outside the zone's region
refused, an external IP address only when asked for."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.gce import GCE_PROJECT, GceClients
from tests.fixtures.waits import wait_until

DR_PROJECT = "dr-project"
DR_ZONE = "europe-west1-b"


def wait(clients: GceClients, project: str, zone: str, op: compute_v1.Operation) -> compute_v1.Operation:
    return clients.zone_operations.wait(project=project, zone=zone, operation=op.name)


def snapshot_of_db(gce_sim: ComputeSimulator, gce_clients: GceClients) -> str:
    snapshot = compute_v1.Snapshot(name="db-1-data-snap")
    op = gce_clients.disks.create_snapshot_unary(
        project=GCE_PROJECT, zone="us-central1-a", disk="db-1-data", snapshot_resource=snapshot
    )
    assert not wait(gce_clients, GCE_PROJECT, "us-central1-a", op).error.errors
    wait_until(lambda: gce_clients.snapshots.get(project=GCE_PROJECT, snapshot="db-1-data-snap").status == "READY")
    return f"projects/{GCE_PROJECT}/global/snapshots/db-1-data-snap"


def vm(name: str, zone: str, nic: compute_v1.NetworkInterface, boot_disk: str) -> compute_v1.Instance:
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/e2-medium",
        network_interfaces=[nic],
        disks=[compute_v1.AttachedDisk(source=boot_disk, boot=True)],
    )


def dr_disk(gce_sim: ComputeSimulator, gce_clients: GceClients, name: str = "db-back") -> str:
    disk = compute_v1.Disk(name=name, source_snapshot=snapshot_of_db(gce_sim, gce_clients))
    op = gce_clients.disks.insert_unary(project=DR_PROJECT, zone=DR_ZONE, disk_resource=disk)
    assert not wait(gce_clients, DR_PROJECT, DR_ZONE, op).error.errors
    wait_until(lambda: gce_clients.disks.get(project=DR_PROJECT, zone=DR_ZONE, disk=name).status == "READY")
    return f"projects/{DR_PROJECT}/zones/{DR_ZONE}/disks/{name}"


def test_a_disk_is_made_in_another_project_and_region_from_a_snapshot_url(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    dr_disk(gce_sim, gce_clients)

    disk = gce_clients.disks.get(project=DR_PROJECT, zone=DR_ZONE, disk="db-back")
    assert disk.status == "READY"
    assert disk.source_snapshot.endswith(f"projects/{GCE_PROJECT}/global/snapshots/db-1-data-snap")


def test_a_subnetwork_of_another_region_is_refused_naming_the_field(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    boot = dr_disk(gce_sim, gce_clients)
    nic = compute_v1.NetworkInterface(
        network="dr-net", subnetwork=f"projects/{DR_PROJECT}/regions/us-central1/subnetworks/dr-subnet"
    )

    with pytest.raises(exceptions.BadRequest, match=r"resource\.networkInterfaces\[0\]\.subnetwork"):
        gce_clients.instances.insert_unary(
            project=DR_PROJECT, zone=DR_ZONE, instance_resource=vm("db-back", DR_ZONE, nic, boot)
        )
    assert (DR_PROJECT, DR_ZONE, "db-back") not in gce_sim.world.instances


def test_an_interface_without_an_access_config_has_no_external_ip(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    boot = dr_disk(gce_sim, gce_clients)
    nic = compute_v1.NetworkInterface(network="dr-net", subnetwork="regions/europe-west1/subnetworks/dr-subnet")

    op = gce_clients.instances.insert_unary(
        project=DR_PROJECT, zone=DR_ZONE, instance_resource=vm("db-back", DR_ZONE, nic, boot)
    )
    assert not wait(gce_clients, DR_PROJECT, DR_ZONE, op).error.errors

    got = gce_clients.instances.get(project=DR_PROJECT, zone=DR_ZONE, instance="db-back").network_interfaces[0]
    assert got.network.endswith(f"projects/{DR_PROJECT}/global/networks/dr-net")
    assert got.subnetwork.endswith(f"projects/{DR_PROJECT}/regions/europe-west1/subnetworks/dr-subnet")
    assert list(got.access_configs) == []


def test_a_one_to_one_nat_access_config_gives_an_external_ip(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    boot = dr_disk(gce_sim, gce_clients)
    nic = compute_v1.NetworkInterface(
        network="dr-net", access_configs=[compute_v1.AccessConfig(type_="ONE_TO_ONE_NAT", name="External NAT")]
    )

    op = gce_clients.instances.insert_unary(
        project=DR_PROJECT, zone=DR_ZONE, instance_resource=vm("db-back", DR_ZONE, nic, boot)
    )
    assert not wait(gce_clients, DR_PROJECT, DR_ZONE, op).error.errors

    got = gce_clients.instances.get(project=DR_PROJECT, zone=DR_ZONE, instance="db-back").network_interfaces[0]
    assert got.access_configs[0].nat_i_p
