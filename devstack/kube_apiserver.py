"""kmock's Kubernetes emulator with the object bookkeeping of a real API server.

kmock (by kopf's author) merges every write into a plain dict and keeps no resourceVersion ("If you need
special field treatment, inherit and implement for your cases", its KubernetesEmulator docstring). Clients
rely on what a real server adds, so this subclass does it for every resource, per the API conventions
(https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions and
https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md):

- every object gets uid, creationTimestamp, generation 1 and a resourceVersion when created (and a name from
  metadata.generateName when it has none, as kopf's Events do); every write that
  changes it gets a new resourceVersion, and generation grows when anything but metadata and status changes;
- a PUT, or a merge patch carrying metadata.resourceVersion, whose version is not the stored one is refused
  with 409 Conflict; a create of an existing name with 409 AlreadyExists;
- a JSON patch (kopf's finalizer and annotation writes start with a `test` of metadata.resourceVersion) is
  applied whole or not at all; a failed `test` is 422 Invalid, as kube-apiserver answers it since
  kubernetes/kubernetes#68346;
- lists carry kind (`<Kind>List`), apiVersion and a resourceVersion, and their items kind and apiVersion
  (kubectl refuses a list without them: "Object 'Kind' is missing");
- with ``namespaces`` given, a namespaced object can only be created in a Namespace that exists, which is
  refused with 404 `namespaces "x" not found` as a new cluster refuses it.

Known differences, none of which the product relies on: a client-sent creationTimestamp is kept (tests
backdate objects with it; a real server overwrites it), a watch replays the current objects instead of
resuming from a resourceVersion, and writes to the main resource may also change status.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
from kmock._internal import enums, rendering
from kmock._internal.dicts import merge_patch_dict
from kmock._internal.k8s import KubernetesError

from devstack.kube_namespaces import NamespaceStore
from devstack.kube_tables import table, wants_table

# metadata.generateName's suffix: 5 characters of apimachinery's utilrand alphabet (no vowels, no 0/1/3).
GENERATED_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Set by the server, never by the writer (ObjectMeta: "Populated by the system. Read-only.").
SERVER_FIELDS = ("uid", "creationTimestamp", "generation")


@attrs.frozen
class ApiStatusError(KubernetesError):
    """An error as kube-apiserver renders it: the Status reason is one of metav1.StatusReason."""


def conflict(resource: str, name: str) -> ApiStatusError:
    return ApiStatusError(
        status=409,
        reason="Conflict",
        message=f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "kind": resource},
    )


def already_exists(resource: str, name: str) -> ApiStatusError:
    return ApiStatusError(
        status=409,
        reason="AlreadyExists",
        message=f'{resource} "{name}" already exists',
        details={"name": name, "kind": resource},
    )


def invalid(cause: str) -> ApiStatusError:
    return ApiStatusError(
        status=422,
        reason="Invalid",
        message="the server rejected our request due to an error in our request",
        details={"causes": [{"message": cause}]},
    )


def not_found(resource: str, name: str) -> ApiStatusError:
    return ApiStatusError(
        status=404,
        reason="NotFound",
        message=f'{resource} "{name}" not found',
        details={"name": name, "kind": resource},
    )


def essence(obj: dict[str, Any]) -> dict[str, Any]:
    """What metadata.generation counts changes of: everything but metadata and status."""
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


def replacement_patch(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch turning ``stored`` into ``new`` (None removes a key): a PUT as kmock's merge can apply it."""
    patch: dict[str, Any] = {key: None for key in stored if key not in new}
    for key, value in new.items():
        old = stored.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            patch[key] = replacement_patch(old, value)
        else:
            patch[key] = value
    return patch


