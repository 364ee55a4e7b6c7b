"""Sensors of both workflows: wait for a Compute Engine operation, or for snapshots to reach a state.

Each looks through the hook and, when deferrable, hands its wait to a trigger of compute/triggers.py (the
triggers import only the hook, never this module). Defaults suit Composer: mode="reschedule" (no worker slot held between pokes) and a timeout that the
DAG factory always sets from the policy (Airflow's default of 7 days would hide a stuck VM).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from vmbackup.airflow_compat import (
    CONTROL_FLOW_EXCEPTIONS,
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
)
from vmbackup.compute.hook import (
    READY,
    TAKEN,
    ComputeEngineHook,
    OperationRef,
    SnapshotFailedError,
    as_operation_ref,
    is_done,
    operation_error,
    pending_snapshots,
)
from vmbackup.compute.step_operator import now_iso, record_error
from vmbackup.model.retention import parse_timestamp

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["READY", "TAKEN", "OperationStatusSensor", "SnapshotStatusSensor", "operation_ref"]


def operation_ref(value: Any, project: str | None = None, zone: str | None = None) -> OperationRef | None:
    """The operation in a step's return value: a step result dict, an OperationRef, or a bare name."""
    if value is None:
        return None
    if isinstance(value, str):
        if not project:
            raise ValueError("an operation given by name needs project (and zone unless it is global)")
        return OperationRef(name=value, project=project, zone=zone)
    if isinstance(value, dict) and "operation" in value:
        return operation_ref(value["operation"], project, zone)
    if isinstance(value, dict) and "name" in value and "project" in value:
        return as_operation_ref(value)
    raise ValueError(f"not an operation reference: {value!r}")


class _RecordingSensor(BaseSensorOperator):
    def __init__(self, *, mode: str = "reschedule", **kwargs: Any):
        if not kwargs.get("timeout"):
            raise ValueError(f"{type(self).__name__} needs an explicit timeout (seconds); the default is 7 days")
        super().__init__(mode=mode, **kwargs)

    def _subject(self) -> Any:
        return None

    def execute(self, context: Any) -> Any:
        return self._recorded(context, lambda: super(_RecordingSensor, self).execute(context))

    def _recorded(self, context: Any, step: Callable[[], T]) -> T:
        """Run a step of this sensor; a failure's message is left for the report (control flow passes through)."""
        try:
            return step()
        except CONTROL_FLOW_EXCEPTIONS:
            raise
        except Exception as exc:
            record_error(context, exc, self._subject())
            raise


