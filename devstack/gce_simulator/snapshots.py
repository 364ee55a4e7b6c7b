"""Standard and archive snapshots: disks.createSnapshot, snapshots.insert (from a disk or an instant snapshot), list,
get, delete. CREATING (the disk is being read), UPLOADING, READY; the operation is DONE when the snapshot is READY.

snapshots.insert writes into the project of its URL from a source disk of any project ("creating snapshots in a
project different from the source disk project", https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/
insert); disks.createSnapshot into the disk's own. Each call checks the caller's permissions (iam.py). snapshotType is
STANDARD or ARCHIVE (Snapshot resource, https://cloud.google.com/compute/docs/reference/rest/v1/snapshots); an archive
snapshot is created like a standard one ("Compute Engine stores archive and standard snapshots in the same manner",
https://cloud.google.com/compute/docs/disks/snapshots) and restores slower (disks.py, profile.py). storageLocations
holds one Cloud Storage multi-region or region ("one Cloud Storage multi-regional location, such as asia, or one
Cloud Storage regional location, such as asia-south1", same page); anything else is refused with 400 invalid (the
message is an ESTIMATE in Compute Engine's "Invalid value for field" form). Without it the snapshot goes to the
multi-region nearest the disk (simplified here to the region's first word, an ESTIMATE as before).

The frequency and guestFlush rules are snapshot_rules.py's, the timings profile.py's. From an instant snapshot the
point in time is already fixed, so the disk need not be quiesced; the new snapshot joins the disk's incremental
chain ("Create standard snapshots from instant snapshots",
https://cloud.google.com/compute/docs/disks/convert-instant-snapshot).
"""

from __future__ import annotations

import re
from typing import Any

from . import iam, snapshot_rules
from .common import already_exists, body_labels, check_name, compile_query_filter, required_name
from .disks import disk_ref, ready_disk
from .errors import ApiError
from .faults import Fault
from .instant_snapshots import instant_snapshot_ref
from .resources import Disk, InstantSnapshot, Operation, Snapshot
from .state import World

SNAPSHOT_TYPES = ("STANDARD", "ARCHIVE")
_STORAGE_LOCATION = re.compile(r"(asia|eu|us|[a-z]+-[a-z]+[0-9]+)")


def create_snapshot(
    world: World,
    project: str,
    zone: str,
    disk_name: str,
    body: dict[str, Any],
    guest_flush: bool,
    faults: list[Fault],
) -> dict[str, Any]:
    """disks.createSnapshot: a zonal operation on the disk."""
    with world.cond:
        disk = world._disk(project, zone, disk_name)
        iam.require(world, project, "compute.disks.createSnapshot", disk.path)
        iam.require(world, project, "compute.snapshots.create", _path(project, body))
        _check_snapshot_name(world, project, body)  # a name conflict answers 409 before a busy disk's 400
        snapshot = _new_snapshot(world, project, ready_disk(world, disk), body, guest_flush, None)
        op = world._new_operation(project, zone, "createSnapshot", disk.self_link, disk.id, disk.self_link, faults)
        _take_snapshot(world, op, snapshot)
        return op.to_json()


def insert_snapshot(world: World, project: str, body: dict[str, Any], faults: list[Fault]) -> dict[str, Any]:
    """snapshots.insert from ``sourceDisk`` (zonal or regional) or ``sourceInstantSnapshot``: a global operation."""
    with world.cond:
        source_disk, source_instant = body.get("sourceDisk"), body.get("sourceInstantSnapshot")
        if bool(source_disk) == bool(source_instant):
            raise ApiError(
                400,
                "invalid",
                "Exactly one of 'resource.sourceDisk' or 'resource.sourceInstantSnapshot' is required",
            )
        iam.require(world, project, "compute.snapshots.create", _path(project, body))
        _check_snapshot_name(world, project, body)  # a name conflict answers 409 before a busy disk's 400
        instant = None
        if source_instant:
            instant = instant_snapshot_ref(world, project, str(source_instant))
            iam.require(world, instant.project, "compute.instantSnapshots.useReadOnly", instant.path)
            if instant.status != "READY":
                raise ApiError(400, "resourceNotReady", f"The resource '{instant.path}' is not ready")
            disk = instant.source_disk
        else:
            disk = disk_ref(world, project, str(source_disk))
            iam.require(world, disk.project, "compute.disks.useReadOnly", disk.path)
            disk = ready_disk(world, disk)
        key = instant.self_link if instant else disk.self_link
        world.check_not_busy(key)
        snapshot = _new_snapshot(world, project, disk, body, bool(body.get("guestFlush")), instant)
        op = world._new_operation(project, None, "insert", snapshot.self_link, snapshot.id, key, faults)
        _take_snapshot(world, op, snapshot)
        return op.to_json()


def _new_snapshot(
    world: World,
    project: str,
    disk: Disk,
    body: dict[str, Any],
    guest_flush: bool,
    instant: InstantSnapshot | None,
) -> Snapshot:
    name = _check_snapshot_name(world, project, body)
    snapshot = Snapshot(
        project=project,
        name=name,
        source_disk=disk,
        labels=body_labels(body),
        storage_locations=_storage_locations(body, disk),
        description=str(body.get("description") or ""),
        guest_flush=guest_flush,
        guest_console=disk.guest_console,
        source_instant_snapshot=instant,
        snapshot_type=_snapshot_type(body),
    )
    world.observe_snapshot(snapshot)
    world.snapshots[(project, name)] = snapshot
    return snapshot


def _path(project: str, body: dict[str, Any]) -> str:
    return f"projects/{project}/global/snapshots/{body.get('name') or ''}"


