"""Server-side tables, as `kubectl get` asks for them: a CRD's additionalPrinterColumns, rendered by the server.

kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns the server
returns; for a custom resource these are Name plus the CRD's additionalPrinterColumns, each cell read with its
JSONPath, a `date` cell shown as the time since ("5m", as kube-apiserver's tableconvertor does with
duration.HumanDuration), a missing value as an empty cell. A server that returns a plain list gets only NAME and
AGE from kubectl, so without this `kubectl get vmbackuppolicies` on the demo would not print what the README shows.
(https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables,
https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from controller.vmbackupctl.render import human_duration, parse_time

NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
# One step of the JSONPath subset CRD printer columns use: `.field` or `[?(@.key=="value")]`.
STEP = re.compile(r'\.(?P<field>[A-Za-z0-9_-]+)|\[\?\(@\.(?P<key>[A-Za-z0-9_-]+)=="(?P<value>[^"]*)"\)\]')


def printer_columns(paths: Iterable[Path]) -> dict[str, list[dict[str, Any]]]:
    """`group/version/plural` -> its additionalPrinterColumns (Age alone when a CRD names none, as the server does)."""
    columns: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                key = f"{spec['group']}/{version['name']}/{spec['names']['plural']}"
                columns[key] = list(version.get("additionalPrinterColumns") or [AGE_COLUMN])
    return columns


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def read_path(obj: Any, json_path: str) -> Any:
    """The first value a printer column's JSONPath finds, or None."""
    values = [obj]
    for step in STEP.finditer(json_path):
        found: list[Any] = []
        for value in values:
            if step.group("field") and isinstance(value, Mapping) and step.group("field") in value:
                found.append(value[step.group("field")])
            elif step.group("key") and isinstance(value, list):
                found += [
                    v for v in value if isinstance(v, Mapping) and v.get(step.group("key")) == step.group("value")
                ]
        values = found
    return values[0] if values else None


def cell(column: Mapping[str, Any], value: Any, now: datetime) -> Any:
    if value is None:
        return None
    if column.get("type") == "date":
        moment = parse_time(value)
        return "<invalid>" if moment is None else human_duration((now - moment).total_seconds())
    if column.get("type") == "string":
        return value if isinstance(value, str) else json.dumps(value)
    return value


def table(columns: Sequence[Mapping[str, Any]], objects: Iterable[Mapping[str, Any]], version: str) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of the objects; each row carries the object's metadata (kubectl's NAMESPACE column)."""
    now = datetime.now(UTC)
    definitions = [NAME_COLUMN] + [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    rows = [
        {
            "cells": [obj.get("metadata", {}).get("name")]
            + [cell(c, read_path(obj, c["jsonPath"]), now) for c in columns],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": dict(obj.get("metadata") or {}),
            },
        }
        for obj in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
