"""instantSnapshots and regionInstantSnapshots: insert, get, list, delete, with Compute Engine's limits.

Sources (looked up with the project's reference search):

- Resource and states: InstantSnapshot in the compute v1 reference; ``status`` is CREATING, READY, DELETING,
  FAILED (or UNAVAILABLE); ``sourceDisk``, ``sourceDiskId``, ``diskSizeGb``, ``zone`` or ``region``, ``labels``.
- "Instant snapshots are stored in the same zone or region as their source disks" ("Create and manage instant
  snapshots", https://cloud.google.com/compute/docs/disks/create-instant-snapshots): an instant snapshot's zone
  (region) must be its disk's.
- Limits, with the error texts: "A disk can't have more than 32 instant snapshots" and "The previous instant snapshot
  is too recent. To create an instant snapshot, wait at least 30 seconds and try again" ("Troubleshooting instant
  snapshots", https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-instant-snapshots). NOT
  VERIFIED: the HTTP status of these errors; the simulator answers 400 at insert time.
- "Instant snapshots of a disk are deleted when the disk is deleted" ("About instant snapshots",
  https://cloud.google.com/compute/docs/disks/instant-snapshots): disks.delete removes them (disks.py).
- Timings: ``Profile.instant_snapshot_*`` (see profile.py).
"""

from __future__ import annotations

import time
from typing import Any

from .common import API_PREFIX, already_exists, body_labels, check_name, compile_query_filter, parse_ref, required_name
from .disks import disk_ref, ready_disk
from .errors import ApiError, not_found
from .faults import Fault
from .resources import Disk, InstantSnapshot
from .state import World


def _location(scope: str) -> tuple[str | None, str | None]:
    """(zone, region) of a scope, for the operation."""
    kind, where = scope.split("/", 1)
    return (where, None) if kind == "zones" else (None, where)


def _instant(world: World, project: str, scope: str, name: str) -> InstantSnapshot:
    found = world.instant_snapshots.get((project, scope, name))
    if found is None:
        raise not_found(f"projects/{project}/{scope}/instantSnapshots/{name}")
    return found


def insert(world: World, project: str, scope: str, body: dict[str, Any], faults: list[Fault]) -> dict[str, Any]:
    """CREATING for ``instant_snapshot_creating_seconds``, then READY; the operation is DONE when READY."""
    with world.cond:
        name = required_name(body)
        check_name(name)
        if (project, scope, name) in world.instant_snapshots:
            raise already_exists(f"projects/{project}/{scope}/instantSnapshots/{name}")
        source = body.get("sourceDisk")
        if not source:
            raise ApiError(400, "required", "Required field 'resource.sourceDisk' not specified")
        disk = disk_ref(world, project, str(source))
        if disk.location != scope:
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'resource.sourceDisk': '{source}'. An instant snapshot is stored in the "
                f"{'region' if disk.region else 'zone'} of its source disk ({disk.location})",
            )
        _check_limits(world, disk)  # the documented limits answer before a busy disk's 400
        ready_disk(world, disk)  # not RESTORING, no operation in flight
        labels = body_labels(body)
        instant = InstantSnapshot(project, scope, name, disk, labels, description=str(body.get("description") or ""))
        world.observe_instant_snapshot(instant)
        world.instant_snapshots[(project, scope, name)] = instant
        disk.last_instant_snapshot = time.monotonic()
        zone, region = _location(scope)
        op = world._new_operation(
            project, zone, "insert", instant.self_link, instant.id, disk.self_link, faults, region=region
        )

        def body_fn() -> None:
            if op.fault is not None:
                world._after(op.extra_seconds, lambda: setattr(instant, "status", "FAILED"))
                world._fail_with_fault(op)
                return

            def ready() -> None:
                instant.status = "READY"
                world._finish(op)

            world._after(world.profile.instant_snapshot_creating_seconds + op.extra_seconds, ready)

        world._run_serialized(op, body_fn)
        return op.to_json()


def _check_limits(world: World, disk: Disk) -> None:
    count = sum(1 for i in world.instant_snapshots.values() if i.source_disk is disk)
    if count >= world.profile.instant_snapshots_per_disk:
        raise ApiError(
            400,
            "invalid",
            f"A disk can't have more than {world.profile.instant_snapshots_per_disk} instant snapshots. To create an "
            "instant snapshot of the disk, delete one first.",  # the documented text, word for word
        )
    interval = world.profile.scaled(world.profile.instant_snapshot_min_interval_seconds)
    if disk.last_instant_snapshot is not None and time.monotonic() - disk.last_instant_snapshot < interval:
        raise ApiError(
            400,
            "invalid",
            "The previous instant snapshot is too recent. To create an instant snapshot, wait at least "
            f"{world.profile.instant_snapshot_min_interval_seconds:g} seconds and try again.",
        )


def get(world: World, project: str, scope: str, name: str) -> dict[str, Any]:
    with world.cond:
        return _instant(world, project, scope, name).to_json()


def list_items(world: World, project: str, scope: str, filter_text: str | None) -> list[dict[str, Any]]:
    predicate = compile_query_filter(filter_text)
    with world.cond:
        items = [i.to_json() for (p, s, _), i in sorted(world.instant_snapshots.items()) if p == project and s == scope]
    return [item for item in items if predicate(item)]


def delete(world: World, project: str, scope: str, name: str, faults: list[Fault]) -> dict[str, Any]:
    """DELETING for ``instant_snapshot_delete_seconds``, then gone."""
    with world.cond:
        instant = _instant(world, project, scope, name)
        if instant.status == "CREATING":
            raise ApiError(400, "resourceNotReady", f"The resource '{instant.path}' is not ready")
        zone, region = _location(scope)
        op = world._new_operation(
            project, zone, "delete", instant.self_link, instant.id, instant.self_link, faults, region=region
        )

        def body_fn() -> None:
            if world._fail_with_fault(op):
                return
            instant.status = "DELETING"

            def gone() -> None:
                if world.instant_snapshots.get((project, scope, name)) is instant:
                    del world.instant_snapshots[(project, scope, name)]
                world._finish(op)

            world._after(world.profile.instant_snapshot_delete_seconds + op.extra_seconds, gone)

        world._run_serialized(op, body_fn)
        return op.to_json()


def instant_snapshot_list(world: World, project: str) -> list[dict[str, Any]]:
    """Every instant snapshot of a project, zonal and regional (for tests and benchmarks)."""
    with world.cond:
        return [i.to_json() for (p, _, _), i in sorted(world.instant_snapshots.items()) if p == project]


def instant_snapshot_ref(world: World, project: str, ref: str) -> InstantSnapshot:
    """The instant snapshot a URL or partial reference names (``snapshots.insert``'s ``sourceInstantSnapshot``)."""
    parsed = parse_ref(ref)
    scope = f"regions/{parsed['region']}" if parsed["region"] else f"zones/{parsed['zone']}"
    if parsed["collection"] != "instantSnapshots" or not (parsed["zone"] or parsed["region"]):
        raise ApiError(400, "invalid", f"Invalid value for field 'resource.sourceInstantSnapshot': '{ref}'")
    found = world.instant_snapshots.get((parsed["project"] or project, scope, str(parsed["name"])))
    if found is None:
        raise not_found(ref.removeprefix(API_PREFIX))
    return found
