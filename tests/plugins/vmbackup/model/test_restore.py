"""The VMRestore model: a restore spec plus the policy it names make one validated Restore, or name the bad field."""

from __future__ import annotations

import re
from typing import Any

import pytest

from vmbackup.model.policy import GCE_NAME_PATTERN, LABEL_VALUE_PATTERN, PolicyError, parse_policy
from vmbackup.model.restore import Restore, parse_restore, restore_marker, restored_disk_name

ONE_VM = {"project": "demo-project", "instances": [{"name": "db-1", "zone": "us-central1-a"}]}
TWO_VMS = {
    "project": "demo-project",
    "instances": [{"name": "db-1", "zone": "us-central1-a"}, {"name": "web-1", "zone": "us-central1-b"}],
}
SELECTOR = {"project": "demo-project", "selector": {"zones": ["us-central1-a"], "matchLabels": {"app": "shop"}}}


def restore(spec: dict[str, Any], policy_spec: dict[str, Any] = ONE_VM, name: str = "db-back") -> Restore:
    return parse_restore("shop", name, {"policyName": "db", **spec}, parse_policy("shop", "db", policy_spec))


def problem_fields(spec: dict[str, Any], policy_spec: dict[str, Any] = ONE_VM, name: str = "db-back") -> list[str]:
    with pytest.raises(PolicyError) as caught:
        restore(spec, policy_spec, name)
    return caught.value.fields


def test_a_single_instance_policy_needs_no_instance() -> None:
    chosen = restore({})
    assert (chosen.instance, chosen.zone, chosen.project) == ("db-1", "us-central1-a", "demo-project")


def test_a_restore_reads_the_snapshots_where_the_policy_writes_them() -> None:
    assert restore({}).snapshots_in == "demo-project"
    separate = restore({}, {**ONE_VM, "snapshot": {"project": "demo-backups"}})
    assert (separate.project, separate.snapshots_in) == ("demo-project", "demo-backups")


def test_a_restore_of_a_policy_without_a_backup_project_keeps_its_json() -> None:
    """A restore DAG rendered before backup projects existed stays byte for byte the same."""
    assert "snapshotProject" not in restore({}).to_json()
    assert "snapshotProject" not in restore({}, {**ONE_VM, "snapshot": {"project": "demo-project"}}).to_json()


def test_the_new_vm_is_named_after_the_restore_by_default() -> None:
    assert restore({}).target_name == "db-back"
    assert restore({"targetName": "db-2"}).target_name == "db-2"


def test_the_instance_is_required_when_the_policy_has_several() -> None:
    assert problem_fields({}, TWO_VMS) == ["spec.instance"]


def test_the_instance_zone_comes_from_the_policy() -> None:
    assert restore({"instance": "web-1"}, TWO_VMS).zone == "us-central1-b"


def test_an_instance_the_policy_does_not_back_up_is_refused() -> None:
    assert problem_fields({"instance": "mail-1"}, TWO_VMS) == ["spec.instance"]


def test_a_selector_policy_needs_the_instance_named() -> None:
    assert problem_fields({}, SELECTOR) == ["spec.instance"]
    assert restore({"instance": "shop-7"}, SELECTOR).zone is None  # read from the snapshots at run time


def test_snapshot_and_snapshot_run_exclude_each_other() -> None:
    with pytest.raises(PolicyError, match="set snapshotRun or snapshot, not both"):
        restore({"snapshot": "db-1-abc", "snapshotRun": "r0123456789a"})


def test_reserved_labels_cannot_be_set_on_the_new_vm() -> None:
    assert problem_fields({"overrides": {"labels": {"vmbackup-restore": "x"}}}) == ["spec.overrides.labels"]


def test_an_unknown_field_is_named() -> None:
    assert problem_fields({"targetNmae": "x"}) == ["spec.targetNmae"]


def test_a_restore_name_that_is_not_a_compute_engine_name_needs_a_target_name() -> None:
    assert problem_fields({}, name="1st-restore") == ["spec.targetName"]
    assert restore({"targetName": "db-first"}, name="1st-restore").target_name == "db-first"


