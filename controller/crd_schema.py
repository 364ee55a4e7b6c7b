"""From a pydantic model to a Kubernetes structural schema: the machinery both CRDs are generated with.

controller/crdgen.py says what each CRD holds (CEL rules, status, printer columns); this module only
translates the shared models' JSON Schema into what the API server accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from vmbackup.model.policy import RESERVED_LABEL_PREFIX

Schema = dict[str, Any]
Rule = dict[str, str]  # one CEL rule: rule, message and optionally fieldPath
REPO_ROOT = Path(__file__).resolve().parent.parent

# A resource's name becomes part of its DAG id: a DNS label (no dots), as parse_policy (and parse_restore) demand.
ROOT_RULES: list[Rule] = [
    {
        "rule": "size(self.metadata.name) <= 63 && !self.metadata.name.contains('.')",
        "message": "metadata.name must be a DNS label: at most 63 characters, no dots (it becomes part of the DAG id)",
    }
]

# Label maps (a policy's snapshot labels, a restore's overrides): keys are checked by O(1) functions only (crdgen.py).
LABEL_KEY_RULES: list[Rule] = [
    {
        "rule": f"self.all(k, !k.startsWith('{RESERVED_LABEL_PREFIX}'))",
        "message": f"label keys starting with '{RESERVED_LABEL_PREFIX}' are reserved for the operator",
    },
    {"rule": "self.all(k, size(k) <= 63)", "message": "label keys are at most 63 characters"},
]


def model_spec_schema(
    spec_model: type[BaseModel],
    extra_constraints: Mapping[tuple[str, ...], Schema],
    cel_rules: Mapping[tuple[str, ...], list[Schema]],
) -> Schema:
    """A .spec schema: the model's, plus CEL rules and the constraints the model keeps in validators."""
    raw = spec_model.model_json_schema(by_alias=True)
    schema = _structural(raw, raw.get("$defs", {}), _models(spec_model), model_name=spec_model.__name__)
    for path, extra in extra_constraints.items():
        _at(schema, path).update(copy.deepcopy(extra))
    for path, rules in cel_rules.items():
        _at(schema, path)["x-kubernetes-validations"] = copy.deepcopy(rules)
    return schema


def condition_schema() -> Schema:
    return {
        "type": "object",
        "description": "One aspect of the policy's state, in the shape of metav1.Condition.",
        "required": ["type", "status", "lastTransitionTime", "reason", "message"],
        "properties": {
            "type": {
                "type": "string",
                "maxLength": 316,
                "description": "Ready, LastBackupSucceeded, Suspended, DagImportError or AirflowReachable.",
            },
            "status": {
                "type": "string",
                "enum": ["True", "False", "Unknown"],
                "description": "Whether the condition holds.",
            },
            "reason": {
                "type": "string",
                "maxLength": 1024,
                "description": "One CamelCase word saying why the condition has its status.",
            },
            "message": {
                "type": "string",
                "maxLength": 32768,
                "description": "What happened, for a person (e.g. Airflow's import error).",
            },
            "lastTransitionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the status last changed.",
            },
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "description": "The .metadata.generation the condition was set for.",
            },
        },
    }


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Model classes by the name pydantic gives their $defs entries: the root and every model its fields reach, in
    whichever module each is defined (the policy's parts live in several)."""
    found: dict[str, type[BaseModel]] = {}
    pending = [root]
    while pending:
        model = pending.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for field in model.model_fields.values():
            pending.extend(_nested_models(field.annotation))
    return found


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type names, through Optional, lists, dicts and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _nested_models(arg)]


def _factory_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Defaults given by default_factory, which JSON Schema generation leaves out.

    Nested models are dumped with exclude_defaults: the schema's own nested defaults fill the rest in,
    so the API server stores the same values the model would use.
    """
    defaults: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.default_factory is None:
            continue
        value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        defaults[field.alias or name] = value
    return defaults


def _structural(
    node: Schema, defs: Schema, models: dict[str, type[BaseModel]], model_name: str | None = None
) -> Schema:
    """Turn pydantic's JSON Schema into a Kubernetes structural schema."""
    node = dict(node)
    description = node.pop("description", None)
    default = node.pop("default", None)
    node.pop("title", None)
    node, description, model_name = _resolved(node, description, defs, model_name)
    out = _shape(node, defs, models, model_name)
    if description:
        out = {"description": " ".join(description.split()), **out}
    if default is not None:
        out["default"] = default
    return out


def _resolved(
    node: Schema, description: str | None, defs: Schema, model_name: str | None
) -> tuple[Schema, str | None, str | None]:
    """An Optional[X] as X, a $ref as the model it names (descriptions of both kept): node, description, model."""
    if "anyOf" in node:  # Optional[X]: absent means None; Kubernetes drops nulls of non-nullable fields.
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if sorted(v.get("type", "") for v in variants) == ["integer", "string"]:  # a count or a percentage
            variants = [{"x-kubernetes-int-or-string": True}]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {variants}")
        node.update(variants[0])
    if "$ref" in node:
        model_name = node.pop("$ref").rsplit("/", 1)[-1]
        target = dict(defs[model_name])
        doc = target.pop("description", None)
        if doc and description and doc != description:
            description = f"{description} {doc}"
        description = description or doc
        node = {**target, **node}
        node.pop("title", None)
    return node, description, model_name


def _shape(node: Schema, defs: Schema, models: dict[str, type[BaseModel]], model_name: str | None) -> Schema:
    """The structural form of a resolved node: an object's properties, a string map, an array, or a scalar."""
    out: Schema = {}
    if node.get("type") == "object" and "properties" in node:
        out["type"] = "object"
        model_defaults = _factory_defaults(models[model_name]) if model_name else {}
        properties = {}
        for key, child in node["properties"].items():
            child_schema = _structural(child, defs, models)
            if key in model_defaults and "default" not in child_schema:
                child_schema["default"] = model_defaults[key]
            properties[key] = child_schema
        if node.get("required"):
            out["required"] = list(node["required"])
        out["properties"] = properties
    elif node.get("type") == "object":  # a string map: keys are checked by CEL and the model
        out["type"] = "object"
        values = list(node.get("patternProperties", {}).values()) or [node.get("additionalProperties", {})]
        out["additionalProperties"] = _structural(values[0], defs, models)
        for bound in ("minProperties", "maxProperties"):
            if bound in node:
                out[bound] = node[bound]
    elif node.get("type") == "array":
        out["type"] = "array"
        out["items"] = _structural(node["items"], defs, models)
        for bound in ("minItems", "maxItems"):
            if bound in node:
                out[bound] = node[bound]
    else:
        for key in (
            "type",
            "enum",
            "pattern",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "format",
            "x-kubernetes-int-or-string",
        ):
            if key in node:
                out[key] = node[key]
    return out


def _at(schema: Schema, path: tuple[str, ...]) -> Schema:
    node = schema
    for part in path:
        node = node["items"] if part == "[]" else node["properties"][part]
    return node
