"""The snapshot waits' reads: each snapshot item's status, trusting READY only once its creation is known done.

A mixin of ComputeEngineHook. The READY wait can last hours (the first upload of a large disk), and on each poll the
creation operation of a snapshot that reads READY was read again. Two things follow from Compute Engine's
operations:

- A DONE operation never changes, so one read DONE is remembered by the hook (keyed by its scope and name) and not
  read again.
- A completed operation is kept at least 1 hour and at most 14 days, then `get` answers 404 ("operation retention
  period", https://cloud.google.com/compute/docs/instances/viewing-compute-operations). A purged creation operation
  is not a failure: it was DONE long enough ago to be purged, so the snapshot's own status is what counts (a
  creation that failed leaves the snapshot FAILED or absent, both seen on the resource itself).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from google.api_core import exceptions as gexc

from vmbackup.compute.compute_library import compute_v1
from vmbackup.compute.operations import (
    INSTANT,
    READY,
    OperationRef,
    SnapshotFailedError,
    as_operation_ref,
    is_done,
    operation_error,
)


class _Reads(Protocol):
    _done_operations: dict[str, compute_v1.Operation]

    def get_operation(self, ref: OperationRef) -> compute_v1.Operation: ...

    def wait_operation(self, ref: OperationRef, timeout_seconds: float) -> compute_v1.Operation: ...

    def find_snapshot(self, project: str, name: str) -> compute_v1.Snapshot | None: ...

    def find_instant_snapshot(self, project: str, scope: str, name: str) -> compute_v1.InstantSnapshot | None: ...

    def _creation(self, item: dict[str, Any]) -> compute_v1.Operation | None: ...

    def _missing_snapshot(self, item: dict[str, Any]) -> str: ...

    def _trusted_status(self, item: dict[str, Any], status: str) -> str: ...

    def _instant_state(self, project: str, item: dict[str, Any]) -> str: ...

    def snapshot_states(self, project: str, items: list[dict[str, Any]]) -> dict[str, str]: ...

    def ready_states(self, project: str, items: list[dict[str, Any]]) -> dict[str, str]: ...


def _operation_key(ref: OperationRef) -> str:
    return "/".join((ref["project"], ref.get("region") or ref["zone"] or "global", ref["name"]))


class SnapshotStates:
    """snapshot_states and the reads behind it."""

    def snapshot_states(self: _Reads, project: str, items: list[dict[str, Any]]) -> dict[str, str]:
        """Each item's status (MISSING while not yet visible); SnapshotFailedError names a failed one.

        Items are snapshot_cuts.py's: a standard snapshot, or (kind "instant") an instant snapshot, whose READY
        counts as taken and as ready alike (its point in time is fixed; it has no upload). Each is read in the
        project it names (a standard snapshot may live in a backup project), `project` for items of older DAG
        versions that name none.
        """
        states: dict[str, str] = {}
        for item in items:
            where = item.get("project") or project
            if item.get("kind") == INSTANT:
                states[item["name"]] = self._instant_state(where, item)
                continue
            snapshot = self.find_snapshot(where, item["name"])
            if snapshot is None:
                states[item["name"]] = self._missing_snapshot(item)
                continue
            if snapshot.status == "FAILED":
                self._missing_snapshot(item)  # raises with the creation operation's own error when it has one
                raise SnapshotFailedError(f"snapshot {item['name']} of disk {item['disk']} FAILED")
            states[item["name"]] = self._trusted_status(item, snapshot.status)
        return states

    def states_until(self: _Reads, project: str, items: list[dict[str, Any]], until: str) -> dict[str, str]:
        """The states a wait `until` TAKEN or READY looks at: ready_states for READY, else snapshot_states."""
        return self.ready_states(project, items) if until == READY else self.snapshot_states(project, items)

    def ready_states(self: _Reads, project: str, items: list[dict[str, Any]]) -> dict[str, str]:
        """snapshot_states for the READY wait, one call per snapshot instead of two: a standard snapshot's creation
        operation is read first, and DONE without an error is Compute Engine's word that the snapshot was created
        (READY; the operation ends after the upload), so the snapshot itself is not read. Not DONE yet: it is
        uploading (the window waited until it left CREATING). Items without a known operation, or whose operation
        was purged, are read as snapshot_states reads them."""
        states: dict[str, str] = {}
        unknown: list[dict[str, Any]] = []
        for item in items:
            op = None if item.get("kind") == INSTANT else self._creation(item)
            if op is None:
                unknown.append(item)
                continue
            if not is_done(op):
                states[item["name"]] = "UPLOADING"
                continue
            error = operation_error(op)
            if error:
                raise SnapshotFailedError(f"snapshot {item['name']} of disk {item['disk']} was not created: {error}")
            states[item["name"]] = "READY"
        return states | (self.snapshot_states(project, unknown) if unknown else {})

    def await_creations(self: _Reads, items: list[dict[str, Any]], timeout_seconds: float) -> None:
        """Long-poll each standard snapshot's creation operation not yet known DONE (`operations.wait`, one call up
        to about 2 minutes, "Compute Engine API best practices"), so that the READY wait reads each snapshot once
        its upload is over instead of every poll. A wait that returns early, or a purged operation, ends it."""
        deadline = time.monotonic() + timeout_seconds
        for item in items:
            ref = item.get("operation")
            left = deadline - time.monotonic()
            if item.get("kind") == INSTANT or not ref or left <= 0:
                continue
            key = _operation_key(as_operation_ref(ref))
            if key in self._done_operations:
                continue
            try:
                op = self.wait_operation(as_operation_ref(ref), left)
            except gexc.NotFound:
                continue
            if is_done(op):
                self._done_operations[key] = op

    def _creation(self: _Reads, item: dict[str, Any]) -> compute_v1.Operation | None:
        """The item's creation operation as last known; None when it has none or it was purged (404)."""
        ref = item.get("operation")
        if not ref:
            return None
        key = _operation_key(as_operation_ref(ref))
        if key in self._done_operations:
            return self._done_operations[key]
        try:
            op = self.get_operation(as_operation_ref(ref))
        except gexc.NotFound:
            return None
        if is_done(op):
            self._done_operations[key] = op
        return op

    def _instant_state(self: _Reads, project: str, item: dict[str, Any]) -> str:
        """An instant snapshot's status; READY only once its insert operation is DONE too (CREATING until then)."""
        found = self.find_instant_snapshot(project, item["scope"], item["name"])
        if found is None:
            return self._missing_snapshot(item)
        if found.status == "FAILED":
            self._missing_snapshot(item)
            raise SnapshotFailedError(f"instant snapshot {item['name']} of disk {item['disk']} FAILED")
        if found.status != "READY":
            return str(found.status)
        op = self._creation(item)
        if op is None:
            return "READY"  # no operation to ask, or purged: the resource's READY stands
        if not is_done(op):
            return "CREATING"
        error = operation_error(op)
        if error:
            raise SnapshotFailedError(f"instant snapshot {item['name']} of disk {item['disk']} failed: {error}")
        return "READY"

    def _trusted_status(self: _Reads, item: dict[str, Any], status: str) -> str:
        """READY counts only once the disks.createSnapshot operation is DONE too (or purged, so long done).

        With disks.createSnapshot a snapshot can read READY before its creation is done (the race that moved the
        GCE PD CSI driver to snapshots.insert, kubernetes-sigs/gcp-compute-persistent-disk-csi-driver#1857).
        Leaving CREATING, the restart point, is unaffected: that is the cut (container-storage-interface/spec
        pull requests #224 and #307; docs/design/upload-restart.md).
        """
        if status != "READY":
            return status
        op = self._creation(item)
        if op is None:
            return status
        if not is_done(op):
            return "UPLOADING"
        error = operation_error(op)
        if error:
            raise SnapshotFailedError(f"snapshot {item['name']} of disk {item['disk']} was not created: {error}")
        return status

    def _missing_snapshot(self: _Reads, item: dict[str, Any]) -> str:
        """MISSING, or SnapshotFailedError with the creation operation's own error when it ended with one."""
        op = self._creation(item)
        if op is not None and is_done(op):
            error = operation_error(op)
            if error:
                raise SnapshotFailedError(f"snapshot {item['name']} of disk {item['disk']} was not created: {error}")
        return "MISSING"