HOSTILE = ["x'; __import__('os').system('id'); '", 'a"""\nimport os', "UPPER", "a" * 64, "{{ ti }}"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    ("field", "spec"),
    [
        ("spec.instance", lambda v: {"instance": v}),
        ("spec.snapshot", lambda v: {"snapshot": v}),
        ("spec.snapshotRun", lambda v: {"snapshotRun": v}),
        ("spec.targetName", lambda v: {"targetName": v}),
        ("spec.targetZone", lambda v: {"targetZone": v}),
        ("spec.overrides.machineType", lambda v: {"overrides": {"machineType": v}}),
        ("spec.overrides.networkTags", lambda v: {"overrides": {"networkTags": [v]}}),
        ("spec.overrides.networkInterfaces", lambda v: {"overrides": {"networkInterfaces": [{"network": v}]}}),
        ("spec.overrides.serviceAccount", lambda v: {"overrides": {"serviceAccount": {"email": v}}}),
    ],
)
def test_hostile_values_are_refused_naming_the_field(value: str, field: str, spec: Any) -> None:
    assert any(f.startswith(field) for f in problem_fields(spec(value)))


def test_the_marker_is_a_label_value_even_for_long_names() -> None:
    short, long = restore_marker("shop", "db-back"), restore_marker("n" * 63, "r" * 63)
    assert short == "shop_db-back"
    assert re.fullmatch(LABEL_VALUE_PATTERN, long)
    assert len(long) <= 63
    assert long != restore_marker("n" * 63, "r" * 62 + "s")


def test_restored_disk_names_are_compute_engine_names() -> None:
    assert restored_disk_name("db-back", "db-1", boot=True) == "db-back"
    assert restored_disk_name("db-back", "db-1-data", boot=False) == "db-back-db-1-data"
    long = restored_disk_name("t" * 63, "d" * 63, boot=False)
    assert re.fullmatch(GCE_NAME_PATTERN, long)
    assert len(long) <= 63


def test_the_restore_round_trips_through_its_json() -> None:
    chosen = restore({"overrides": {"machineType": "e2-small", "networkInterfaces": [{"subnetwork": "db"}]}})
    assert Restore.from_json(chosen.to_json()) == chosen


CONFIRMED = {"mode": "InPlace", "inPlace": {"confirmReplaceDisks": True}}


def test_an_in_place_restore_needs_its_confirmation() -> None:
    with pytest.raises(PolicyError) as caught:
        restore({"mode": "InPlace"})
    ((field, message),) = caught.value.problems
    assert field == "spec.inPlace.confirmReplaceDisks"
    assert "set spec.inPlace.confirmReplaceDisks: true to confirm" in message


def test_a_confirmed_in_place_restore_restores_into_the_source_vm() -> None:
    chosen = restore(CONFIRMED)
    assert (chosen.in_place, chosen.restored_instance) == (True, "db-1")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"targetName": "db-2"}, "spec.targetName"),
        ({"targetZone": "us-central1-b"}, "spec.targetZone"),
        ({"targetProject": "dr-project"}, "spec.targetProject"),
        ({"overrides": {"machineType": "e2-small"}}, "spec.overrides.machineType"),
    ],
)
def test_an_in_place_restore_refuses_what_only_a_new_vm_has(extra: dict[str, Any], field: str) -> None:
    assert problem_fields({**CONFIRMED, **extra}) == [field]


def test_in_place_settings_need_the_in_place_mode() -> None:
    assert problem_fields({"inPlace": {"confirmReplaceDisks": True}}) == ["spec.inPlace"]


DR_NIC = {"network": "dr-net", "subnetwork": "dr-subnet"}


def test_a_restore_into_another_project_creates_there() -> None:
    chosen = restore({"targetProject": "dr-project", "overrides": {"networkInterfaces": [DR_NIC]}})
    assert (chosen.project, chosen.target_project) == ("demo-project", "dr-project")


def test_the_target_project_defaults_to_the_policys() -> None:
    assert restore({}).target_project == "demo-project"


def test_another_project_needs_its_network_named() -> None:
    with pytest.raises(PolicyError) as caught:
        restore({"targetProject": "dr-project"})
    ((field, message),) = caught.value.problems
    assert field == "spec.overrides.networkInterfaces"
    assert "the source VM's network is in project demo-project" in message


def test_a_subnetwork_of_another_region_than_the_target_zone_is_refused() -> None:
    subnet = "projects/dr-project/regions/us-east1/subnetworks/dr-subnet"
    spec = {
        "targetProject": "dr-project",
        "targetZone": "europe-west1-b",
        "overrides": {"networkInterfaces": [{"network": "dr-net", "subnetwork": subnet}]},
    }
    with pytest.raises(PolicyError) as caught:
        restore(spec)
    ((field, message),) = caught.value.problems
    assert field == "spec.overrides.networkInterfaces[0].subnetwork"
    assert "is in region us-east1, but spec.targetZone europe-west1-b is in region europe-west1" in message
