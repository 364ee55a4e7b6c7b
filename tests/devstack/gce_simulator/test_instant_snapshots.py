"""instantSnapshots, regionInstantSnapshots and snapshots.insert in the simulator, through google-cloud-compute."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, Profile, compute_client
from tests.fixtures.gce import GCE_PROJECT, GceClients
from vmbackup.model import labels as vm_labels

P = GCE_PROJECT
ZONE = "us-central1-c"
VM = "wordpress-1-vm"
REGION = "us-central1"
DONE = compute_v1.Operation.Status.DONE
STOP_LABELS = {vm_labels.CONSISTENCY: vm_labels.consistency_value("stop"), vm_labels.RUN: "r1"}


@dataclass
class InstantClients:
    zonal: compute_v1.InstantSnapshotsClient
    regional: compute_v1.RegionInstantSnapshotsClient
    region_disks: compute_v1.RegionDisksClient
    region_operations: compute_v1.RegionOperationsClient


@pytest.fixture
def instant(gce_sim: ComputeSimulator) -> InstantClients:
    url = gce_sim.base_url
    return InstantClients(
        zonal=compute_client(compute_v1.InstantSnapshotsClient, url),
        regional=compute_client(compute_v1.RegionInstantSnapshotsClient, url),
        region_disks=compute_client(compute_v1.RegionDisksClient, url),
        region_operations=compute_client(compute_v1.RegionOperationsClient, url),
    )


@pytest.fixture
def regional_vm(gce_sim: ComputeSimulator) -> str:
    gce_sim.add_instance(P, "us-central1-a", "ha-1", disks=["ha-1", {"name": "ha-shared", "region": REGION}])
    return "ha-1"


def disk_url(zone: str, disk: str) -> str:
    return f"https://www.googleapis.com/compute/v1/projects/{P}/zones/{zone}/disks/{disk}"


def take_instant(
    clients: InstantClients, gce: GceClients, name: str, disk: str = VM, zone: str = ZONE, **labels: str
) -> compute_v1.Operation:
    resource = compute_v1.InstantSnapshot(name=name, source_disk=disk_url(zone, disk), labels=labels)
    op = clients.zonal.insert_unary(project=P, zone=zone, instant_snapshot_resource=resource)
    return gce.zone_operations.wait(project=P, zone=zone, operation=op.name)


def stop_vm(gce: GceClients) -> None:
    op = gce.instances.stop_unary(project=P, zone=ZONE, instance=VM)
    gce.zone_operations.wait(project=P, zone=ZONE, operation=op.name)


def test_an_instant_snapshot_goes_creating_then_ready(
    gce_sim: ComputeSimulator, gce_clients: GceClients, instant: InstantClients
) -> None:
    resource = compute_v1.InstantSnapshot(name="wp-i1", source_disk=disk_url(ZONE, VM), labels={"k": "v"})
    with gce_sim.clock_held():  # CREATING until the clock is released
        op = instant.zonal.insert_unary(project=P, zone=ZONE, instant_snapshot_resource=resource)
        assert op.target_link.endswith(f"/zones/{ZONE}/instantSnapshots/wp-i1")
        assert instant.zonal.get(project=P, zone=ZONE, instant_snapshot="wp-i1").status == "CREATING"
    assert gce_clients.zone_operations.wait(project=P, zone=ZONE, operation=op.name).status == DONE
    got = instant.zonal.get(project=P, zone=ZONE, instant_snapshot="wp-i1")
    assert got.status == "READY"
    assert got.source_disk == disk_url(ZONE, VM)
    assert got.source_disk_id == str(gce_clients.disks.get(project=P, zone=ZONE, disk=VM).id)
    assert got.disk_size_gb == 10
    assert got.zone.endswith(f"/zones/{ZONE}")
    assert got.labels == {"k": "v"}


def test_instant_snapshots_are_listed_with_a_label_filter(gce_clients: GceClients, instant: InstantClients) -> None:
    take_instant(instant, gce_clients, "wp-a", app="one")
    take_instant(instant, gce_clients, "db-a", disk="db-1-data", zone="us-central1-a", app="two")
    assert [i.name for i in instant.zonal.list(project=P, zone=ZONE)] == ["wp-a"]

    def listed(label_filter: str) -> list[str]:
        request = compute_v1.ListInstantSnapshotsRequest(project=P, zone="us-central1-a", filter=label_filter)
        return [i.name for i in instant.zonal.list(request=request)]

    assert listed("labels.app = two") == ["db-a"]
    assert listed("labels.app = one") == []


def test_deleting_an_instant_snapshot_removes_it(gce_clients: GceClients, instant: InstantClients) -> None:
    take_instant(instant, gce_clients, "wp-gone")
    op = instant.zonal.delete_unary(project=P, zone=ZONE, instant_snapshot="wp-gone")
    assert op.operation_type == "delete"
    gce_clients.zone_operations.wait(project=P, zone=ZONE, operation=op.name)
    with pytest.raises(exceptions.NotFound):
        instant.zonal.get(project=P, zone=ZONE, instant_snapshot="wp-gone")


def test_a_disk_has_at_most_32_instant_snapshots(
    gce_sim: ComputeSimulator, gce_clients: GceClients, instant: InstantClients
) -> None:
    gce_sim.set_profile(Profile.fast(instant_snapshot_min_interval_seconds=0))
    for index in range(32):
        take_instant(instant, gce_clients, f"wp-{index}")
    with pytest.raises(exceptions.BadRequest, match="can't have more than 32 instant snapshots"):
        take_instant(instant, gce_clients, "wp-32")


def test_a_second_instant_snapshot_within_the_minimum_interval_is_refused(
    gce_sim: ComputeSimulator, gce_clients: GceClients, instant: InstantClients
) -> None:
    # Documented: 30 s (profile.py); an hour here, as nothing waits for it to pass and both calls must land within it
    gce_sim.set_profile(Profile.fast(instant_snapshot_min_interval_seconds=3600))
    take_instant(instant, gce_clients, "wp-first")
    with pytest.raises(exceptions.BadRequest, match=r"too recent.*wait at least 3600 seconds"):
        take_instant(instant, gce_clients, "wp-second")
    take_instant(instant, gce_clients, "db-other", disk="db-1-data", zone="us-central1-a")  # per disk


def test_an_instant_snapshot_lives_in_its_disks_zone(gce_clients: GceClients, instant: InstantClients) -> None:
    resource = compute_v1.InstantSnapshot(name="elsewhere", source_disk=disk_url(ZONE, VM))
    with pytest.raises(exceptions.BadRequest, match="zone of its source disk"):
        instant.zonal.insert_unary(project=P, zone="us-central1-a", instant_snapshot_resource=resource)


def test_a_standard_snapshot_from_an_instant_snapshot_needs_no_stopped_vm(
    gce_sim: ComputeSimulator, gce_clients: GceClients, instant: InstantClients
) -> None:
    stop_vm(gce_clients)
    take_instant(instant, gce_clients, "wp-point", **STOP_LABELS)
    start = gce_clients.instances.start_unary(project=P, zone=ZONE, instance=VM)
    gce_clients.zone_operations.wait(project=P, zone=ZONE, operation=start.name)
    source = f"projects/{P}/zones/{ZONE}/instantSnapshots/wp-point"
    resource = compute_v1.Snapshot(name="wp-standard", source_instant_snapshot=source, labels=STOP_LABELS)
    op = gce_clients.snapshots.insert_unary(project=P, snapshot_resource=resource)
    assert op.operation_type == "insert"
    assert op.target_link.endswith("/global/snapshots/wp-standard")
    assert gce_clients.global_operations.wait(project=P, operation=op.name).status == DONE
    snap = gce_clients.snapshots.get(project=P, snapshot="wp-standard")
    assert snap.status == "READY"
    assert snap.source_instant_snapshot.endswith(f"/zones/{ZONE}/instantSnapshots/wp-point")
    assert snap.source_disk == disk_url(ZONE, VM)
    assert gce_sim.violations == []


def test_snapshots_insert_from_a_disk_checks_the_vm_is_stopped(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    resource = compute_v1.Snapshot(name="wp-direct", source_disk=disk_url(ZONE, VM), labels=STOP_LABELS)
    op = gce_clients.snapshots.insert_unary(project=P, snapshot_resource=resource)
    gce_clients.global_operations.wait(project=P, operation=op.name)
    assert gce_clients.snapshots.get(project=P, snapshot="wp-direct").status == "READY"
    assert [v["kind"] for v in gce_sim.violations] == ["snapshot-of-running-disk"]


def test_an_instant_snapshot_of_a_running_vm_with_consistency_stop_is_flagged(
    gce_sim: ComputeSimulator, gce_clients: GceClients, instant: InstantClients
) -> None:
    take_instant(instant, gce_clients, "wp-running", **STOP_LABELS)
    assert [v["kind"] for v in gce_sim.violations] == ["snapshot-of-running-disk"]


def test_snapshots_insert_needs_exactly_one_source(gce_clients: GceClients) -> None:
    with pytest.raises(exceptions.BadRequest, match="Exactly one of"):
        gce_clients.snapshots.insert_unary(project=P, snapshot_resource=compute_v1.Snapshot(name="nothing"))


def test_a_standard_snapshot_of_a_creating_instant_snapshot_is_refused(
    gce_sim: ComputeSimulator, gce_clients: GceClients, instant: InstantClients
) -> None:
    gce_sim.set_profile(Profile.fast(instant_snapshot_creating_seconds=3600))  # nothing waits for it to end
    resource = compute_v1.InstantSnapshot(name="wp-slow", source_disk=disk_url(ZONE, VM))
    instant.zonal.insert_unary(project=P, zone=ZONE, instant_snapshot_resource=resource)
    source = f"projects/{P}/zones/{ZONE}/instantSnapshots/wp-slow"
    with pytest.raises(exceptions.BadRequest, match="not ready"):
        gce_clients.snapshots.insert_unary(
            project=P, snapshot_resource=compute_v1.Snapshot(name="too-early", source_instant_snapshot=source)
        )


def test_deleting_a_disk_deletes_its_instant_snapshots(
    gce_sim: ComputeSimulator, gce_clients: GceClients, instant: InstantClients
) -> None:
    gce_sim.add_disk(P, ZONE, "spare")
    take_instant(instant, gce_clients, "spare-i", disk="spare")
    op = gce_clients.disks.delete_unary(project=P, zone=ZONE, disk="spare")
    gce_clients.zone_operations.wait(project=P, zone=ZONE, operation=op.name)
    assert list(instant.zonal.list(project=P, zone=ZONE)) == []


def test_a_regional_disk_is_served_by_region_disks(instant: InstantClients, regional_vm: str) -> None:
    disk = instant.region_disks.get(project=P, region=REGION, disk="ha-shared")
    assert disk.region.endswith(f"/regions/{REGION}")
    assert disk.self_link.endswith(f"/regions/{REGION}/disks/ha-shared")
    assert any(z.endswith("/zones/us-central1-a") for z in disk.replica_zones)
    assert [u.rsplit("/", 1)[-1] for u in disk.users] == [regional_vm]


def test_a_regional_disk_gets_a_regional_instant_snapshot_and_a_standard_one(
    gce_sim: ComputeSimulator, gce_clients: GceClients, instant: InstantClients, regional_vm: str
) -> None:
    source = f"projects/{P}/regions/{REGION}/disks/ha-shared"
    resource = compute_v1.InstantSnapshot(name="ha-i", source_disk=source)
    op = instant.regional.insert_unary(project=P, region=REGION, instant_snapshot_resource=resource)
    assert op.region.endswith(f"/regions/{REGION}")
    assert instant.region_operations.wait(project=P, region=REGION, operation=op.name).status == DONE
    got = instant.regional.get(project=P, region=REGION, instant_snapshot="ha-i")
    assert got.status == "READY"
    assert got.region.endswith(f"/regions/{REGION}")
    assert [i.name for i in instant.regional.list(project=P, region=REGION)] == ["ha-i"]
    convert = gce_clients.snapshots.insert_unary(
        project=P,
        snapshot_resource=compute_v1.Snapshot(name="ha-std", source_instant_snapshot=got.self_link),
    )
    gce_clients.global_operations.wait(project=P, operation=convert.name)
    direct = gce_clients.snapshots.insert_unary(
        project=P, snapshot_resource=compute_v1.Snapshot(name="ha-direct", source_disk=source)
    )
    gce_clients.global_operations.wait(project=P, operation=direct.name)
    for name in ("ha-std", "ha-direct"):
        snap = gce_clients.snapshots.get(project=P, snapshot=name)
        assert snap.status == "READY"
        assert snap.source_disk.endswith(f"/regions/{REGION}/disks/ha-shared")
    delete = instant.regional.delete_unary(project=P, region=REGION, instant_snapshot="ha-i")
    instant.region_operations.wait(project=P, region=REGION, operation=delete.name)
    assert list(instant.regional.list(project=P, region=REGION)) == []
    assert gce_sim.violations == []