class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock.KubernetesEmulator that keeps metadata, versions and preconditions as kube-apiserver does."""

    namespaces: NamespaceStore | None = None  # None: any namespace is accepted (kmock's own behaviour)
    # `group/version/plural` -> additionalPrinterColumns: what `kubectl get` shows (devstack/kube_tables.py)
    printer_columns: Mapping[str, list[dict[str, Any]]] = {}

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._writes = asyncio.Lock()
        self._versions = itertools.count(1)
        self._latest = 0

    def seed_namespaces(self, names: Iterable[str]) -> None:
        """Namespaces that exist from the start (a new cluster's); creates elsewhere are refused with 404."""
        self.namespaces = NamespaceStore(names, self.next_version)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if self.namespaces is not None:
            await raw_request.read()
            answer = await self.namespaces.serve(raw_request)
            if answer is not None:
                return answer
        return await super().__call__(raw_request)

    def next_version(self) -> str:
        self._latest = next(self._versions)
        return str(self._latest)

    def _stamped(self, obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj.setdefault("metadata", {})
        metadata["uid"] = str(uuid.uuid4())
        metadata.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        metadata["generation"] = 1
        metadata["resourceVersion"] = self.next_version()
        return obj

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        is_write = request.action in (enums.action.CREATE, enums.action.UPDATE) or request.method == enums.method.PUT
        if request.resource is None or not is_write:
            if request.action == enums.action.DELETE and request.resource is not None:
                async with self._writes:
                    self._mark_deleting(request)
                    return await super()._handle(request)
            return await super()._handle(request)
        async with self._writes:  # one write at a time: etcd's compare-and-swap
            try:
                if request.action == enums.action.CREATE:
                    self._prepare_create(request)
                else:
                    self._prepare_update(request)
            except ApiStatusError as exc:
                return await self._render_error(exc)
            response = await super()._handle(request)
        if request.action == enums.action.CREATE and response.status == 200 and not response.prepared:
            response.set_status(201)  # Created: clients (kubernetes' Python client) read a create's body only then
        return response

    def _stored(self, request: rendering.Request, name: str | None = None) -> dict[str, Any] | None:
        key = _key(request, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return dict(self.objects[key].raw)

    def _prepare_create(self, request: rendering.Request) -> None:
        assert request.resource is not None
        if not isinstance(request.data, dict):
            return  # kmock answers it
        metadata = request.data.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):  # kopf's Events: "kopf-event-"
            metadata["name"] = metadata["generateName"] + "".join(random.choices(GENERATED_NAME_ALPHABET, k=5))
        name = str(metadata.get("name", ""))
        if request.namespace:
            metadata["namespace"] = request.namespace
            if self.namespaces is not None and request.namespace not in self.namespaces:
                raise not_found("namespaces", request.namespace)
        if self._stored(request, name) is not None:
            raise already_exists(request.resource.plural or "", name)
        self._stamped(request.data)  # in place: kmock stores request.data as the object

    def _prepare_update(self, request: rendering.Request) -> None:
        assert request.resource is not None
        stored = self._stored(request)
        if stored is None:
            return  # kmock answers 404
        plural, name = request.resource.plural or "", request.name or ""
        version = stored.get("metadata", {}).get("resourceVersion")
        if request.method == enums.method.PUT:
            self._prepare_replace(request, stored, version, plural)
            return
        if isinstance(request.data, list):
            new = self._json_patched(stored, request.data)
        elif isinstance(request.data, dict):
            sent = (request.data.get("metadata") or {}).get("resourceVersion")
            if sent is not None and sent != version:
                raise conflict(plural, name)
            new = kmock_merge(stored, request.data)
        else:
            return
        self._bump(request, stored, new)

    def _prepare_replace(
        self, request: rendering.Request, stored: dict[str, Any], version: str | None, plural: str
    ) -> None:
        body: dict[str, Any] = request.data if isinstance(request.data, dict) else {}
        metadata = body.setdefault("metadata", {})
        if not metadata.get("resourceVersion"):
            raise invalid("metadata.resourceVersion: Invalid value: 0x0: must be specified for an update")
        if metadata["resourceVersion"] != version:
            raise conflict(plural, request.name or "")
        for key in SERVER_FIELDS:
            if key in stored.get("metadata", {}):
                metadata[key] = stored["metadata"][key]
        patch = replacement_patch(stored, body)
        # kmock serves no PUT; its update is a merge, so the replacement goes in as the merge patch that makes it.
        # The request is frozen and kmock finds its reactions by the request's identity: set fields in place
        # (its method stays PUT, as the chart's RBAC check must see it: verb update).
        object.__setattr__(request, "action", enums.action.UPDATE)
        object.__setattr__(request, "data", patch)
        self._bump(request, stored, kmock_merge(stored, patch))

    def _json_patched(self, stored: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
        try:
            return dict(jsonpatch.apply_patch(copy.deepcopy(stored), ops))
        except jsonpatch.JsonPatchTestFailed as exc:
            raise invalid(f"testing value failed: {exc}") from exc
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise invalid(str(exc)) from exc

    def _bump(self, request: rendering.Request, stored: dict[str, Any], new: dict[str, Any]) -> None:
        """Add the new resourceVersion (and generation) to the write itself; a write that changes nothing keeps both."""
        if _without_version(new) == _without_version(stored):
            return
        metadata = stored.get("metadata", {})
        changes: dict[str, Any] = {"resourceVersion": self.next_version()}
        if essence(new) != essence(stored):
            changes["generation"] = int(metadata.get("generation") or 0) + 1
        if isinstance(request.data, list):
            request.data.extend({"op": "add", "path": f"/metadata/{key}", "value": v} for key, v in changes.items())
        else:
            request.data.setdefault("metadata", {}).update(changes)

    def _mark_deleting(self, request: rendering.Request) -> None:
        """A delete that only sets deletionTimestamp (finalizers pending) is a write: a new resourceVersion."""
        stored = self._stored(request)
        if stored is None or stored.get("metadata", {}).get("deletionTimestamp"):
            return
        if stored.get("metadata", {}).get("finalizers"):
            self.objects[_key(request)].patch({"metadata": {"resourceVersion": self.next_version()}})

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        listed = await super()._serve_list(request)
        assert isinstance(listed, dict)
        assert request.resource is not None
        columns = self._columns(request)
        if columns is not None:
            return table(columns, listed["items"], str(self._latest))
        resource = request.resource
        api_version = f"{resource.group}/{resource.version}" if resource.group else str(resource.version)
        info = self.resources.get(resource)
        kind = getattr(info, "kind", None) or str(resource.plural).capitalize()
        items = [{**item, "apiVersion": api_version, "kind": kind} for item in listed["items"]]
        return {
            "apiVersion": api_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self._latest)},
            "items": items,
        }

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        fetched = await super()._serve_fetch(request)
        columns = self._columns(request)
        if columns is not None and isinstance(fetched, Mapping):
            return table(columns, [fetched], str(self._latest))
        return fetched

    def _columns(self, request: rendering.Request) -> list[dict[str, Any]] | None:
        """The printer columns when the client asked for a Table of a resource that has them."""
        accept = next((v for k, v in request.headers.items() if k.lower() == "accept"), "")
        resource = request.resource
        if resource is None or not wants_table(accept):
            return None
        return self.printer_columns.get(f"{resource.group}/{resource.version}/{resource.plural}")


def kmock_merge(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The object kmock's own merge (a JSON merge patch, RFC 7386) makes of ``stored`` and ``patch``."""
    return dict(merge_patch_dict(stored, patch))


def _without_version(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": metadata}


def _key(request: rendering.Request, name: str | None = None) -> tuple[kmock.resource, str | None, str]:
    """The key of the object a request names in kmock's objects."""
    assert request.resource is not None
    return (request.resource, request.namespace, name or request.name or "")
