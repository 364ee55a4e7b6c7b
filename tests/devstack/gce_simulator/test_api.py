"""The Compute Engine simulator, driven by the real google-cloud-compute client."""

from __future__ import annotations

from functools import partial

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, Profile
from tests.fixtures.gce import GCE_PROJECT, GceClients, statuses_until_done
from vmbackup.model import labels as vm_labels

P = GCE_PROJECT
WP_ZONE = "us-central1-c"
WP = "wordpress-1-vm"
DONE = compute_v1.Operation.Status.DONE


def wait_zone(clients: GceClients, zone: str, op: compute_v1.Operation) -> compute_v1.Operation:
    result = clients.zone_operations.wait(project=P, zone=zone, operation=op.name)
    assert result.status == DONE
    return result


def snapshot_of(
    clients: GceClients, zone: str, disk: str, name: str, **labels: str
) -> tuple[compute_v1.Operation, compute_v1.Snapshot]:
    resource = compute_v1.Snapshot(name=name, labels=labels, storage_locations=["us-central1"])
    op = clients.disks.create_snapshot_unary(project=P, zone=zone, disk=disk, snapshot_resource=resource)
    return op, clients.snapshots.get(project=P, snapshot=name)


def test_plain_client_construction_reaches_the_http_endpoint(
    gce_sim: ComputeSimulator, compute_client_options: dict[str, str]
) -> None:
    from google.auth.credentials import AnonymousCredentials

    client = compute_v1.InstancesClient(credentials=AnonymousCredentials(), client_options=compute_client_options)
    instance = client.get(project=P, zone=WP_ZONE, instance=WP)
    assert instance.status == "RUNNING"
    assert compute_client_options == {"api_endpoint": gce_sim.base_url}
    assert gce_sim.call_counts() == {"instances.get": 1}


def test_classic_seed_shapes_instances_like_compute_engine(gce_clients: GceClients) -> None:
    vm = gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
    assert vm.self_link.endswith(f"projects/{P}/zones/{WP_ZONE}/instances/{WP}")
    assert vm.zone.endswith(f"/zones/{WP_ZONE}")
    assert vm.machine_type.endswith("/machineTypes/e2-medium")
    assert vm.label_fingerprint
    [boot] = vm.disks
    assert boot.boot
    assert boot.type_ == "PERSISTENT"
    assert boot.source.endswith(f"/zones/{WP_ZONE}/disks/{WP}")
    assert vm.network_interfaces[0].network.endswith("/global/networks/default")
    assert vm.service_accounts[0].email
    disk = gce_clients.disks.get(project=P, zone=WP_ZONE, disk=WP)
    assert disk.size_gb == 10
    assert disk.users == [vm.self_link]
    db = gce_clients.instances.get(project=P, zone="us-central1-a", instance="db-1")
    assert [d.boot for d in db.disks] == [True, False]


def test_stop_then_start_walks_the_state_machine(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    def vm_status() -> str:
        return gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).status

    stop = partial(gce_clients.instances.stop_unary, project=P, zone=WP_ZONE, instance=WP)
    op, seen = statuses_until_done(gce_sim, gce_clients, WP_ZONE, stop, vm_status)
    assert op.operation_type == "stop"
    assert op.target_link.endswith(f"/instances/{WP}")
    assert op.status != DONE
    assert seen == ["RUNNING", "STOPPING", "TERMINATED"]
    done = wait_zone(gce_clients, WP_ZONE, op)
    assert not done.error.errors
    assert done.start_time
    assert done.end_time
    assert done.progress == 100
    assert gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).status == "TERMINATED"

    start = partial(gce_clients.instances.start_unary, project=P, zone=WP_ZONE, instance=WP)
    op, seen = statuses_until_done(gce_sim, gce_clients, WP_ZONE, start, vm_status)
    assert seen == ["TERMINATED", "STAGING", "RUNNING"]
    wait_zone(gce_clients, WP_ZONE, op)
    assert gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).status == "RUNNING"
    assert gce_sim.check_left_stopped() == []


def test_stop_of_a_stopped_vm_and_start_of_a_running_vm_are_no_ops(gce_clients: GceClients) -> None:
    wait_zone(gce_clients, WP_ZONE, gce_clients.instances.start_unary(project=P, zone=WP_ZONE, instance=WP))
    wait_zone(gce_clients, WP_ZONE, gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP))
    again = wait_zone(gce_clients, WP_ZONE, gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP))
    assert not again.error.errors
    assert gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).status == "TERMINATED"


