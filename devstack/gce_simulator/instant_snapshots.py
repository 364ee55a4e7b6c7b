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
  https://cloud.google.com/compute/docs/disks/instant-snapshots): disks.delete removes them (state.py).
- Timings: ``Profile.instant_snapshot_*`` (see profile.py).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from vmbackup.model import labels as vm_labels

from .faults import Fault
from .state import API_PREFIX, ApiError, Disk, World, _compile, _new_id, check_name, fingerprint, not_found, rfc3339
from .state import validate_labels as _validate_labels


@dataclass
class InstantSnapshot:
    project: str
    scope: str  # "zones/Z" or "regions/R"
    name: str
    source_disk: Disk
    labels: dict[str, str]
    description: str = ""
    status: str = "CREATING"
    id: str = field(default_factory=_new_id)
    created: float = field(default_factory=time.time)

    @property
    def path(self) -> str:
        return f"projects/{self.project}/{self.scope}/instantSnapshots/{self.name}"

    @property
    def self_link(self) -> str:
        return API_PREFIX + self.path

    def to_json(self) -> dict[str, Any]:
        kind = self.scope.split("/", 1)[0]
        return {
            "kind": "compute#instantSnapshot",
            "id": self.id,
            "creationTimestamp": rfc3339(self.created),
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "sourceDisk": self.source_disk.self_link,
            "sourceDiskId": self.source_disk.id,
            "diskSizeGb": str(self.source_disk.size_gb),
            kind.rstrip("s"): f"{API_PREFIX}projects/{self.project}/{self.scope}",
            "labels": copy.deepcopy(self.labels),
            "labelFingerprint": fingerprint(self.labels),
            "architecture": "X86_64",
            "selfLink": self.self_link,
            "selfLinkWithId": f"{API_PREFIX}projects/{self.project}/{self.scope}/instantSnapshots/{self.id}",
            "resourceStatus": {"storageSizeBytes": str(int(self.source_disk.size_gb * 2**30 * 0.01))},
        }


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
        name = body.get("name")
        if not name:
            raise ApiError(400, "required", "Required field 'resource.name' not specified")
        check_name(name)
        if (project, scope, name) in world.instant_snapshots:
            raise ApiError(
                409,
                "alreadyExists",
                f"The resource 'projects/{project}/{scope}/instantSnapshots/{name}' already exists",
            )
        source = body.get("sourceDisk")
        if not source:
            raise ApiError(400, "required", "Required field 'resource.sourceDisk' not specified")
        disk = world._ready_disk(world.disk_ref(project, str(source)))  # not RESTORING, no operation in flight
        if disk.location != scope:
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'resource.sourceDisk': '{source}'. An instant snapshot is stored in the "
                f"{'region' if disk.region else 'zone'} of its source disk ({disk.location})",
            )
        _check_limits(world, disk)
        labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
        _validate_labels(labels)
        instant = InstantSnapshot(project, scope, name, disk, labels, description=str(body.get("description") or ""))
        world.check_quiesced(disk, name, labels)
        _check_duplicate(world, instant)
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


def _check_duplicate(world: World, instant: InstantSnapshot) -> None:
    run = instant.labels.get(vm_labels.RUN)
    if not run:
        return
    for other in world.instant_snapshots.values():
        if other.source_disk is instant.source_disk and other.labels.get(vm_labels.RUN) == run:
            world._violate(
                "duplicate-instant-snapshot",
                f"instant snapshot {instant.name} duplicates {other.name}: same disk {instant.source_disk.name} and "
                f"{vm_labels.RUN}={run}",
                snapshot=instant.name,
                duplicate_of=other.name,
                disk=instant.source_disk.name,
                run=run,
            )


def get(world: World, project: str, scope: str, name: str) -> dict[str, Any]:
    with world.cond:
        return _instant(world, project, scope, name).to_json()


def list_items(world: World, project: str, scope: str, filter_text: str | None) -> list[dict[str, Any]]:
    predicate = _compile(filter_text)
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