def _storage_locations(body: dict[str, Any], disk: Disk) -> list[str]:
    """The one storage location asked for, checked; the default near the disk otherwise."""
    asked = body.get("storageLocations")
    if not asked:
        return [disk.zone.rsplit("-", 2)[0]]
    if not isinstance(asked, list) or len(asked) != 1:
        raise ApiError(400, "invalid", "Invalid value for field 'resource.storageLocations': only one location")
    if not _STORAGE_LOCATION.fullmatch(str(asked[0])):
        raise ApiError(400, "invalid", f"Invalid value for field 'resource.storageLocations[0]': '{asked[0]}'")
    return [str(asked[0])]


def _snapshot_type(body: dict[str, Any]) -> str:
    value = str(body.get("snapshotType") or "STANDARD")
    if value not in SNAPSHOT_TYPES:
        raise ApiError(400, "invalid", f"Invalid value for field 'resource.snapshotType': '{value}'")
    return value


def _check_snapshot_name(world: World, project: str, body: dict[str, Any]) -> str:
    name = required_name(body)
    check_name(name)
    if (project, name) in world.snapshots:
        raise already_exists(f"projects/{project}/global/snapshots/{name}")
    return name


def _snapshot_refused(world: World, op: Operation, snapshot: Snapshot) -> bool:
    """Frequency and guest flush rules (snapshot_rules.py): a refused snapshot is not created."""
    disk = snapshot.source_disk
    error = None
    if snapshot.guest_flush:
        error = snapshot_rules.guest_flush_error(disk, world.instances_using(disk))
    if error is None and snapshot.source_instant_snapshot is None:
        error = snapshot_rules.frequency_error(world.profile, disk)
    if error is None:
        return False
    if world.snapshots.get((snapshot.project, snapshot.name)) is snapshot:
        del world.snapshots[(snapshot.project, snapshot.name)]
    world._finish(op, error)
    return True


def _take_snapshot(world: World, op: Operation, snapshot: Snapshot) -> None:
    """CREATING (the disk is being read), UPLOADING, READY; the operation is DONE when the snapshot is READY."""
    disk = snapshot.source_disk
    first = disk.snapshots_taken == 0

    def body_fn() -> None:
        if op.fault is not None:

            def failed() -> None:
                snapshot.status = "FAILED"

            world._after(op.extra_seconds, failed)
            world._fail_with_fault(op)
            return
        if _snapshot_refused(world, op, snapshot):
            return

        def uploading() -> None:
            snapshot.status = "UPLOADING"
            op.progress = 50

            def ready() -> None:
                snapshot.status = "READY"
                fill = 0.3 if first else 0.3 * world.profile.incremental_fraction
                snapshot.storage_bytes = int(disk.size_gb * 2**30 * fill)
                disk.snapshots_taken += 1
                world._finish(op)

            world._after(world.profile.snapshot_upload_seconds(disk.size_gb, first), ready)

        world._after(world.profile.snapshot_creating_seconds + op.extra_seconds, uploading)

    world._run_serialized(op, body_fn)


def list_snapshots(world: World, project: str, filter_text: str | None) -> list[dict[str, Any]]:
    """The snapshots of `project` only (snapshots are global resources of one project), through the filter."""
    predicate = compile_query_filter(filter_text)
    with world.cond:
        iam.require(world, project, "compute.snapshots.list", f"projects/{project}")
        items = [s.to_json() for (p, _), s in sorted(world.snapshots.items()) if p == project]
    return [item for item in items if predicate(item)]


def get_snapshot(world: World, project: str, name: str) -> dict[str, Any]:
    with world.cond:
        iam.require(world, project, "compute.snapshots.get", f"projects/{project}/global/snapshots/{name}")
        return world._snapshot(project, name).to_json()


def delete_snapshot(world: World, project: str, name: str, faults: list[Fault]) -> dict[str, Any]:
    with world.cond:
        iam.require(world, project, "compute.snapshots.delete", f"projects/{project}/global/snapshots/{name}")
        snapshot = world._snapshot(project, name)
        if snapshot.status in ("CREATING", "UPLOADING"):
            raise ApiError(400, "resourceNotReady", f"The resource '{snapshot.path}' is not ready")
        op = world._new_operation(project, None, "delete", snapshot.self_link, snapshot.id, snapshot.self_link, faults)

        def body_fn() -> None:
            if world._fail_with_fault(op):
                return
            snapshot.status = "DELETING"

            def gone() -> None:
                if world.snapshots.get((project, name)) is snapshot:
                    del world.snapshots[(project, name)]
                world._finish(op)

            world._after(world.profile.snapshot_delete_seconds + op.extra_seconds, gone)

        world._run_serialized(op, body_fn)
        return op.to_json()


def add_snapshot(
    world: World,
    project: str,
    zone: str,
    disk_name: str,
    name: str,
    *,
    created: float,
    labels: dict[str, str] | None = None,
    description: str = "",
    status: str = "READY",
    snapshot_project: str | None = None,
) -> dict[str, Any]:
    """Seed a snapshot of an existing disk taken at `created` (epoch seconds): history a test needs (a year of
    backups) that the API cannot make in a test's time. No frequency rule or operation applies to history. The
    snapshot lives in `snapshot_project` (as snapshots.insert makes it there), else in the disk's project."""
    into = snapshot_project or project
    with world.cond:
        if (into, name) in world.snapshots:
            raise ValueError(f"snapshot {into}/{name} already exists")
        disk = world._disk(project, zone, disk_name)
        snapshot = Snapshot(
            project=into,
            name=name,
            source_disk=disk,
            labels=dict(labels or {}),
            storage_locations=[zone.rsplit("-", 2)[0]],
            description=description,
            status=status,
            created=created,
        )
        world.snapshots[(into, name)] = snapshot
        return snapshot.to_json()
