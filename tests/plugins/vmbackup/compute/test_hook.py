"""ComputeEngineHook against the simulator: bounded retries, long-poll waits, Compute Engine's own errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from devstack.gce_simulator import Fault, Profile
from vmbackup.compute.hook import (
    INSTANT,
    TAKEN,
    ComputeEngineHook,
    OperationFailedError,
    pending_snapshots,
)
from vmbackup.compute.instant_snapshot_calls import InstantSnapshotLimitError, resource_url

PROJECT = "demo-project"
ZONE = "us-central1-c"
VM = "wordpress-1-vm"


@pytest.fixture
def hook(gce_sim: Any) -> ComputeEngineHook:
    return ComputeEngineHook(endpoint=gce_sim.base_url, max_attempts=4, backoff_base_seconds=0.001)


def test_transient_errors_are_retried(hook: ComputeEngineHook, gce_sim: Any) -> None:
    gce_sim.inject(Fault.rate_limited("instances.get", times=2))
    gce_sim.inject(Fault.backend_error("instances.get", times=1))
    assert hook.get_instance(PROJECT, ZONE, VM).status == "RUNNING"
    assert gce_sim.call_counts()["instances.get"] == 4


def test_retries_are_bounded(hook: ComputeEngineHook, gce_sim: Any) -> None:
    gce_sim.inject(Fault.backend_error("instances.get", times=None))
    with pytest.raises(gexc.ServiceUnavailable):
        hook.get_instance(PROJECT, ZONE, VM)
    assert gce_sim.call_counts()["instances.get"] == 4


def test_client_errors_are_not_retried(hook: ComputeEngineHook, gce_sim: Any) -> None:
    gce_sim.inject(Fault.http_error("instances.get", 403, times=None))
    with pytest.raises(gexc.Forbidden):
        hook.get_instance(PROJECT, ZONE, VM)
    assert gce_sim.call_counts()["instances.get"] == 1


def test_wait_done_long_polls_until_the_operation_is_done(hook: ComputeEngineHook, gce_sim: Any) -> None:
    ref = hook.stop_instance(PROJECT, ZONE, VM)
    hook.wait_done(ref, 30)
    assert gce_sim.instance(PROJECT, ZONE, VM)["status"] == "TERMINATED"
    assert gce_sim.call_counts().get("zoneOperations.get", 0) == 0


def test_failed_operation_raises_compute_engines_message(hook: ComputeEngineHook, gce_sim: Any) -> None:
    gce_sim.inject(Fault.operation_error("instances.stop", "ZONE_RESOURCE_POOL_EXHAUSTED", "The zone is busy."))
    ref = hook.stop_instance(PROJECT, ZONE, VM)
    with pytest.raises(OperationFailedError, match=re.escape("ZONE_RESOURCE_POOL_EXHAUSTED: The zone is busy.")):
        hook.wait_done(ref, 30)


def test_an_existing_snapshot_name_is_reported_not_raised(hook: ComputeEngineHook, gce_sim: Any) -> None:
    kwargs: dict[str, Any] = {"labels": {}, "storage_location": None, "guest_flush": False}
    assert hook.create_snapshot(PROJECT, ZONE, VM, "snap-1", **kwargs) is not None
    assert hook.create_snapshot(PROJECT, ZONE, VM, "snap-1", **kwargs) is None


def test_label_selector_lists_matching_instances_across_zones(hook: ComputeEngineHook) -> None:
    found = hook.list_instances(PROJECT, ["us-central1-a", "us-central1-b"], {"app": "shop", "tier": "web"})
    assert sorted(i.name for i in found) == ["web-1", "web-2"]


def test_lists_read_every_page(gce_sim: Any) -> None:
    paged = ComputeEngineHook(endpoint=gce_sim.base_url, page_size=1)
    found = paged.list_instances(PROJECT, ["us-central1-a"], {"app": "shop"})
    assert len(found) > 1
    assert gce_sim.call_counts()["instances.list"] == len(found)  # one call per page of one instance


def test_a_rate_limit_on_a_later_page_is_retried(gce_sim: Any) -> None:
    paged = ComputeEngineHook(endpoint=gce_sim.base_url, page_size=1, max_attempts=4, backoff_base_seconds=0.001)
    unpaged = paged.list_instances(PROJECT, ["us-central1-a"], {"app": "shop"})
    calls = gce_sim.call_counts()["instances.list"]
    gce_sim.inject(Fault(method="instances.list", status=429, times=1, after=1))
    again = paged.list_instances(PROJECT, ["us-central1-a"], {"app": "shop"})
    assert [i.name for i in again] == [i.name for i in unpaged]
    assert len(unpaged) > 1
    assert gce_sim.call_counts()["instances.list"] == 2 * calls + 1


# -- instant snapshots and snapshots.insert ---------------------------------------------------------------------

ZONAL = f"zones/{ZONE}"
REGIONAL = "regions/us-central1"


@pytest.fixture
def regional_disk(gce_sim: Any) -> str:
    gce_sim.add_instance(
        PROJECT, "us-central1-a", "ha-1", disks=["ha-1", {"name": "ha-shared", "region": "us-central1"}]
    )
    return "ha-shared"


def test_an_instant_snapshot_is_inserted_found_listed_and_deleted(hook: ComputeEngineHook) -> None:
    ref = hook.insert_instant_snapshot(PROJECT, ZONAL, VM, "wp-i", labels={"team": "blog"})
    assert ref is not None
    hook.wait_done(ref, 30)
    found = hook.find_instant_snapshot(PROJECT, ZONAL, "wp-i")
    assert found is not None
    assert found.status == "READY"
    assert [i.name for i in hook.list_instant_snapshots(PROJECT, ZONAL, {"team": "blog"})] == ["wp-i"]
    gone = hook.delete_instant_snapshot(PROJECT, ZONAL, "wp-i")
    assert gone is not None
    hook.wait_done(gone, 30)
    assert hook.find_instant_snapshot(PROJECT, ZONAL, "wp-i") is None
    assert hook.delete_instant_snapshot(PROJECT, ZONAL, "wp-i") is None


def test_an_instant_snapshot_of_an_existing_name_answers_none(hook: ComputeEngineHook) -> None:
    ref = hook.insert_instant_snapshot(PROJECT, ZONAL, VM, "wp-i", labels={})
    assert ref is not None
    hook.wait_done(ref, 30)
    assert hook.insert_instant_snapshot(PROJECT, ZONAL, VM, "wp-i", labels={}) is None


def test_an_instant_snapshot_refused_for_a_per_disk_limit_says_so(hook: ComputeEngineHook, gce_sim: Any) -> None:
    gce_sim.set_profile(Profile.fast(instant_snapshot_min_interval_seconds=3600))
    ref = hook.insert_instant_snapshot(PROJECT, ZONAL, VM, "wp-i1", labels={})
    assert ref is not None
    with pytest.raises(InstantSnapshotLimitError, match="previous instant snapshot is too recent"):
        hook.insert_instant_snapshot(PROJECT, ZONAL, VM, "wp-i2", labels={})


def test_an_instant_snapshot_past_the_per_disk_count_says_so(hook: ComputeEngineHook, gce_sim: Any) -> None:
    gce_sim.set_profile(Profile.fast(instant_snapshots_per_disk=1, instant_snapshot_min_interval_seconds=0))
    ref = hook.insert_instant_snapshot(PROJECT, ZONAL, VM, "wp-i1", labels={})
    assert ref is not None
    hook.wait_done(ref, 30)
    with pytest.raises(InstantSnapshotLimitError, match="can't have more than 1 instant snapshots"):
        hook.insert_instant_snapshot(PROJECT, ZONAL, VM, "wp-i2", labels={})


def test_a_regional_instant_snapshot_is_awaited_through_region_operations(
    hook: ComputeEngineHook, gce_sim: Any, regional_disk: str
) -> None:
    ref = hook.insert_instant_snapshot(PROJECT, REGIONAL, regional_disk, "ha-i", labels={})
    assert ref is not None
    assert (ref["zone"], ref.get("region")) == (None, "us-central1")
    hook.wait_done(ref, 30)
    assert gce_sim.call_counts()["regionOperations.wait"] >= 1
    item = {"name": "ha-i", "disk": regional_disk, "operation": ref, "kind": INSTANT, "scope": REGIONAL}
    assert hook.snapshot_states(PROJECT, [item]) == {"ha-i": "READY"}


def test_a_creating_instant_snapshot_is_not_taken_yet(hook: ComputeEngineHook, gce_sim: Any) -> None:
    gce_sim.set_profile(Profile.fast(instant_snapshot_creating_seconds=5))
    ref = hook.insert_instant_snapshot(PROJECT, ZONAL, VM, "wp-i", labels={})
    item = {"name": "wp-i", "disk": VM, "operation": ref, "kind": INSTANT, "scope": ZONAL}
    assert pending_snapshots(hook.snapshot_states(PROJECT, [item]), TAKEN) == {"wp-i": "CREATING"}


def test_a_snapshot_is_inserted_from_a_regional_disk(hook: ComputeEngineHook, regional_disk: str) -> None:
    source = resource_url(PROJECT, REGIONAL, "disks", regional_disk)
    ref = hook.insert_snapshot(PROJECT, "ha-s", labels={"team": "ha"}, storage_location=None, source_disk=source)
    assert ref is not None
    assert ref["zone"] is None  # a global operation
    hook.wait_done(ref, 30)
    snapshot = hook.find_snapshot(PROJECT, "ha-s")
    assert snapshot is not None
    assert snapshot.source_disk.endswith(f"/{REGIONAL}/disks/{regional_disk}")
    assert hook.insert_snapshot(PROJECT, "ha-s", labels={}, storage_location=None, source_disk=source) is None
