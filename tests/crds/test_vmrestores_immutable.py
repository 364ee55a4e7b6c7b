"""A VMRestore's spec cannot change after creation: the CRD's transition rule, and its estimated CEL cost."""

from __future__ import annotations

import copy
import math
from typing import Any

import celpy
import yaml

from controller import restore_crd
from tests.fixtures.tools import REPO_ROOT, CustomResourceSchema

CRD = yaml.safe_load((REPO_ROOT / "crds" / "vmrestores.yaml").read_text())
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
SCHEMA = CustomResourceSchema(CRD)

# The API server refuses a CRD whose rule's estimated cost exceeds this (apiextensions-apiserver,
# pkg/apis/apiextensions/validation: StaticEstimatedCostLimit, "the largest-allowed static CEL cost on a
# per-expression basis"); all rules of a CRD together may cost up to StaticEstimatedCRDCostLimit = 100,000,000.
STATIC_ESTIMATED_COST_LIMIT = 10_000_000
STRING_TRAVERSAL_COST_FACTOR = 0.1  # cel-go common/cost.go


def a_restore(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vmbackup.dev/v1alpha1",
        "kind": "VMRestore",
        "metadata": {"name": "wordpress-restored", "namespace": "default"},
        "spec": {"policyName": "wordpress", **spec},
    }


def test_creating_a_restore_is_not_a_transition() -> None:
    assert SCHEMA.errors(a_restore(snapshotRun="r1")) == []


def test_an_update_that_keeps_the_spec_is_accepted() -> None:
    stored = a_restore(snapshotRun="r1")
    updated = copy.deepcopy(stored)
    updated["metadata"]["labels"] = {"team": "ops"}
    updated["status"] = {"phase": "Succeeded"}
    assert SCHEMA.errors(updated, old=stored) == []


def test_a_spec_change_after_creation_is_refused_with_the_fix() -> None:
    stored = a_restore(snapshotRun="r1")
    changed = a_restore(snapshotRun="r2")
    assert SCHEMA.errors(changed, old=stored) == [f".spec: {restore_crd.IMMUTABLE_SPEC_RULE['message']}"]


def test_adding_a_defaulted_field_with_its_default_is_no_change() -> None:
    stored = a_restore()
    explicit = a_restore(keepDisksOnFailure=False)
    assert SCHEMA.errors(explicit, old=stored) == []


def _size(schema: dict[str, Any]) -> float:
    """The largest size CEL may assume for a value of this schema (Kubernetes' DeclType.MaxElements):
    maxLength for strings, maxItems / maxProperties for lists and maps. An object with properties is estimated
    here by its number of properties, an upper bound of the API server's own estimate."""
    kind = schema["type"]
    if kind == "string":
        return float(schema.get("maxLength", math.inf))
    if kind == "array":
        return float(schema.get("maxItems", math.inf))
    if "additionalProperties" in schema:
        return float(schema.get("maxProperties", math.inf))
    return float(len(schema.get("properties", {})))


def estimated_cost(rule: str, schema: dict[str, Any]) -> float:
    """cel-go's static estimate (checker/cost.go) for the one rule shape used here, `self == oldSelf`: one unit
    per identifier, plus the smaller operand's maximum size times the string traversal factor. The rule sits on
    .spec, which is in no list, so its cardinality is 1."""
    assert rule == "self == oldSelf", f"this estimate only knows `self == oldSelf`, not {rule!r}"
    celpy.Environment().compile(rule)  # it is valid CEL
    identifiers = 2
    return identifiers + math.ceil(_size(schema) * STRING_TRAVERSAL_COST_FACTOR)


def test_the_immutability_rule_is_on_the_whole_spec() -> None:
    rules = [r["rule"] for r in SPEC_SCHEMA["x-kubernetes-validations"]]
    assert restore_crd.IMMUTABLE_SPEC_RULE["rule"] in rules


def test_its_estimated_cost_is_far_within_the_api_servers_limit() -> None:
    cost = estimated_cost(restore_crd.IMMUTABLE_SPEC_RULE["rule"], SPEC_SCHEMA)
    assert cost < STATIC_ESTIMATED_COST_LIMIT / 1000, cost
