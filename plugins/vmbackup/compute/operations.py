"""Operation references and what an operation or a snapshot item says: shared by the hook and its mixins.

Kept apart from hook.py so that the hook's mixins (snapshot_states.py, attachments.py, instant_snapshot_calls.py) can
use them without importing the hook; hook.py re-exports every name, the import path DAGs and tests use.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from vmbackup.compute.compute_library import compute_v1


class OperationRef(TypedDict):
    """What a sensor needs to find an operation again: its name and scope (zone, region, or neither for global)."""

    name: str
    project: str
    zone: str | None
    region: NotRequired[str | None]  # a regionOperations operation (zone is then None)


def as_operation_ref(value: dict[str, Any]) -> OperationRef:
    """An OperationRef from its JSON form (XCom, trigger kwargs), keeping the region of a regional operation."""
    ref = OperationRef(name=value["name"], project=value["project"], zone=value.get("zone"))
    if value.get("region"):
        ref["region"] = value["region"]
    return ref


class OperationFailedError(Exception):
    """A Compute Engine operation finished with an error; the message is Compute Engine's own."""


class SnapshotFailedError(Exception):
    """A snapshot turned FAILED, or its creation operation ended with an error; the message says which."""


STANDARD = "standard"  # a snapshot item (snapshot_cuts.py) of a standard snapshot
INSTANT = "instant"  # a snapshot item of an instant snapshot (zonal, or regional with a "regions/R" scope)

TAKEN = "taken"  # every snapshot has left CREATING (UPLOADING or READY): the disk may change again
READY = "ready"  # every snapshot is READY: the backup is complete


def pending_snapshots(states: dict[str, str], until: str) -> dict[str, str]:
    """The snapshots not yet `until` (TAKEN or READY), with their states."""
    wanted = ("READY",) if until == READY else ("UPLOADING", "READY")
    return {name: state for name, state in states.items() if state not in wanted}


def operation_error(op: compute_v1.Operation) -> str | None:
    """Compute Engine's own words for a failed operation, or None when it succeeded."""
    if op.error and op.error.errors:
        return "; ".join(f"{e.code}: {e.message}" if e.code else e.message for e in op.error.errors)
    if op.http_error_status_code and op.http_error_status_code >= 400:
        return f"{op.http_error_status_code}: {op.http_error_message or 'operation failed'}"
    return None


def is_done(op: compute_v1.Operation) -> bool:
    return bool(op.status == compute_v1.Operation.Status.DONE)


def resource_name(url: str) -> str:
    """Last path segment of a Compute Engine resource URL (disks are referenced by URL on instances)."""
    return url.rstrip("/").rsplit("/", 1)[-1]
