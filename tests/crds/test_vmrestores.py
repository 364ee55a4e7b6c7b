"""The VMRestore CRD: generated from the restore model, valid for Kubernetes, and agreeing with the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from controller import crdgen
from tests.fixtures.tools import KUBERNETES_VERSION, REPO_ROOT, CustomResourceSchema
from vmbackup.model.policy import PolicyError, parse_policy
from vmbackup.model.restore import parse_restore

CRD_FILE = REPO_ROOT / "crds" / "vmrestores.yaml"
CRD = yaml.safe_load(CRD_FILE.read_text())
EXAMPLES = sorted((REPO_ROOT / "crds" / "examples").glob("restore-*.yaml"))
POLICIES = {
    doc["metadata"]["name"]: doc
    for doc in (yaml.safe_load(p.read_text()) for p in (REPO_ROOT / "crds" / "examples").glob("*.yaml"))
    if doc["kind"] == "VMBackupPolicy"
}


IN_PLACE: dict[str, Any] = {"mode": "InPlace", "inPlace": {"confirmReplaceDisks": True}}


@pytest.fixture(scope="module")
def schema() -> CustomResourceSchema:
    return CustomResourceSchema(CRD)


def a_restore(spec: dict[str, Any], name: str = "wordpress-restored") -> dict[str, Any]:
    return {
        "apiVersion": "vmbackup.dev/v1alpha1",
        "kind": "VMRestore",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def model_problems(obj: dict[str, Any]) -> list[str]:
    policy_doc = POLICIES[obj["spec"]["policyName"]]
    policy = parse_policy("default", policy_doc["metadata"]["name"], policy_doc["spec"])
    try:
        parse_restore("default", obj["metadata"]["name"], obj["spec"], policy)
    except PolicyError as exc:
        return exc.fields
    return []


def test_committed_crds_are_what_the_model_generates() -> None:
    expected = crdgen.render_restore()
    for path in crdgen.RESTORE_CRD_PATHS:
        assert path.read_text() == expected, f"{path} drifted from the model: run `python -m controller.crdgen`"


def test_crd_is_a_valid_customresourcedefinition() -> None:
    kubernetes_validate.validate(CRD, KUBERNETES_VERSION, strict=True)


def test_crd_has_a_status_subresource_and_the_printer_columns() -> None:
    version = CRD["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Instance", "Snapshot", "Waiting For", "Since", "Age", "Message"]
    assert (columns["Waiting For"]["jsonPath"], columns["Since"]["type"]) == (".status.waitingFor", "date")
    assert columns["Message"]["priority"] == 1
    assert version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["phase"]["enum"] == [
        "Pending",
        "CreatingDisks",
        "CreatingInstance",
        "ReplacingDisks",
        "Succeeded",
        "Failed",
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted_by_the_crd_and_the_model(example: Path, schema: CustomResourceSchema) -> None:
    obj = yaml.safe_load(example.read_text())
    assert schema.errors(obj) == []
    assert model_problems(obj) == []


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"policyName": "wordpress", "snapshot": "a-1", "snapshotRun": "r1"}, ".spec"),
        ({"policyName": "wordpress", "targetName": "Web_1"}, ".spec.targetName"),
        ({"policyName": "wordpress", "overrides": {"labels": {"vmbackup-x": "y"}}}, ".spec.overrides.labels"),
        ({"policyName": "wordpress", "overrides": {"machineType": "E2"}}, ".spec.overrides.machineType"),
        ({"policyName": "wordpress", "keepDisksOnFailure": "yes"}, ".spec.keepDisksOnFailure"),
        ({"policyName": "wordpress", "mode": "InPlace"}, ".spec"),
        ({"policyName": "wordpress", "mode": "InPlace", "inPlace": {"confirmReplaceDisks": False}}, ".spec"),
        ({"policyName": "wordpress", "inPlace": {"confirmReplaceDisks": True}}, ".spec"),
        ({"policyName": "wordpress", **IN_PLACE, "targetName": "web-2"}, ".spec"),
        ({"policyName": "wordpress", **IN_PLACE, "overrides": {"machineType": "e2-small"}}, ".spec"),
        ({"policyName": "wordpress", "mode": "Elsewhere"}, ".spec.mode"),
    ],
)
def test_crd_and_model_both_refuse(spec: dict[str, Any], field: str, schema: CustomResourceSchema) -> None:
    obj = a_restore(spec)
    assert any(error.startswith(field) for error in schema.errors(obj)), schema.errors(obj)
    assert model_problems(obj)


def test_an_in_place_restore_without_confirmation_is_refused_naming_the_field(schema: CustomResourceSchema) -> None:
    obj = a_restore({"policyName": "wordpress", "mode": "InPlace"})

    assert any("spec.inPlace.confirmReplaceDisks: required for mode InPlace" in e for e in schema.errors(obj))
    assert model_problems(obj) == ["spec.inPlace.confirmReplaceDisks"]


def test_a_confirmed_in_place_restore_is_accepted(schema: CustomResourceSchema) -> None:
    obj = a_restore({"policyName": "wordpress", **IN_PLACE})

    assert schema.errors(obj) == []
    assert model_problems(obj) == []


def test_the_crd_defaults_what_the_model_defaults(schema: CustomResourceSchema) -> None:
    defaulted = schema.defaulted(a_restore({"policyName": "wordpress"}))["spec"]
    assert defaulted["keepDisksOnFailure"] is False
    assert defaulted["timeouts"] == {"disksSeconds": 3600, "instanceSeconds": 900}
