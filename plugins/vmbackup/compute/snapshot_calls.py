"""Compute Engine calls of standard and archive snapshots: disks.createSnapshot, snapshots.insert / get / list / delete.

A mixin of ComputeEngineHook (kept apart so the hook module stays one role per file): every call goes through the
hook's bounded retry (`call`). Snapshots are global resources of one project, which need not be the disk's:
disks.createSnapshot creates the snapshot in the disk's own project, snapshots.insert in the project of its URL from
any source disk the caller may read ("For regular snapshot creation, consider using snapshots.insert instead, as that
method supports more features, such as creating snapshots in a project different from the source disk project",
https://cloud.google.com/compute/docs/reference/rest/v1/disks/createSnapshot). `snapshot_type` is the resource's
snapshotType, STANDARD or ARCHIVE (https://cloud.google.com/compute/docs/reference/rest/v1/snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions as gexc

from vmbackup.compute.compute_library import compute_v1
from vmbackup.compute.operations import OperationRef

T = TypeVar("T")


class _Calls(Protocol):
    @property
    def disks(self) -> compute_v1.DisksClient: ...

    @property
    def snapshots(self) -> compute_v1.SnapshotsClient: ...

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    def _every_page(self, what: str, method: Callable[..., Any], request: Any) -> list[Any]: ...


def snapshot_resource(
    name: str,
    labels: dict[str, str],
    description: str,
    storage_location: str | None,
    snapshot_type: str | None,
) -> compute_v1.Snapshot:
    """The Snapshot body every create call sends: name, labels, description, storageLocations and snapshotType."""
    snapshot = compute_v1.Snapshot(name=name, labels=labels, description=description)
    if storage_location:
        snapshot.storage_locations = [storage_location]
    if snapshot_type:
        snapshot.snapshot_type = snapshot_type
    return snapshot


class SnapshotCalls:
    """Create, read, list and delete standard and archive snapshots."""

    def create_snapshot(
        self: _Calls,
        project: str,
        zone: str,
        disk: str,
        name: str,
        *,
        labels: dict[str, str],
        storage_location: str | None,
        guest_flush: bool,
        description: str = "",
        snapshot_type: str | None = None,
    ) -> OperationRef | None:
        """disks.createSnapshot: a snapshot, in the disk's own project, of a zonal disk; None when the name exists."""
        snapshot = snapshot_resource(name, labels, description, storage_location, snapshot_type)
        request = compute_v1.CreateSnapshotDiskRequest(
            project=project, zone=zone, disk=disk, snapshot_resource=snapshot
        )
        if guest_flush:
            request.guest_flush = True
        try:
            op = self.call("disks.createSnapshot", self.disks.create_snapshot_unary, request=request)
        except gexc.Conflict:
            return None
        return OperationRef(name=op.name, project=project, zone=zone)

    def insert_snapshot(
        self: _Calls,
        project: str,
        name: str,
        *,
        labels: dict[str, str],
        storage_location: str | None,
        source_disk: str | None = None,
        source_instant_snapshot: str | None = None,
        guest_flush: bool = False,
        description: str = "",
        snapshot_type: str | None = None,
    ) -> OperationRef | None:
        """snapshots.insert into `project` from a disk URL (zonal or regional, of any project) or an instant snapshot
        URL; None when the name exists. A global operation of `project`.

        Used where disks.createSnapshot cannot go: regional disks, instant snapshots, and a backup project other than
        the disk's.
        """
        snapshot = snapshot_resource(name, labels, description, storage_location, snapshot_type)
        if source_disk:
            snapshot.source_disk = source_disk
        if source_instant_snapshot:
            snapshot.source_instant_snapshot = source_instant_snapshot
        if guest_flush:
            snapshot.guest_flush = True
        try:
            op = self.call("snapshots.insert", self.snapshots.insert_unary, project=project, snapshot_resource=snapshot)
        except gexc.Conflict:
            return None
        return OperationRef(name=op.name, project=project, zone=None)

    def find_snapshot(self: _Calls, project: str, name: str) -> compute_v1.Snapshot | None:
        try:
            found: compute_v1.Snapshot = self.call("snapshots.get", self.snapshots.get, project=project, snapshot=name)
        except gexc.NotFound:
            return None
        return found

    def list_snapshots(self: _Calls, project: str, labels: dict[str, str]) -> list[compute_v1.Snapshot]:
        """Snapshots of `project` carrying every label (filtered server-side, and again locally)."""
        label_filter = " AND ".join(f"(labels.{k} = {v})" for k, v in sorted(labels.items()))
        request = compute_v1.ListSnapshotsRequest(project=project, filter=label_filter)
        listed = self._every_page("snapshots.list", self.snapshots.list, request)
        return [s for s in listed if all(s.labels.get(k) == v for k, v in labels.items())]

    def delete_snapshot(self: _Calls, project: str, name: str) -> OperationRef | None:
        try:
            op = self.call("snapshots.delete", self.snapshots.delete_unary, project=project, snapshot=name)
        except gexc.NotFound:
            return None
        return OperationRef(name=op.name, project=project, zone=None)
