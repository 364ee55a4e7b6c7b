"""disks: seed, list, insert (empty or from a snapshot, then RESTORING), delete, and what a snapshot source needs.

REST shapes: compute v1 reference, ``disks.insert`` / ``disks.delete`` / ``disks.list``. A disk restored from a
snapshot is RESTORING for ``Profile.disk_restoring_seconds`` after its insert is DONE (profile.py). "Instant
snapshots of a disk are deleted when the disk is deleted" ("About instant snapshots",
https://cloud.google.com/compute/docs/disks/instant-snapshots).
"""

from __future__ import annotations

from typing import Any

from . import iam
from .common import API_PREFIX, already_exists, body_labels, compile_query_filter, parse_ref, required_name
from .errors import ApiError, not_found, resource_not_ready
from .faults import Fault
from .resources import Disk, Snapshot
from .state import World


def add_disk(
    world: World,
    project: str,
    zone: str,
    name: str,
    *,
    size_gb: int = 10,
    disk_type: str = "pd-balanced",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Seed a READY disk."""
    with world.cond:
        if (project, zone, name) in world.disks:
            raise ValueError(f"disk {project}/{zone}/{name} already exists")
        disk = Disk(project, zone, name, size_gb=size_gb, disk_type=disk_type, labels=dict(labels or {}))
        world.disks[(project, zone, name)] = disk
        world.zones.setdefault(project, set()).add(zone)
        return disk.to_json()


def list_disks(world: World, project: str, zone: str, filter_text: str | None) -> list[dict[str, Any]]:
    predicate = compile_query_filter(filter_text)
    with world.cond:
        items = [d.to_json() for (p, z, _), d in sorted(world.disks.items()) if p == project and z == zone]
    return [item for item in items if predicate(item)]


def disk_ref(world: World, project: str, ref: str) -> Disk:
    """The disk a URL or partial reference names (zonal or regional); lock held."""
    parsed = parse_ref(ref)
    if parsed["collection"] != "disks" or not (parsed["zone"] or parsed["region"]):
        raise ApiError(400, "invalid", f"Invalid value for field 'resource.sourceDisk': '{ref}'")
    key = (parsed["project"] or project, str(parsed["region"] or parsed["zone"]), str(parsed["name"]))
    disk = world.disks.get(key)
    if disk is None:
        raise not_found(ref.removeprefix(API_PREFIX))
    return disk


def ready_disk(world: World, disk: Disk) -> Disk:
    """A snapshot source must be READY (not RESTORING) and free of other operations; lock held."""
    if disk.status != "READY":
        raise resource_not_ready(disk.path)
    world.check_not_busy(disk.self_link)
    return disk


def ready_snapshot(world: World, project: str, ref: str) -> Snapshot:
    """The READY snapshot a disk is restored from, in any project the caller may read it in (iam.py); lock held."""
    parsed = parse_ref(ref)
    snapshot = world._snapshot(parsed["project"] or project, str(parsed["name"]))
    iam.require(world, snapshot.project, "compute.snapshots.useReadOnly", snapshot.path)
    if snapshot.status != "READY":
        raise ApiError(400, "resourceNotReady", f"The resource '{snapshot.path}' is not ready")
    return snapshot


def _new_disk(world: World, project: str, zone: str, body: dict[str, Any]) -> Disk:
    """The CREATING disk ``disks.insert`` asks for, checked (lock held)."""
    name = required_name(body)
    iam.require(world, project, "compute.disks.create", f"projects/{project}/zones/{zone}/disks/{name}")
    if (project, zone, name) in world.disks:
        raise already_exists(f"projects/{project}/zones/{zone}/disks/{name}")
    source = body.get("sourceSnapshot")
    snapshot = ready_snapshot(world, project, source) if source else None
    size = int(body.get("sizeGb") or (snapshot.source_disk.size_gb if snapshot else 10))
    if snapshot is not None and size < snapshot.source_disk.size_gb:
        raise ApiError(
            400,
            "invalid",
            f"Requested disk size cannot be smaller than the snapshot size ({snapshot.source_disk.size_gb} GB)",
        )
    return Disk(
        project,
        zone,
        name,
        size_gb=size,
        disk_type=str(body.get("type") or "pd-balanced").rsplit("/", 1)[-1],
        labels=body_labels(body),
        status="CREATING",
        description=str(body.get("description") or ""),
        source_snapshot=snapshot.self_link if snapshot else None,
        source_snapshot_id=snapshot.id if snapshot else None,
        source_snapshot_type=snapshot.snapshot_type if snapshot else None,
        guest_console=snapshot.guest_console if snapshot else "",
    )


def insert_disk(world: World, project: str, zone: str, body: dict[str, Any], faults: list[Fault]) -> dict[str, Any]:
    with world.cond:
        disk = _new_disk(world, project, zone, body)
        name = disk.name
        world.disks[(project, zone, name)] = disk
        world.zones.setdefault(project, set()).add(zone)
        op = world._new_operation(project, zone, "insert", disk.self_link, disk.id, disk.self_link, faults)

        def body_fn() -> None:
            if op.fault is not None:
                world.disks.pop((project, zone, name), None)
                world._fail_with_fault(op)
                return

            def ready() -> None:
                disk.status = "READY"

            def created() -> None:
                if disk.source_snapshot is None:
                    ready()
                else:  # RESTORING after the insert is DONE, longer from an ARCHIVE snapshot (profile.py)
                    disk.status = "RESTORING"
                    slower = world.profile.archive_restoring_factor if disk.source_snapshot_type == "ARCHIVE" else 1.0
                    world._after(world.profile.disk_restoring_seconds * slower, ready)
                world._finish(op)

            world._after(world.profile.disk_create_seconds(disk.size_gb) + op.extra_seconds, created)

        world._run_serialized(op, body_fn)
        return op.to_json()


def delete_disk(world: World, project: str, zone: str, name: str, faults: list[Fault]) -> dict[str, Any]:
    with world.cond:
        disk = world._disk(project, zone, name)
        if disk.users:
            raise ApiError(
                400,
                "resourceInUseByAnotherResource",
                f"The disk resource '{disk.path}' is already being used by '{disk.users[0]}'",
            )
        op = world._new_operation(project, zone, "delete", disk.self_link, disk.id, disk.self_link, faults)

        def body() -> None:
            if world._fail_with_fault(op):
                return
            disk.status = "DELETING"

            def gone() -> None:
                if world.disks.get((project, zone, name)) is disk:
                    del world.disks[(project, zone, name)]
                # "Instant snapshots of a disk are deleted when the disk is deleted" (About instant snapshots)
                for key, instant in list(world.instant_snapshots.items()):
                    if instant.source_disk is disk:
                        del world.instant_snapshots[key]
                world._finish(op)

            world._after(world.profile.snapshot_delete_seconds + op.extra_seconds, gone)

        world._run_serialized(op, body)
        return op.to_json()
