"""Finished runs -> Kubernetes Events and metrics: once per run, however many polls see it (and not again after a restart).

The reconciler's status timer hands each poll's typed observation (controller/status.py) to :class:`RunAnnouncer`;
what was announced last is kept in the policy's PolicyState.
"""

from __future__ import annotations

import time
from datetime import datetime

import kopf

from controller.airflow_api import FINISHED_RUN_STATES
from controller.conditions import rfc3339
from controller.metrics import ControllerMetrics
from controller.status import LastRun, PolicyState, RunObservation, short


class RunAnnouncer:
    """A BackupSucceeded, BackupFailed or SlotMissed Event and the run's metrics for each newly finished run."""

    def __init__(self, metrics: ControllerMetrics) -> None:
        self.metrics = metrics

    def announce(self, body: kopf.Body, state: PolicyState, observation: RunObservation | None) -> None:
        """One Event and one metric update per finished run, however many polls see it."""
        fields = observation.run if observation is not None and observation.reachable else None
        last_run = fields.last_run if fields is not None else None
        if observation is None or fields is None or last_run is None:
            return
        run = (last_run.run_id, last_run.state)
        if not run[0] or run[1] not in FINISHED_RUN_STATES or run == state.announced_run:
            return
        if state.announced_run is None:
            shown = (body.get("status") or {}).get("lastRun") or {}
            if (shown.get("runId"), shown.get("state")) == run:
                state.announced_run = run  # announced before a restart: its gauges again, its counts not
                self._record(state, observation, last_run, count=False)
                return
        state.announced_run = run
        self._record(state, observation, last_run, count=True)
        missed = fields.missed_slot if fields.result == "Missed" else None
        if run[1] == "success" and missed:
            message = f"run {run[0]} touched no VM: slot {rfc3339(missed.slot)} missed ({missed.reason}): "
            kopf.event(body, type="Warning", reason="SlotMissed", message=short(message + missed.message))
            self.metrics.missed_runs.labels(state.namespace, state.name, missed.reason).inc()
        elif run[1] == "success":
            snapshots = (fields.taken.snapshots if fields.taken is not None else None) or []
            message = f"run {run[0]} succeeded: {len(snapshots)} snapshot(s) {', '.join(snapshots)}"
            kopf.event(body, type="Normal", reason="BackupSucceeded", message=short(message))
            ended = _whole_seconds(last_run.end_time) or time.time()
            self.metrics.last_success.labels(state.namespace, state.name).set(ended)
        else:
            step = last_run.failed_step
            message = f"run {run[0]} failed" + (f" at {step}" if step else "") + f": {last_run.message or ''}"
            kopf.event(body, type="Warning", reason="BackupFailed", message=short(message))
            self.metrics.failed_runs.labels(state.namespace, state.name).inc()

    def _record(self, state: PolicyState, observation: RunObservation, last_run: LastRun, *, count: bool) -> None:
        duration = last_run.duration_seconds
        self.metrics.record_run(
            state.namespace,
            state.name,
            observation.report,
            float(duration) if duration is not None else None,
            count=count,
        )


def _whole_seconds(moment: datetime | None) -> float | None:
    """A time as the status shows it (whole seconds), as a Unix timestamp."""
    return moment.replace(microsecond=0).timestamp() if moment is not None else None
