"""The Namespaces of the local Kubernetes API: kmock's path parser cannot address /api/v1/namespaces itself.

kmock reads `/api/v1/namespaces/<name>` as the start of a namespaced path, so it can neither list nor create
Namespaces. The demo must create the namespaces its examples use on a new cluster, and the local API must
refuse objects in a namespace that does not exist as a real one does, so this small store serves
`GET|POST /api/v1/namespaces` and `GET /api/v1/namespaces/<name>` before kmock sees the request.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp.web

# What `kubectl get namespaces` lists on a new cluster: the namespaces the control plane creates itself.
NEW_CLUSTER_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/(?P<name>[^/]+))?/?$")
# metadata.name of a Namespace: an RFC 1123 label (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def status(code: int, reason: str, message: str, **details: Any) -> aiohttp.web.Response:
    """A metav1.Status body, as kube-apiserver answers an error."""
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure"}
    body |= {"code": code, "reason": reason, "message": message, "details": details}
    return aiohttp.web.json_response(body, status=code)


class NamespaceStore:
    """Namespaces by name; each create takes a resourceVersion from the API server's counter."""

    def __init__(self, names: Iterable[str], next_version: Callable[[], str]) -> None:
        self.next_version = next_version
        self.objects: dict[str, dict[str, Any]] = {}
        for name in names:
            self.add(name)

    def __contains__(self, name: object) -> bool:
        return name in self.objects

    def add(self, name: str) -> dict[str, Any]:
        self.objects[name] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid4()),
                "resourceVersion": self.next_version(),
                "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        return self.objects[name]

    async def serve(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        """The answer to a Namespace request; None for any other request (kmock serves it)."""
        match = NAMESPACE_PATH.match(raw.path)
        if match is None or raw.query.get("watch") in ("true", "1"):
            return None
        name = match.group("name")
        if raw.method == "GET" and name is None:
            items = list(self.objects.values())
            return aiohttp.web.json_response(
                {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": ""}, "items": items}
            )
        if raw.method == "GET":
            if name not in self.objects:
                return status(404, "NotFound", f'namespaces "{name}" not found', name=name, kind="namespaces")
            return aiohttp.web.json_response(self.objects[name])
        if raw.method == "POST" and name is None:
            if "protobuf" in raw.content_type:  # kubectl's typed clients may send protobuf, which this cannot read
                return status(415, "UnsupportedMediaType", "the local API reads JSON only, not protobuf")
            return self._create(json.loads(await raw.read() or b"{}"))
        return status(405, "MethodNotAllowed", f"the local API does not {raw.method} {raw.path}")

    def _create(self, body: dict[str, Any]) -> aiohttp.web.Response:
        name = str((body.get("metadata") or {}).get("name") or "")
        if not DNS_LABEL.match(name):
            return status(
                422,
                "Invalid",
                f'Namespace "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase RFC 1123 label '
                "must consist of lower case alphanumeric characters or '-'",
                name=name,
                kind="Namespace",
            )
        if name in self.objects:
            return status(409, "AlreadyExists", f'namespaces "{name}" already exists', name=name, kind="namespaces")
        return aiohttp.web.json_response(self.add(name), status=201)