def test_extended_operation_result_works_through_wired_clients(gce_clients: GceClients) -> None:
    operation = gce_clients.instances.stop(project=P, zone=WP_ZONE, instance=WP)
    operation.result(timeout=30)
    assert operation.done()
    assert gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).status == "TERMINATED"


def test_a_second_operation_on_a_busy_instance_is_refused_at_once(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    with gce_sim.clock_held():  # the stop is in flight until the clock is released
        stop = gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance=WP)
        with pytest.raises(exceptions.BadRequest) as caught:
            gce_clients.instances.start_unary(project=P, zone=WP_ZONE, instance=WP)
    assert caught.value.errors[0]["reason"] == "resourceNotReady"
    assert (
        caught.value.errors[0]["message"] == f"The resource 'projects/{P}/zones/{WP_ZONE}/instances/{WP}' is not ready"
    )
    wait_zone(gce_clients, WP_ZONE, stop)
    wait_zone(gce_clients, WP_ZONE, gce_clients.instances.start_unary(project=P, zone=WP_ZONE, instance=WP))
    assert gce_sim.instance(P, WP_ZONE, WP)["status"] == "RUNNING"


def test_unknown_instance_is_404_in_compute_engine_shape(gce_clients: GceClients) -> None:
    with pytest.raises(exceptions.NotFound) as caught:
        gce_clients.instances.get(project=P, zone=WP_ZONE, instance="nope")
    assert "projects/demo-project/zones/us-central1-c/instances/nope" in caught.value.message
    assert caught.value.errors[0]["reason"] == "notFound"
    with pytest.raises(exceptions.NotFound):
        gce_clients.disks.get(project=P, zone=WP_ZONE, disk="nope")
    with pytest.raises(exceptions.NotFound):
        gce_clients.instances.stop_unary(project=P, zone=WP_ZONE, instance="nope")


