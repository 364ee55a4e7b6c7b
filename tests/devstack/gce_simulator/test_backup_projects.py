"""Snapshots in another project than their disk's, ARCHIVE snapshots, storage locations and missing permissions."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.gce import GCE_PROJECT, GceClients

P = GCE_PROJECT
BACKUPS = "demo-backups"
ZONE = "us-central1-c"
VM = "wordpress-1-vm"
SOURCE = f"https://www.googleapis.com/compute/v1/projects/{P}/zones/{ZONE}/disks/{VM}"


def insert(clients: GceClients, name: str, project: str = BACKUPS, **fields: object) -> compute_v1.Snapshot:
    """snapshots.insert of the wordpress disk into `project`, waited until DONE; the snapshot as then read."""
    resource = compute_v1.Snapshot(name=name, source_disk=SOURCE, **fields)
    op = clients.snapshots.insert_unary(project=project, snapshot_resource=resource)
    done = clients.global_operations.wait(project=project, operation=op.name)
    assert not done.error.errors, done.error
    return clients.snapshots.get(project=project, snapshot=name)


def test_a_snapshot_is_written_into_another_project_from_the_disk_of_the_workload_project(
    gce_clients: GceClients,
) -> None:
    snap = insert(gce_clients, "wp-1")
    assert snap.self_link.endswith(f"/projects/{BACKUPS}/global/snapshots/wp-1")
    assert snap.source_disk.endswith(f"/projects/{P}/zones/{ZONE}/disks/{VM}")
    assert snap.status == "READY"


def test_snapshots_are_listed_in_their_own_project_only(gce_clients: GceClients) -> None:
    insert(gce_clients, "wp-1")
    assert [s.name for s in gce_clients.snapshots.list(project=BACKUPS)] == ["wp-1"]
    assert [s.name for s in gce_clients.snapshots.list(project=P)] == []
    with pytest.raises(exceptions.NotFound):
        gce_clients.snapshots.get(project=P, snapshot="wp-1")


def test_an_archive_snapshot_says_so(gce_clients: GceClients) -> None:
    assert insert(gce_clients, "wp-archive", snapshot_type="ARCHIVE").snapshot_type == "ARCHIVE"


def test_a_snapshot_is_standard_unless_asked(gce_clients: GceClients) -> None:
    assert insert(gce_clients, "wp-standard").snapshot_type == "STANDARD"


def test_the_storage_location_asked_for_is_kept(gce_clients: GceClients) -> None:
    assert insert(gce_clients, "wp-eu", storage_locations=["eu"]).storage_locations == ["eu"]


@pytest.mark.parametrize("locations", [["us-central1-a"], ["us", "eu"], ["nowhere"]])
def test_a_zone_or_several_storage_locations_are_refused(gce_clients: GceClients, locations: list[str]) -> None:
    resource = compute_v1.Snapshot(name="wp-bad", source_disk=SOURCE, storage_locations=locations)
    with pytest.raises(exceptions.BadRequest, match="storageLocations"):
        gce_clients.snapshots.insert_unary(project=BACKUPS, snapshot_resource=resource)
    assert list(gce_clients.snapshots.list(project=BACKUPS)) == []


def test_a_disk_is_restored_in_the_workload_project_from_a_snapshot_in_the_backup_project(
    gce_clients: GceClients,
) -> None:
    insert(gce_clients, "wp-1", snapshot_type="ARCHIVE")
    disk = compute_v1.Disk(name="wp-restored", source_snapshot=f"projects/{BACKUPS}/global/snapshots/wp-1")
    op = gce_clients.disks.insert_unary(project=P, zone=ZONE, disk_resource=disk)
    gce_clients.zone_operations.wait(project=P, zone=ZONE, operation=op.name)
    restored = gce_clients.disks.get(project=P, zone=ZONE, disk="wp-restored")
    assert restored.source_snapshot.endswith(f"/projects/{BACKUPS}/global/snapshots/wp-1")


def test_without_create_permission_in_the_backup_project_the_insert_is_forbidden(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.deny_permission(BACKUPS, "compute.snapshots.create")
    resource = compute_v1.Snapshot(name="wp-1", source_disk=SOURCE)
    with pytest.raises(exceptions.Forbidden) as info:
        gce_clients.snapshots.insert_unary(project=BACKUPS, snapshot_resource=resource)
    assert info.value.message.endswith(
        f"Required 'compute.snapshots.create' permission for 'projects/{BACKUPS}/global/snapshots/wp-1'"
    )
    assert info.value.errors[0]["reason"] == "forbidden"


def test_without_read_access_to_the_source_disk_the_insert_is_forbidden(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.deny_permission(P, "compute.disks.useReadOnly")
    with pytest.raises(exceptions.Forbidden, match=r"compute\.disks\.useReadOnly"):
        gce_clients.snapshots.insert_unary(
            project=BACKUPS, snapshot_resource=compute_v1.Snapshot(name="wp-1", source_disk=SOURCE)
        )


def test_without_delete_permission_a_snapshot_cannot_be_deleted(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    insert(gce_clients, "wp-1")
    gce_sim.deny_permission(BACKUPS, "compute.snapshots.delete")
    with pytest.raises(exceptions.Forbidden, match=r"compute\.snapshots\.delete"):
        gce_clients.snapshots.delete_unary(project=BACKUPS, snapshot="wp-1")
    assert gce_clients.snapshots.get(project=BACKUPS, snapshot="wp-1").status == "READY"


def test_without_read_access_to_the_snapshot_no_disk_is_restored_from_it(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    insert(gce_clients, "wp-1")
    gce_sim.deny_permission(BACKUPS, "compute.snapshots.useReadOnly")
    disk = compute_v1.Disk(name="wp-restored", source_snapshot=f"projects/{BACKUPS}/global/snapshots/wp-1")
    with pytest.raises(exceptions.Forbidden, match=r"compute\.snapshots\.useReadOnly"):
        gce_clients.disks.insert_unary(project=P, zone=ZONE, disk_resource=disk)
    with pytest.raises(exceptions.NotFound):
        gce_clients.disks.get(project=P, zone=ZONE, disk="wp-restored")


def test_an_unknown_permission_cannot_be_denied(gce_sim: ComputeSimulator) -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        gce_sim.deny_permission(BACKUPS, "compute.snapshots.creat")


def test_reset_gives_every_permission_back(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.deny_permission(BACKUPS, "compute.snapshots.list")
    gce_sim.reset()
    assert list(gce_clients.snapshots.list(project=BACKUPS)) == []
