"""Resolving a policy's instances and disks at run time, against the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from vmbackup.backup.resolution import NO_TIER, disk_scope, resolve_targets
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model.policy import parse_policy

PROJECT = "demo-project"
RUN = "manual__2026-01-31T02:00:00+00:00"


@pytest.fixture
def hook(gce_sim: Any) -> ComputeEngineHook:
    return ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.001)


def resolve(hook: ComputeEngineHook, spec: dict[str, Any]) -> Any:
    return resolve_targets(parse_policy("team-a", "p", {"project": PROJECT, **spec}), RUN, hook)


def test_default_is_every_attached_persistent_disk(hook: ComputeEngineHook) -> None:
    found = resolve(hook, {"instances": [{"name": "db-1", "zone": "us-central1-a"}]})
    (target,) = found["groups"][NO_TIER]
    assert [d["name"] for d in target["disks"]] == ["db-1", "db-1-data"]


def test_a_disk_subset_is_honoured(hook: ComputeEngineHook) -> None:
    found = resolve(hook, {"instances": [{"name": "db-1", "zone": "us-central1-a", "disks": ["db-1-data"]}]})
    (target,) = found["groups"][NO_TIER]
    assert [d["name"] for d in target["disks"]] == ["db-1-data"]


def test_an_unattached_disk_is_an_error_that_names_the_fix(hook: ComputeEngineHook) -> None:
    found = resolve(hook, {"instances": [{"name": "db-1", "zone": "us-central1-a", "disks": ["nope"]}]})
    (error,) = found["errors"]
    assert "nope" in error["reason"]
    assert "spec.instances[].disks" in error["reason"]
    assert found["groups"][NO_TIER] == []


def test_a_missing_instance_is_an_error_and_the_others_still_run(hook: ComputeEngineHook) -> None:
    spec = {"instances": [{"name": "ghost", "zone": "us-central1-a"}, {"name": "app-1", "zone": "us-central1-a"}]}
    found = resolve(hook, spec)
    assert [e["instance"] for e in found["errors"]] == ["ghost"]
    assert [t["instance"] for t in found["groups"][NO_TIER]] == ["app-1"]


def test_selector_sorts_instances_into_tiers(hook: ComputeEngineHook) -> None:
    spec = {
        "selector": {"zones": ["us-central1-a", "us-central1-b"], "matchLabels": {"app": "shop"}, "tierLabel": "tier"},
        "tiers": ["web", "db"],
    }
    found = resolve(hook, spec)
    assert [t["instance"] for t in found["groups"]["web"]] == ["web-1", "web-2"]
    assert [t["instance"] for t in found["groups"]["db"]] == ["db-1"]
    assert [s["instance"] for s in found["skipped"]] == ["app-1"]


def test_selector_picks_up_a_vm_created_after_the_policy(hook: ComputeEngineHook, gce_sim: Any) -> None:
    spec = {"selector": {"zones": ["us-central1-f"], "matchLabels": {"app": "new"}}}
    assert resolve(hook, spec)["groups"][NO_TIER] == []
    gce_sim.add_instance(PROJECT, "us-central1-f", "fresh-1", labels={"app": "new"})
    assert [t["instance"] for t in resolve(hook, spec)["groups"][NO_TIER]] == ["fresh-1"]


def test_snapshot_names_are_fixed_for_the_run(hook: ComputeEngineHook) -> None:
    spec = {"instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}]}
    first, again = resolve(hook, spec), resolve(hook, spec)
    assert first["groups"][NO_TIER][0]["disks"] == again["groups"][NO_TIER][0]["disks"]


def seed_regional(gce_sim: Any) -> None:
    gce_sim.add_instance(
        PROJECT, "us-central1-a", "ha-1", disks=["ha-1", {"name": "ha-shared", "region": "us-central1"}]
    )


def test_a_regional_disk_is_a_target_disk_in_its_region(hook: ComputeEngineHook, gce_sim: Any) -> None:
    seed_regional(gce_sim)
    found = resolve(hook, {"instances": [{"name": "ha-1", "zone": "us-central1-a"}]})
    (target,) = found["groups"][NO_TIER]
    assert [(d["name"], d["zone"], d.get("regional", False)) for d in target["disks"]] == [
        ("ha-1", "us-central1-a", False),
        ("ha-shared", "us-central1", True),
    ]
    assert [disk_scope(d) for d in target["disks"]] == ["zones/us-central1-a", "regions/us-central1"]


def test_a_regional_disk_can_be_asked_for_by_name(hook: ComputeEngineHook, gce_sim: Any) -> None:
    seed_regional(gce_sim)
    found = resolve(hook, {"instances": [{"name": "ha-1", "zone": "us-central1-a", "disks": ["ha-shared"]}]})
    (target,) = found["groups"][NO_TIER]
    assert [d["name"] for d in target["disks"]] == ["ha-shared"]
    assert found["errors"] == []


def test_asking_for_a_disk_that_is_not_attached_names_the_attached_ones(hook: ComputeEngineHook, gce_sim: Any) -> None:
    seed_regional(gce_sim)
    found = resolve(hook, {"instances": [{"name": "ha-1", "zone": "us-central1-a", "disks": ["ha-gone"]}]})
    (error,) = found["errors"]
    assert "ha-gone are not attached" in error["reason"]
    assert "attached: ha-1, ha-shared" in error["reason"]
    assert "spec.instances[].disks" in error["reason"]


def test_a_vm_without_a_reservation_is_skipped_when_the_policy_requires_one(hook: ComputeEngineHook) -> None:
    spec = {"instances": [{"name": "app-1", "zone": "us-central1-a"}], "stop": {"requireReservation": True}}
    found = resolve(hook, spec)
    (skipped,) = found["skipped"]
    assert (skipped["instance"], found["groups"][NO_TIER]) == ("app-1", [])
    assert "spec.stop.requireReservation" in skipped["reason"]


def test_a_vm_without_local_ssd_carries_no_discard_key(hook: ComputeEngineHook) -> None:
    spec = {"instances": [{"name": "app-1", "zone": "us-central1-a"}], "stop": {"discardLocalSsd": True}}
    (target,) = resolve(hook, spec)["groups"][NO_TIER]
    assert "discard_local_ssd" not in target


def test_a_linux_vm_in_guest_flush_mode_is_backed_up_with_a_warning(hook: ComputeEngineHook) -> None:
    found = resolve(hook, {"instances": [{"name": "app-1", "zone": "us-central1-a"}], "consistency": "guestFlush"})
    assert [t["instance"] for t in found["groups"][NO_TIER]] == ["app-1"]
    (warning,) = found["warnings"]
    assert warning["instance"] == "app-1"
    assert "guest agent" in warning["reason"]


def seed_local_ssd(gce_sim: Any) -> None:
    gce_sim.add_instance(PROJECT, "us-central1-f", "cache-1", local_ssds=1)


def test_a_vm_with_a_local_ssd_is_skipped_in_stop_mode(hook: ComputeEngineHook, gce_sim: Any) -> None:
    seed_local_ssd(gce_sim)
    found = resolve(hook, {"instances": [{"name": "cache-1", "zone": "us-central1-f"}]})
    (skipped,) = found["skipped"]
    assert (skipped["instance"], found["groups"][NO_TIER]) == ("cache-1", [])
    assert "spec.stop.discardLocalSsd" in skipped["reason"]


def test_with_discard_local_ssd_the_target_says_so(hook: ComputeEngineHook, gce_sim: Any) -> None:
    seed_local_ssd(gce_sim)
    spec = {"instances": [{"name": "cache-1", "zone": "us-central1-f"}], "stop": {"discardLocalSsd": True}}
    (target,) = resolve(hook, spec)["groups"][NO_TIER]
    assert target.get("discard_local_ssd") is True


def test_a_local_ssd_is_never_a_disk_to_snapshot(hook: ComputeEngineHook, gce_sim: Any) -> None:
    seed_local_ssd(gce_sim)
    (target,) = resolve(hook, {"instances": [{"name": "cache-1", "zone": "us-central1-f"}], "consistency": "none"})[
        "groups"
    ][NO_TIER]
    assert [d["name"] for d in target["disks"]] == ["cache-1"]


def seed_affinity(gce_sim: Any, name: str, affinity: dict[str, Any]) -> None:
    """A VM with a reservation affinity. The simulator models no reservations: the field is set on its record of the
    instance and served by instances.get as Compute Engine serves it."""
    gce_sim.add_instance(PROJECT, "us-central1-f", name)
    gce_sim.world.instances[(PROJECT, "us-central1-f", name)].extra["reservationAffinity"] = affinity


def test_a_vm_on_a_specific_reservation_is_backed_up_when_one_is_required(
    hook: ComputeEngineHook, gce_sim: Any
) -> None:
    affinity = {"consumeReservationType": "SPECIFIC_RESERVATION", "key": "compute.googleapis.com/reservation-name"}
    seed_affinity(gce_sim, "reserved-1", {**affinity, "values": ["db-capacity"]})
    spec = {"instances": [{"name": "reserved-1", "zone": "us-central1-f"}], "stop": {"requireReservation": True}}
    found = resolve(hook, spec)
    assert ([t["instance"] for t in found["groups"][NO_TIER]], found["skipped"]) == (["reserved-1"], [])


def test_any_reservation_is_no_reservation_when_one_is_required(hook: ComputeEngineHook, gce_sim: Any) -> None:
    seed_affinity(gce_sim, "maybe-1", {"consumeReservationType": "ANY_RESERVATION"})
    spec = {"instances": [{"name": "maybe-1", "zone": "us-central1-f"}], "stop": {"requireReservation": True}}
    (skipped,) = resolve(hook, spec)["skipped"]
    assert "reservationAffinity ANY_RESERVATION" in skipped["reason"]