def test_create_snapshot_goes_creating_uploading_ready(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    def take() -> compute_v1.Operation:
        return snapshot_of(gce_clients, WP_ZONE, WP, "wp-snap-1", **{vm_labels.RUN: "r1"})[0]

    def snapshot_status() -> str:
        return gce_clients.snapshots.get(project=P, snapshot="wp-snap-1").status

    op, seen = statuses_until_done(gce_sim, gce_clients, WP_ZONE, take, snapshot_status)
    assert op.operation_type == "createSnapshot"
    assert op.target_link.endswith(f"/disks/{WP}")
    assert seen == ["CREATING", "UPLOADING", "READY"]  # and the operation is DONE only once the snapshot is READY
    ready = gce_clients.snapshots.get(project=P, snapshot="wp-snap-1")
    assert ready.source_disk.endswith(f"/zones/{WP_ZONE}/disks/{WP}")
    assert ready.source_disk_id == str(gce_clients.disks.get(project=P, zone=WP_ZONE, disk=WP).id)
    assert ready.disk_size_gb == 10
    assert ready.storage_bytes > 0
    assert ready.storage_locations == ["us-central1"]
    assert ready.creation_timestamp
    assert ready.labels == {vm_labels.RUN: "r1"}


def test_create_snapshot_with_an_existing_name_is_409(gce_clients: GceClients) -> None:
    op, _ = snapshot_of(gce_clients, WP_ZONE, WP, "dup-name")
    wait_zone(gce_clients, WP_ZONE, op)
    with pytest.raises(exceptions.Conflict) as caught:
        snapshot_of(gce_clients, WP_ZONE, WP, "dup-name")
    assert caught.value.errors[0]["reason"] == "alreadyExists"


def test_guest_flush_query_is_accepted(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    request = compute_v1.CreateSnapshotDiskRequest(
        project=P, zone=WP_ZONE, disk=WP, guest_flush=True, snapshot_resource=compute_v1.Snapshot(name="flushed")
    )
    wait_zone(gce_clients, WP_ZONE, gce_clients.disks.create_snapshot_unary(request=request))
    [call] = [c for c in gce_sim.calls if c["method"] == "disks.createSnapshot"]
    assert call["query"] == {"guestFlush": "true"}
    assert gce_sim.snapshots(P)[0]["guestFlush"] is True


def test_list_and_aggregated_list_filter_on_labels(gce_clients: GceClients) -> None:
    def names(request: compute_v1.ListInstancesRequest) -> list[str]:
        return sorted(i.name for i in gce_clients.instances.list(request=request))

    assert names(compute_v1.ListInstancesRequest(project=P, zone="us-central1-a", filter="labels.app = shop")) == [
        "app-1",
        "db-1",
        "web-1",
    ]
    assert names(
        compute_v1.ListInstancesRequest(
            project=P, zone="us-central1-a", filter="(labels.app = shop) (labels.tier = web)"
        )
    ) == ["web-1"]

    def aggregated(filter_text: str) -> list[str]:
        request = compute_v1.AggregatedListInstancesRequest(project=P, filter=filter_text)
        return sorted(
            i.name for _, scoped in gce_clients.instances.aggregated_list(request=request) for i in scoped.instances
        )

    assert aggregated("labels.app = shop AND labels.tier = web") == ["web-1", "web-2"]
    assert aggregated("labels.tier != web AND labels.app = shop") == ["app-1", "db-1"]
    assert aggregated("labels.app:*") == ["app-1", "db-1", "web-1", "web-2", WP]
    assert aggregated("status = RUNNING AND labels.app = wordpress") == [WP]
    assert aggregated("name eq 'web-.*'") == ["web-1", "web-2"]
    assert aggregated("labels.app = shop OR labels.app = wordpress") == ["app-1", "db-1", "web-1", "web-2", WP]
    with pytest.raises(exceptions.BadRequest):
        aggregated("labels.app = (")


def test_list_pages_through_results(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    request = compute_v1.ListInstancesRequest(project=P, zone="us-central1-a", max_results=1)
    assert sorted(i.name for i in gce_clients.instances.list(request=request)) == ["app-1", "db-1", "web-1"]
    assert gce_sim.call_counts()["instances.list"] == 3


def test_set_labels_checks_the_fingerprint(gce_clients: GceClients) -> None:
    vm = gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
    body = compute_v1.InstancesSetLabelsRequest(
        labels={**vm.labels, vm_labels.LOCK: "run-1"}, label_fingerprint=vm.label_fingerprint
    )
    op = gce_clients.instances.set_labels_unary(
        project=P, zone=WP_ZONE, instance=WP, instances_set_labels_request_resource=body
    )
    assert op.operation_type == "setLabels"
    wait_zone(gce_clients, WP_ZONE, op)
    updated = gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP)
    assert updated.labels[vm_labels.LOCK] == "run-1"
    assert updated.label_fingerprint != vm.label_fingerprint

    stale = compute_v1.InstancesSetLabelsRequest(labels={"app": "x"}, label_fingerprint=vm.label_fingerprint)
    with pytest.raises(exceptions.PreconditionFailed) as caught:
        gce_clients.instances.set_labels_unary(
            project=P, zone=WP_ZONE, instance=WP, instances_set_labels_request_resource=stale
        )
    assert caught.value.errors[0]["reason"] == "conditionNotMet"
    assert gce_clients.instances.get(project=P, zone=WP_ZONE, instance=WP).labels[vm_labels.LOCK] == "run-1"


def test_snapshots_list_filters_and_delete(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.set_profile(Profile.fast(snapshot_min_interval_seconds=0.0))  # two snapshots of one disk in a row
    for name, run in (("s-a", "r1"), ("s-b", "r2")):
        op, _ = snapshot_of(gce_clients, WP_ZONE, WP, name, **{vm_labels.RUN: run, vm_labels.MANAGED_BY: "x"})
        wait_zone(gce_clients, WP_ZONE, op)
    listed = gce_clients.snapshots.list(
        request=compute_v1.ListSnapshotsRequest(project=P, filter="labels.vmbackup-run = r2")
    )
    assert [s.name for s in listed] == ["s-b"]
    op = gce_clients.snapshots.delete_unary(project=P, snapshot="s-a")
    assert op.operation_type == "delete"
    assert not op.zone
    done = gce_clients.global_operations.wait(project=P, operation=op.name)
    assert done.status == DONE
    with pytest.raises(exceptions.NotFound):
        gce_clients.snapshots.get(project=P, snapshot="s-a")
    assert [s.name for s in gce_clients.snapshots.list(project=P)] == ["s-b"]