class OperationStatusSensor(_RecordingSensor):
    """Waits for a Compute Engine operation started by a prior task, using the `wait` long-poll.

    `operation` is usually the prior task's XComArg (its return value); `prior_task_id` pulls it instead,
    as in the tutorial. A missing operation (the step had nothing to do) counts as done. An operation that
    ends with an error fails the task, without retries, with Compute Engine's own message.
    With deferrable=True the wait happens in the triggerer (OperationStatusTrigger). In reschedule mode each poke
    holds a worker slot for as long as its long-poll lasts (long_poll_seconds; 0 means a single GET).
    When the step's result says when it asked for the operation (`requested_at`), the timeout counts from then and
    no long-poll runs past it; `timeout_field` names the policy field to raise in the timeout's message.
    """

    template_fields: tuple[str, ...] = ("operation",)
    ui_color = "#fef7e0"

    def __init__(
        self,
        *,
        operation: Any = None,
        prior_task_id: str | None = None,
        project: str | None = None,
        zone: str | None = None,
        long_poll_seconds: float = 60.0,
        deferrable: bool = False,
        timeout_field: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.operation = operation
        self.prior_task_id = prior_task_id
        self.project = project
        self.zone = zone
        self.long_poll_seconds = long_poll_seconds
        self.deferrable = deferrable
        self.timeout_field = timeout_field

    def _subject(self) -> Any:
        return self.operation if isinstance(self.operation, dict) and "instance" in self.operation else None

    def _ref(self, context: Any) -> OperationRef | None:
        value = self.operation
        if value is None and self.prior_task_id:
            value = context["ti"].xcom_pull(task_ids=self.prior_task_id)
        return operation_ref(value, self.project, self.zone)

    def _finished(self, context: Any, op: Any) -> dict[str, Any]:
        error = operation_error(op)
        if error:
            raise AirflowFailException(f"Compute Engine operation {op.name} failed: {error}")
        result = {
            "operation": op.name,
            "operation_type": op.operation_type,
            "start_time": op.start_time or None,
            "end_time": op.end_time or None,
            "observed_at": now_iso(),
        }
        if isinstance(self.operation, dict):
            result.update({k: self.operation.get(k) for k in ("instance", "zone") if k in self.operation})
        self.on_done(context)
        return result

    def on_done(self, context: Any) -> None:
        """Called once the operation succeeded (subclasses release locks here)."""

    def poke(self, context: Any) -> PokeReturnValue:
        ref = self._ref(context)
        if ref is None:
            self.on_done(context)
            return PokeReturnValue(is_done=True, xcom_value=None)
        hook = ComputeEngineHook()
        left = self._seconds_left()
        long_poll = self.long_poll_seconds if left is None else min(self.long_poll_seconds, max(left, 0.0))
        # long_poll_seconds=0: one GET, so a reschedule-mode poke never holds its slot in a long-poll.
        op = hook.wait_operation(ref, long_poll) if long_poll > 0 else hook.get_operation(ref)
        if is_done(op):
            return PokeReturnValue(is_done=True, xcom_value=self._finished(context, op))
        log.info("operation %s is %s", op.name, op.status)
        left = self._seconds_left()
        if left is not None and left <= 0:
            field = f" ({self.timeout_field})" if self.timeout_field else ""
            raise AirflowSensorTimeout(
                f"Compute Engine operation {op.name} ({op.operation_type}) was still {op.status} "
                f"{float(self.timeout):g}s after it was requested: the timeout{field} ran out. Raise it if "
                "this VM needs longer"
            )
        return PokeReturnValue(is_done=False)

    def _seconds_left(self) -> float | None:
        """Seconds until the timeout, counted from when the prior step asked for the operation (None: unknown)."""
        requested = self.operation.get("requested_at") if isinstance(self.operation, dict) else None
        if not requested:
            return None
        return float(self.timeout) - (time.time() - parse_timestamp(str(requested)).timestamp())

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        return self._recorded(context, lambda: self._look_then_defer(context))

    def _look_then_defer(self, context: Any) -> Any:
        ref = self._ref(context)
        if ref is None:
            self.on_done(context)
            return None
        hook = ComputeEngineHook()
        op = hook.get_operation(ref)
        if is_done(op):
            return self._finished(context, op)
        from vmbackup.compute.triggers import OperationStatusTrigger

        left = self._seconds_left()
        self.defer(
            trigger=OperationStatusTrigger(
                operation=dict(ref), endpoint=hook.endpoint, long_poll_seconds=self.long_poll_seconds
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) if left is None else max(1.0, left)),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        return self._recorded(context, lambda: self._resumed(context, event))

    def _resumed(self, context: Any, event: dict[str, Any] | None) -> Any:
        if not event or event.get("status") != "done":
            raise AirflowFailException(f"operation wait ended without a result: {event!r}")
        ref = operation_ref(event["operation_ref"])
        assert ref is not None
        return self._finished(context, ComputeEngineHook().get_operation(ref))


class SnapshotStatusSensor(_RecordingSensor):
    """Waits until every snapshot of a SnapshotDiskOperator result is taken (left CREATING) or READY.

    A snapshot that turns FAILED, or whose creation operation ends with an error, fails the task with
    Compute Engine's message. With deferrable=True, after one look on the worker the wait happens in the
    triggerer (SnapshotStatusTrigger, one look every poke_interval): no task starts per look.
    """

    template_fields = ("snapshots",)
    ui_color = "#e6f4ea"

    def __init__(self, *, snapshots: Any, project: str, until: str = TAKEN, deferrable: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if until not in (TAKEN, READY):
            raise ValueError(f"until must be {TAKEN!r} or {READY!r}")
        self.snapshots = snapshots
        self.project = project
        self.until = until
        self.deferrable = deferrable

    def _subject(self) -> Any:
        return self.snapshots if isinstance(self.snapshots, dict) else None

    def _items(self) -> list[dict[str, Any]]:
        return list((self.snapshots or {}).get("snapshots") or [])

    def poke(self, context: Any) -> PokeReturnValue:
        try:
            states = ComputeEngineHook().states_until(self.project, self._items(), self.until)
        except SnapshotFailedError as exc:  # Compute Engine's verdict: retrying cannot change it
            raise AirflowFailException(str(exc)) from None
        pending = pending_snapshots(states, self.until)
        if pending:
            log.info("waiting for snapshots %s", ", ".join(f"{n}={s}" for n, s in sorted(pending.items())))
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._done_value(states))

    def _done_value(self, states: dict[str, str]) -> dict[str, Any]:
        result = self.snapshots or {}
        return {
            "instance": result.get("instance"),
            "zone": result.get("zone"),
            "states": states,
            "observed_at": now_iso(),
            "at_ms": int(time.time() * 1000),
        }

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        return self._recorded(context, lambda: self._look_then_defer(context))

    def _look_then_defer(self, context: Any) -> Any:
        # A READY wait begins while the upload runs (minutes): a look now would see it unfinished and cost a call
        # against the quota; the trigger's long-poll of the creation (`operations.wait`) is its first look.
        if self.until != READY:
            looked = self.poke(context)
            if looked.is_done:
                return looked.xcom_value
        from vmbackup.compute.triggers import SnapshotStatusTrigger

        self.defer(
            trigger=SnapshotStatusTrigger(
                snapshots=self._items(),
                project=self.project,
                until=self.until,
                endpoint=ComputeEngineHook().endpoint,
                poll_seconds=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        return self._recorded(context, lambda: self._resumed(context, event))

    def _resumed(self, context: Any, event: dict[str, Any] | None) -> Any:
        """The trigger's states when it saw every snapshot there (read by the same snapshot_states as a poke, so
        not read again); otherwise one more look on the worker, for the result or Compute Engine's error."""
        states = (event or {}).get("states")
        if (event or {}).get("status") == "done" and isinstance(states, dict):
            return self._done_value(states)
        looked = self.poke(context)
        if looked.is_done:
            return looked.xcom_value
        message = (event or {}).get("message") or f"snapshots are not {self.until} yet after the trigger fired"
        raise AirflowFailException(message)
