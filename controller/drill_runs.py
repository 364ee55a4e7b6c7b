"""The controller starts restore drills: runs of the shared drill DAG, on schedule and on request, one at a time.

Drills need no DAG file of their own (on Composer a new file takes minutes to reach Airflow). The leader (kopf runs
only there) triggers each drill through Airflow's REST API with the validated policy as the run's conf, signed
with the key the workers check (vmbackup.model.run_signature):

- on schedule: each status refresh asks controller/drill_schedule.py for the due slot of
  spec.verification.schedule in spec.timezone; its run id is derived from the policy and the slot, so a second
  trigger (a new leader after a failover) is Airflow's 409, which counts as started;
- on request: `vmbackupctl verify` sets VERIFY_NOW_ANNOTATION; the drill's run id is derived from the object and
  the annotation's value, and the annotation is removed once the drill started;
- one drill per policy at a time: the teardown deletes everything with the policy's drill marker, so before it
  triggers, the controller looks for a queued or running drill of the policy (its run id prefix in the shared DAG,
  or the policy's own drill DAG of an earlier version). A due slot is then skipped (with an Event); a request waits,
  its annotation kept, until that drill ends.

status.verification gets ``startedRun`` (the latest drill started), ``lastScheduleTime`` (the slot or request it
was started for, or the slot skipped) and ``nextDrill``. A started drill whose run failed without writing its drill
report (e.g. refused by the workers: another signing key) is shown as a failed drill, saying where to look.

A policy's drill DAG file of an earlier version is deleted once no run of it is queued or running: deleting it
mid-run could make Airflow mark the run's tasks removed, leaving the drill's VM and disks behind. So too when the
policy moves to another target (the old target's file goes on a later refresh, once its drill ended) and when the
policy is deleted (its finalizer waits for that drill, as a VMRestore's waits for a restore of an earlier version;
an Airflow that cannot say does not hold the deletion up).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import kopf
from google.api_core.exceptions import GoogleAPIError

from controller.airflow_errors import AirflowCallError, AirflowRefusedError, AirflowUnreachableError, DagNotFoundError
from controller.conditions import rfc3339
from controller.config import ControllerConfig
from controller.drill_schedule import drill_conf, due_drill_slot, latest, next_drill_slot
from controller.drills import read_drill_report
from controller.status import PolicyKey, PolicyState, short
from controller.targets import Target, Targets
from vmbackup.model.drill import (
    SHARED_DRILL_DAG_ID,
    drill_dag_id_for,
    drill_run_prefix,
    requested_drill_run_id,
    scheduled_drill_run_id,
)
from vmbackup.model.policy import VERIFY_NOW_ANNOTATION, BackupPolicy
from vmbackup.model.run_signature import SIGNING_KEY_ENV

logger = logging.getLogger(__name__)

StartKind = Literal["started", "exists", "busy", "retry", "refused"]


@dataclasses.dataclass(frozen=True)
class StartOutcome:
    """What became of one attempt to start a drill run; `detail`: the drill in flight (busy), or why not."""

    kind: StartKind
    detail: str = ""


class DrillRuns:
    """Starts each policy's drills in the shared drill DAG and retires its drill DAG file of an earlier version."""

    def __init__(self, config: ControllerConfig, targets: Targets) -> None:
        self.config = config
        self.targets = targets
        self._locks: dict[PolicyKey, asyncio.Lock] = {}
        self._legacy_gone: set[tuple[str, PolicyKey]] = set()  # (bucket, policy): no legacy drill file there
        self._moved_from: dict[PolicyKey, dict[tuple[str, str], Target]] = {}  # old targets with a legacy file left
        self._waiting: set[str] = set()  # run ids of requests already announced as waiting (one Event each)

    # ---- on schedule (the status refresh) ---------------------------------------------------------------

    async def scheduled(self, body: kopf.Body, patch: kopf.Patch, policy: BackupPolicy, target: Target) -> None:
        """Start the due slot's drill once (or skip it while one runs); keep nextDrill; retire a legacy file."""
        key = (policy.namespace, policy.name)
        async with self._lock(key):
            await self._retire_legacy(target, key)
            await self._retire_moved(key)
            verification, shown = policy.spec.verification, _verification(body)
            await self._follow(body, patch, target, {**shown, **dict(patch.status.get("verification") or {})})
            if verification is None:
                _patch_verification(body, patch, {"nextDrill": None} if shown else {})
                return
            now = datetime.now(UTC)
            fields: dict[str, Any] = {
                "nextDrill": rfc3339(next_drill_slot(verification.schedule, policy.spec.timezone, now))
            }
            after = latest(policy.created, _moment(shown.get("lastScheduleTime"))) or now
            slot = due_drill_slot(verification.schedule, policy.spec.timezone, now, after)
            if slot is not None:
                fields.update(await self._start_slot(body, policy, target, slot))
            _patch_verification(body, patch, fields)

    async def _start_slot(
        self, body: kopf.Body, policy: BackupPolicy, target: Target, slot: datetime
    ) -> dict[str, Any]:
        """The status fields of a due slot: started (or found started), skipped, refused; {}: try again later."""
        run_id = scheduled_drill_run_id(policy.namespace, policy.name, slot)
        outcome = await self._start(target, policy, run_id)
        handled = {"lastScheduleTime": rfc3339(slot)}
        if outcome.kind in ("started", "exists"):
            if outcome.kind == "started":
                kopf.event(body, type="Normal", reason="DrillStarted", message=f"run {run_id} of {SHARED_DRILL_DAG_ID}")
            return {**handled, "startedRun": run_id}
        if outcome.kind == "busy":
            why = f"drill slot {rfc3339(slot)} skipped: drill {outcome.detail} of this policy has not ended"
            kopf.event(body, type="Warning", reason="DrillSkipped", message=short(why))
            return handled
        if outcome.kind == "refused":
            kopf.event(body, type="Warning", reason="DrillNotStarted", message=short(outcome.detail))
            return handled
        logger.info("Drill %s not started yet: %s", run_id, outcome.detail)
        return {}

    async def _follow(self, body: kopf.Body, patch: kopf.Patch, target: Target, shown: Mapping[str, Any]) -> None:
        """A started drill with no result yet whose run failed before its report: a failed drill, saying why."""
        run_id, since, ended = (
            shown.get("startedRun"),
            _moment(shown.get("lastScheduleTime")),
            _moment(shown.get("time")),
        )
        if not run_id or since is None or (ended is not None and ended >= since):
            return  # nothing started, or its result (or a later one) is shown
        try:
            if await self.targets.airflow(target).run_state(SHARED_DRILL_DAG_ID, str(run_id)) != "failed":
                return
            report = await asyncio.to_thread(read_drill_report, self.targets.bucket(target).bucket, *_key(body))
        except (AirflowCallError, GoogleAPIError) as exc:
            logger.info("Cannot follow drill %s: %s", run_id, exc)
            return
        if report is not None and report.run_id == run_id:
            return  # its report is there: the next refresh shows it
        message = short(
            f"drill run {run_id} failed before reporting: see its first failed task's log in Airflow (a run the "
            f"workers refused says why there, e.g. a {SIGNING_KEY_ENV} that differs from the controller's)"
        )
        _patch_verification(body, patch, {"result": "Failed", "message": message, "time": rfc3339(datetime.now(UTC))})
        kopf.event(body, type="Warning", reason="RestoreDrillFailed", message=message)

    # ---- on request (VERIFY_NOW_ANNOTATION) -------------------------------------------------------------

    async def requested(
        self, body: kopf.Body, patch: kopf.Patch, state: PolicyState | None, target: Target | None
    ) -> None:
        """Start the requested drill, then drop the annotation; wait (annotation kept) while a drill runs."""
        if state is not None and state.outcome in ("Invalid", "Refused"):
            self._not_started(body, patch, state.message)
            return
        if state is None or state.policy is None or target is None or state.outcome != "Uploaded":
            raise kopf.TemporaryError("the policy's DAG is not uploaded yet", delay=5)
        policy = state.policy
        if policy.spec.verification is None:
            self._not_started(body, patch, "the policy has no spec.verification: set it to have restore drills")
            return
        run_id = requested_drill_run_id(policy.namespace, policy.name, _request_token(body))
        async with self._lock((policy.namespace, policy.name)):
            outcome = await self._start(target, policy, run_id)
        if outcome.kind == "refused":
            self._not_started(body, patch, outcome.detail)
            return
        if outcome.kind in ("busy", "retry"):
            why = f"drill {outcome.detail} of this policy to end" if outcome.kind == "busy" else outcome.detail
            if outcome.kind == "busy" and run_id not in self._waiting:
                self._waiting.add(run_id)
                kopf.event(
                    body, type="Normal", reason="DrillWaiting", message=short(f"requested drill waits for {why}")
                )
            raise kopf.TemporaryError(f"requested drill waits for {why}", delay=self.config.poll_interval_seconds)
        self._waiting.discard(run_id)
        patch.metadata.annotations[VERIFY_NOW_ANNOTATION] = None
        _patch_verification(body, patch, {"startedRun": run_id, "lastScheduleTime": rfc3339(datetime.now(UTC))})
        kopf.event(body, type="Normal", reason="DrillStarted", message=f"run {run_id} of {SHARED_DRILL_DAG_ID}")

    @staticmethod
    def _not_started(body: kopf.Body, patch: kopf.Patch, why: str) -> None:
        patch.metadata.annotations[VERIFY_NOW_ANNOTATION] = None
        kopf.event(body, type="Warning", reason="DrillNotStarted", message=short(why))

    # ---- shared: one drill per policy, signed --------------------------------------------------------------

    async def _start(self, target: Target, policy: BackupPolicy, run_id: str) -> StartOutcome:
        """Trigger the run unless another drill of the policy is queued or running (the caller holds its lock)."""
        key = self.config.run_signing_key
        if key is None:
            return StartOutcome("retry", f"the controller's {SIGNING_KEY_ENV}, to sign drill runs with, is not set")
        airflow = self.targets.airflow(target)
        try:
            active = await self._active_drill(airflow, policy)
            if active is not None:
                return StartOutcome("exists" if active == run_id else "busy", active)
            conf = drill_conf(key, run_id, policy.to_json(), datetime.now(UTC), self.config.run_signature_ttl_seconds)
            await airflow.set_paused(SHARED_DRILL_DAG_ID, False)
            started = await airflow.start_run_once(SHARED_DRILL_DAG_ID, run_id, conf)
        except (AirflowUnreachableError, DagNotFoundError) as exc:
            return StartOutcome("retry", str(exc))
        except AirflowRefusedError as exc:
            return StartOutcome("refused", f"Airflow refused to start drill {run_id}: {exc}")
        logger.info("Drill %s of %s/%s %s", run_id, policy.namespace, policy.name, "started" if started else "exists")
        return StartOutcome("started" if started else "exists", run_id)

    @staticmethod
    async def _active_drill(airflow: Any, policy: BackupPolicy) -> str | None:
        """The run id of a queued or running drill of the policy (shared DAG, or its DAG of an earlier version)."""
        prefix, legacy = (
            drill_run_prefix(policy.namespace, policy.name),
            drill_dag_id_for(policy.namespace, policy.name),
        )
        for run in await airflow.active_runs([SHARED_DRILL_DAG_ID, legacy]):
            if run.dag_id == legacy or run.run_id.startswith(prefix):
                return str(run.run_id)
        return None

    async def _retire_legacy(self, target: Target, key: PolicyKey) -> bool:
        """Delete the policy's drill DAG file of an earlier version once no run of it is queued or running; True when
        it is gone (or never was there)."""
        if (target.bucket, key) in self._legacy_gone:
            return True
        bucket, dag_id = self.targets.bucket(target), drill_dag_id_for(*key)
        try:
            if await asyncio.to_thread(bucket.has_dag, dag_id):
                if await self.targets.airflow(target).active_runs([dag_id]):
                    logger.info("Keeping %s in gs://%s until its drill in flight ends", dag_id, bucket.name)
                    return False
                await asyncio.to_thread(bucket.delete_dag, dag_id)
                logger.info("Deleted %s from gs://%s: drills now run in %s", dag_id, bucket.name, SHARED_DRILL_DAG_ID)
        except (AirflowCallError, GoogleAPIError, OSError) as exc:
            logger.info("Cannot retire %s yet: %s", dag_id, exc)
            return False
        self._legacy_gone.add((target.bucket, key))
        return True

    # ---- the policy moved, or goes --------------------------------------------------------------------------

    async def retire_moved(self, old: Target, key: PolicyKey) -> None:
        """The policy moved away from `old`: its drill DAG file of an earlier version there goes now if no drill of
        it is in flight, else on a later status refresh once it ended."""
        async with self._lock(key):
            self._moved_from.setdefault(key, {})[old.key] = old
            await self._retire_moved(key)

    async def _retire_moved(self, key: PolicyKey) -> None:
        moved = self._moved_from.get(key, {})
        for old_key, old in list(moved.items()):
            if await self._retire_legacy(old, key):
                del moved[old_key]
        if not moved:
            self._moved_from.pop(key, None)

    async def retire_deleted(self, target: Target, key: PolicyKey) -> None:
        """The policy is being deleted: its drill DAG file of an earlier version (in its target and any it moved
        away from) goes once no run of it is in flight; kopf.TemporaryError, so that its finalizer waits, while one
        is. An Airflow that cannot say holds nothing up (as for a VMRestore's DAG of an earlier version)."""
        dag_id = drill_dag_id_for(*key)
        async with self._lock(key):
            for place in [target, *self._moved_from.get(key, {}).values()]:
                bucket = self.targets.bucket(place)
                try:
                    if not await asyncio.to_thread(bucket.has_dag, dag_id):
                        continue
                    runs = await self.targets.airflow(place).active_runs([dag_id])
                except AirflowCallError as exc:
                    logger.info("Cannot read the runs of %s (deleting it all the same): %s", dag_id, exc)
                    runs = []
                except (GoogleAPIError, OSError) as exc:
                    raise kopf.TemporaryError(
                        f"cannot look for {dag_id} in gs://{bucket.name}: {exc}", delay=30
                    ) from exc
                if runs:
                    raise kopf.TemporaryError(
                        f"drill run {runs[0].run_id} of {dag_id} is {runs[0].state}: its DAG file is removed once it "
                        "ends",
                        delay=self.config.poll_interval_seconds,
                    )
                try:
                    await asyncio.to_thread(bucket.delete_dag, dag_id)
                except (GoogleAPIError, OSError) as exc:
                    raise kopf.TemporaryError(
                        f"cannot delete {dag_id} from gs://{bucket.name}: {exc}", delay=30
                    ) from exc
            self._moved_from.pop(key, None)

    def _lock(self, key: PolicyKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


def _key(body: kopf.Body) -> PolicyKey:
    return str(body.metadata.namespace), str(body.metadata.name)


def _verification(body: kopf.Body) -> dict[str, Any]:
    return dict((body.get("status") or {}).get("verification") or {})


def _patch_verification(body: kopf.Body, patch: kopf.Patch, fields: Mapping[str, Any]) -> None:
    """Merge `fields` into status.verification (over what this handler already patched there); None removes."""
    current = {**_verification(body), **dict(patch.status.get("verification") or {})}
    desired = {k: v for k, v in {**current, **fields}.items() if v is not None}
    if desired != current:
        patch.status["verification"] = {**desired, **{k: None for k in current if k not in desired}}


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _request_token(body: kopf.Body) -> str:
    """One drill per request: kopf may handle the same annotation twice (a retry, a restart before its removal was
    stored); the same token is the same run id, so the second trigger is Airflow's 409."""
    value = str(body.metadata.annotations.get(VERIFY_NOW_ANNOTATION, ""))
    return hashlib.sha256(f"{body.metadata.uid}/{value}".encode()).hexdigest()[:16]
