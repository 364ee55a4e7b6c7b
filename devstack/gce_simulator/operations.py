"""Operations: PENDING -> RUNNING -> DONE, one at a time per resource, purged after the retention period.

A resource with an operation in flight refuses a second mutating call at once with 400 ``resourceNotReady``
(errors.py), as Compute Engine does; a DONE operation is purged after ``Profile.operation_retention_seconds``
(then get/wait answer 404). ``operations.wait`` long-polls until DONE or the profile's wait cap.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .common import API_PREFIX
from .errors import not_found, resource_not_ready
from .faults import Fault
from .profile import Profile
from .resources import Operation
from .scheduler import Scheduler

HTTP_REASON_PHRASES = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    409: "CONFLICT",
    429: "TOO MANY REQUESTS",
    503: "SERVICE UNAVAILABLE",
}


class OperationLedger(Scheduler):
    """The operations of all projects and the resources they keep busy. ``_``-methods expect the lock held."""

    def __init__(self, profile: Profile | None = None) -> None:
        super().__init__(profile)
        self._op_seq = itertools.count(1)
        # operations.wait calls parked on ``cond`` right now; kept across reset(), whose wake-up they count down
        self.blocked_waits = 0
        self._clear_operations()

    def _clear_operations(self) -> None:
        self.operations: dict[tuple[str, str | None, str], Operation] = {}
        self.purged_operations: list[Operation] = []  # gone from the API, kept for inspection
        self._busy: dict[str, deque[Callable[[], None]]] = {}

    def _new_operation(
        self,
        project: str,
        zone: str | None,
        operation_type: str,
        target_link: str,
        target_id: str,
        resource_key: str | None,
        faults: list[Fault],
        region: str | None = None,
    ) -> Operation:
        op = Operation(project, zone, operation_type, target_link, target_id, resource_key, region=region)
        op.name = f"operation-{int(time.time() * 1000)}-{next(self._op_seq):06d}-{random.getrandbits(32):08x}"
        for fault in faults:
            if fault.action == "operation_error":
                op.fault = fault
            elif fault.action == "slow":
                op.extra_seconds += fault.extra_seconds
        self.operations[(project, op.scope, op.name)] = op
        return op

    def check_not_busy(self, resource_link: str) -> None:
        """A resource with an operation in flight refuses another at once: 400 resourceNotReady (errors.py)."""
        if resource_link in self._busy:
            raise resource_not_ready(resource_link.removeprefix(API_PREFIX))

    def is_busy(self, resource_link: str) -> bool:
        return resource_link in self._busy

    def _run_serialized(self, op: Operation, body: Callable[[], None]) -> None:
        """Start ``body`` (the op's first RUNNING step) after the PENDING delay; refused if the resource is busy."""

        def begin() -> None:
            op.status = "RUNNING"
            op.start_time = time.time()
            op.progress = 0
            body()

        def scheduled() -> None:
            self._after(self.profile.operation_pending_seconds, begin)

        key = op.resource_key
        if key is None:
            scheduled()
            return
        if key in self._busy:
            del self.operations[(op.project, op.scope, op.name)]
            self.check_not_busy(key)
        self._busy[key] = deque()
        scheduled()

    def _finish(self, op: Operation, error: tuple[int, str, str] | None = None) -> None:
        """DONE, with ``error`` = (http status, code, message) if failed; frees the resource for the next op."""
        op.status = "DONE"
        op.progress = 100
        op.end_time = time.time()
        if error is not None:
            status, code, message = error
            op.error = {
                "error": {"errors": [{"code": code, "message": message}]},
                "httpErrorStatusCode": status,
                "httpErrorMessage": HTTP_REASON_PHRASES.get(status, "ERROR"),
            }
        self._busy.pop(op.resource_key or "", None)
        # Purged after the retention period, then get/wait answer 404 (profile.py: operation retention)
        key = (op.project, op.scope, op.name)
        self._after(self.profile.operation_retention_seconds, lambda: self._purge(key))
        self.cond.notify_all()

    def _purge(self, key: tuple[str, str | None, str]) -> None:
        op = self.operations.pop(key, None)
        if op is not None:
            self.purged_operations.append(op)

    def _fail_with_fault(self, op: Operation) -> bool:
        """If the op carries an operation_error fault, finish it failed (after its slow delay) and say so."""
        fault = op.fault
        if fault is None:
            return False
        error = (fault.status, fault.error_code, fault.error_message() if fault.message else "Operation failed.")
        self._after(op.extra_seconds, lambda: self._finish(op, error))
        return True

    def _operation(self, project: str, scope: str | None, name: str) -> Operation:
        """``scope``: a zone, ``regions/R``, or None for global operations."""
        op = self.operations.get((project, scope, name))
        if op is None:
            where = "global" if not scope else scope if scope.startswith("regions/") else f"zones/{scope}"
            raise not_found(f"projects/{project}/{where}/operations/{name}")
        return op

    def get_operation(self, project: str, zone: str | None, name: str) -> dict[str, Any]:
        with self.cond:
            return self._operation(project, zone, name).to_json()

    def wait_operation(self, project: str, zone: str | None, name: str) -> dict[str, Any]:
        """Long-poll until DONE or the profile's wait cap (scaled); returns the operation as it then is."""
        with self.cond:
            op = self._operation(project, zone, name)
            epoch = self._epoch
            self.blocked_waits += 1  # only seen by others while parked: wait_for releases the lock
            try:
                self.cond.wait_for(
                    lambda: op.status == "DONE" or not self._running or epoch != self._epoch,
                    timeout=self.profile.scaled(self.profile.wait_cap),
                )
            finally:
                self.blocked_waits -= 1
            return op.to_json()

    def operation_list(self) -> list[dict[str, Any]]:
        with self.cond:
            return [op.to_json() for op in [*self.purged_operations, *self.operations.values()]]

    def in_flight(self, project: str | None = None, location: str | None = None) -> int:
        """Operations PENDING or RUNNING (of ``project`` and ``location`` (a region or ``global``), or of all)."""
        with self.cond:
            return sum(
                1
                for op in self.operations.values()
                if op.status != "DONE"
                and (project is None or op.project == project)
                and (location is None or op.location == location)
            )

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no operation is PENDING or RUNNING; False on timeout."""
        with self.cond:
            return self.cond.wait_for(
                lambda: all(op.status == "DONE" for op in self.operations.values()), timeout=timeout
            )
