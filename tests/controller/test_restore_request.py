"""What `vmbackupctl restore` submits: a VMRestore the CRD and the controller's model both accept."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import yaml

from controller.restore_request import default_restore_name, restore_collection_path, restore_object
from tests.fixtures.tools import REPO_ROOT, CustomResourceSchema
from vmbackup.model.policy import GCE_NAME_PATTERN, parse_policy
from vmbackup.model.restore import parse_restore

SCHEMA = CustomResourceSchema(yaml.safe_load((REPO_ROOT / "crds" / "vmrestores.yaml").read_text()))
POLICY = parse_policy(
    "shop",
    "db",
    {"project": "demo-project", "instances": [{"name": "db-1", "zone": "us-central1-a"}]},
)
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_the_policy_alone_restores_its_newest_backup_under_a_dated_name() -> None:
    obj = restore_object("shop", "db", now=NOON)
    assert obj["spec"] == {"policyName": "db"}
    assert obj["metadata"] == {"name": "db-restore-20261125-1200", "namespace": "shop"}
    assert SCHEMA.errors(obj) == []


def test_as_names_the_restore_and_the_new_vm() -> None:
    obj = restore_object("shop", "db", instance="db-1", as_name="db-1-copy")
    assert obj["metadata"]["name"] == "db-1-copy"
    assert obj["spec"] == {"policyName": "db", "instance": "db-1", "targetName": "db-1-copy"}


def test_a_snapshot_name_or_a_run_picks_the_backup() -> None:
    assert restore_object("shop", "db", snapshot="db-1-3f9c2a1b7d4e")["spec"]["snapshot"] == "db-1-3f9c2a1b7d4e"
    assert restore_object("shop", "db", snapshot="r0123456789a")["spec"]["snapshotRun"] == "r0123456789a"


def test_the_object_is_one_the_controller_accepts() -> None:
    obj = restore_object("shop", "db", instance="db-1", snapshot="db-1-3f9c2a1b7d4e", now=NOON)
    restore = parse_restore("shop", obj["metadata"]["name"], obj["spec"], POLICY)
    assert restore.target_name == "db-1-restore-20261125-1200"


def test_default_names_stay_valid_for_long_instance_names() -> None:
    name = default_restore_name("db", "i" * 63, NOON)
    assert re.fullmatch(GCE_NAME_PATTERN, name)
    assert len(name) <= 63


def test_the_collection_path_is_the_namespaced_vmrestores() -> None:
    assert restore_collection_path("shop") == "/apis/vmbackup.dev/v1alpha1/namespaces/shop/vmrestores"


def test_an_in_place_request_is_confirmed_and_keeps_the_vm_name() -> None:
    obj = restore_object("shop", "db", instance="db-1", as_name="db-1-back", in_place=True)
    restore = parse_restore("shop", obj["metadata"]["name"], obj["spec"], POLICY)
    assert (restore.in_place, restore.restored_instance, obj["metadata"]["name"]) == (True, "db-1", "db-1-back")
    assert SCHEMA.errors(obj) == []


def test_placement_flags_become_the_target_fields_of_the_vmrestore() -> None:
    from argparse import Namespace

    from controller.restore_request import placement_spec

    flags = Namespace(
        target_project="dr-project",
        target_zone="europe-west1-b",
        network="dr-net",
        subnet="dr-subnet",
        external_ip=False,
        machine_type=None,
    )
    obj = restore_object("shop", "db", instance="db-1", as_name="db-dr", placement=placement_spec(flags))
    assert obj["spec"]["targetProject"] == "dr-project"
    assert obj["spec"]["overrides"] == {"networkInterfaces": [{"network": "dr-net", "subnetwork": "dr-subnet"}]}
    assert SCHEMA.errors(obj) == []
    assert parse_restore("shop", "db-dr", obj["spec"], POLICY).target_project == "dr-project"
