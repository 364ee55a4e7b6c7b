"""Compute Engine calls of instant snapshots: instantSnapshots (zonal disks) and regionInstantSnapshots (regional).

A mixin of ComputeEngineHook (kept apart so the hook module stays one role per file): every call goes through the
hook's bounded retry (`call`). The two collections take the same calls and differ only in their scope argument, so
each call is written once for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from google.api_core import exceptions as gexc

from vmbackup.compute.compute_library import compute_v1

if TYPE_CHECKING:
    from vmbackup.compute.operations import OperationRef

T = TypeVar("T")


class InstantSnapshotLimitError(Exception):
    """Compute Engine refused an instant snapshot for one of its per-disk limits (32 per disk, one per 30 s)."""


# Words of the two per-disk limits' documented errors, "A disk can't have more than 32 instant snapshots..." and "The
# previous instant snapshot is too recent..." ("Troubleshooting instant snapshots",
# https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-instant-snapshots). Their HTTP status is not
# documented, so the refusal is recognised by these words in any 4xx answer (the count is left out of the match).
INSTANT_SNAPSHOT_LIMIT_TEXTS = (
    "can't have more than",
    "previous instant snapshot is too recent",
)


def scope_parts(scope: str) -> tuple[str, str]:
    """("zones", Z) or ("regions", R) of a scope such as zones/us-central1-a or regions/us-central1."""
    kind, _, where = scope.partition("/")
    if kind not in ("zones", "regions") or not where:
        raise ValueError(f"not a zone or region scope: {scope!r}")
    return kind, where


def resource_url(project: str, scope: str, collection: str, name: str) -> str:
    """The full URL of a zonal or regional resource, as Compute Engine's source fields take it."""
    return f"https://www.googleapis.com/compute/v1/projects/{project}/{scope}/{collection}/{name}"


class _Calls(Protocol):
    @property
    def instant_snapshots(self) -> compute_v1.InstantSnapshotsClient: ...

    @property
    def region_instant_snapshots(self) -> compute_v1.RegionInstantSnapshotsClient: ...

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    def _every_page(self, what: str, method: Callable[..., Any], request: Any) -> list[Any]: ...


def _collection(hook: _Calls, scope: str) -> tuple[str, Any, dict[str, str]]:
    """The API collection's name, its client and the scope argument its calls take, for a zone or a region."""
    kind, where = scope_parts(scope)
    if kind == "zones":
        return "instantSnapshots", hook.instant_snapshots, {"zone": where}
    return "regionInstantSnapshots", hook.region_instant_snapshots, {"region": where}


def _operation(op: Any, project: str, where: dict[str, str]) -> OperationRef:
    if "zone" in where:
        return {"name": op.name, "project": project, "zone": where["zone"]}
    return {"name": op.name, "project": project, "zone": None, "region": where["region"]}


class InstantSnapshotCalls:
    """insert / get / list / delete of instant snapshots in a disk's own zone or region."""

    def insert_instant_snapshot(
        self: _Calls, project: str, scope: str, disk: str, name: str, *, labels: dict[str, str], description: str = ""
    ) -> OperationRef | None:
        """Start an instant snapshot of a disk in its own zone or region; None when one of that name exists.

        Raises InstantSnapshotLimitError when Compute Engine refuses it for a per-disk limit (the caller decides).
        """
        collection, client, where = _collection(self, scope)
        resource = compute_v1.InstantSnapshot(
            name=name, source_disk=resource_url(project, scope, "disks", disk), labels=labels, description=description
        )
        try:
            op = self.call(
                f"{collection}.insert",
                client.insert_unary,
                project=project,
                instant_snapshot_resource=resource,
                **where,
            )
        except gexc.Conflict:
            return None
        except gexc.ClientError as exc:
            if any(text in str(exc.message) for text in INSTANT_SNAPSHOT_LIMIT_TEXTS):
                raise InstantSnapshotLimitError(str(exc.message)) from None
            raise
        return _operation(op, project, where)

    def find_instant_snapshot(self: _Calls, project: str, scope: str, name: str) -> compute_v1.InstantSnapshot | None:
        collection, client, where = _collection(self, scope)
        try:
            found: compute_v1.InstantSnapshot = self.call(
                f"{collection}.get", client.get, project=project, instant_snapshot=name, **where
            )
        except gexc.NotFound:
            return None
        return found

    def list_instant_snapshots(
        self: _Calls, project: str, scope: str, labels: dict[str, str]
    ) -> list[compute_v1.InstantSnapshot]:
        """Instant snapshots of a zone or region carrying every label (filtered server-side, and again locally)."""
        collection, client, where = _collection(self, scope)
        label_filter = " AND ".join(f"(labels.{k} = {v})" for k, v in sorted(labels.items()))
        request: Any
        if "zone" in where:
            request = compute_v1.ListInstantSnapshotsRequest(project=project, filter=label_filter, **where)
        else:
            request = compute_v1.ListRegionInstantSnapshotsRequest(project=project, filter=label_filter, **where)
        listed = self._every_page(f"{collection}.list", client.list, request)
        return [i for i in listed if all(i.labels.get(k) == v for k, v in labels.items())]

    def delete_instant_snapshot(self: _Calls, project: str, scope: str, name: str) -> OperationRef | None:
        """Start deleting an instant snapshot; None when it is already gone."""
        collection, client, where = _collection(self, scope)
        try:
            op = self.call(f"{collection}.delete", client.delete_unary, project=project, instant_snapshot=name, **where)
        except gexc.NotFound:
            return None
        return _operation(op, project, where)
