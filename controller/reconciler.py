"""The controller's behaviour, independent of kopf's plumbing (controller/handlers.py wires it).

Spec -> validated policy -> tenancy check -> rendered DAG -> bucket (only when its bytes change);
Airflow -> one batched poll per target and interval -> per-policy status patched only when it
changes; on-demand runs, suspend, deletion. Per-policy state lives in memory and is rebuilt by
kopf's resume handlers after a restart, so the bucket and the object's status stay the truth.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from controller.airflow_errors import AirflowRefusedError, AirflowUnreachableError, DagNotFoundError
from controller.airflow_link import RunStatusFeed
from controller.conditions import READY, changed_fields, find_condition
from controller.config import ControllerConfig
from controller.coverage_scan import CoverageScan
from controller.drill_runs import DrillRuns
from controller.drills import DrillStatus
from controller.keeper import KeeperWatch
from controller.metrics import ControllerMetrics
from controller.run_events import RunAnnouncer
from controller.schedule_interval import schedule_interval_seconds
from controller.status import PolicyKey, PolicyState, RunObservation, desired_status, shared_instances_note, short
from controller.target_grants import TargetNotAllowedError
from controller.targets import Target, Targets, TargetUnavailableError
from controller.tenancy import Tenancy
from controller.wait_mode import WaitModeResolver
from vmbackup.model.policy import (
    BACKUP_NOW_ANNOTATION,
    BackupPolicy,
    ComposerTarget,
    PolicyError,
    WaitMode,
    dag_id_for,
    parse_policy,
)

logger = logging.getLogger(__name__)


def render_dag(policy: BackupPolicy) -> str:
    """The DAG file for a policy (dags_templates owns the template; imported late to keep start-up light)."""
    from dags_templates.render import render_dag as render

    return str(render(policy))


class _PollCache:
    """The last batched observation of one target, reused until it is an interval old."""

    def __init__(self) -> None:
        self.taken_at = float("-inf")
        self.observations: dict[PolicyKey, RunObservation] = {}
        self.lock = asyncio.Lock()


class Controller:
    def __init__(
        self,
        config: ControllerConfig,
        *,
        tenancy: Tenancy,
        targets: Targets,
        feed: RunStatusFeed,
        metrics: ControllerMetrics | None = None,
    ):
        self.config = config
        self.tenancy = tenancy
        self.targets = targets
        self.feed = feed
        self.metrics = metrics or ControllerMetrics()
        self.states: dict[PolicyKey, PolicyState] = {}
        self._locks: dict[PolicyKey, asyncio.Lock] = {}
        self._polls: dict[tuple[str, str], _PollCache] = {}
        self._targets_by_key: dict[tuple[str, str], Target] = {}
        self.wait_modes = WaitModeResolver(config.wait_mode, config.wait_mode_refresh_seconds)
        self.drills = DrillStatus(self.metrics)
        self.drill_runs = DrillRuns(config, targets)  # drills start as runs of the shared drill DAG
        self.runs = RunAnnouncer(self.metrics)
        self.keeper = KeeperWatch(config, self.metrics, tenancy, targets)  # the keeper DAG and its report (issue 23)
        self.coverage: CoverageScan | None = None  # the leader's coverage timer (app.py sets it; handlers start it)

    # ---- start-up and shutdown -------------------------------------------------------------

    async def start(self) -> None:
        """Sync plugins to the default target; failures are logged and retried before the first DAG upload."""
        if not self.config.has_default_target:
            return
        try:
            target = await self.targets.default()
            result = await self.targets.ensure_plugins(target)
        except TargetUnavailableError as exc:
            logger.error("Plugin sync at start-up failed (retried before the first upload): %s", exc)
            return
        if result is not None:
            self.metrics.uploads.labels("plugin").inc(len(result.uploaded))
        await self.keeper.ensure_dag(target)

    async def close(self) -> None:
        await self.targets.close()

    # ---- spec -> bucket ----------------------------------------------------------------------

    async def reconcile(self, body: kopf.Body, patch: kopf.Patch, of: PolicyState | None = None) -> None:
        """Validate, check tenancy, render and upload; the status says how it went (``of``: if still the policy's)."""
        key = (str(body.metadata.namespace), str(body.metadata.name))
        async with self._lock(key):
            if of is not None and self.states.get(key) is not of:
                return
            started = time.monotonic()
            state = self._state(key)
            state.generation = int(body.metadata.get("generation") or 0)
            try:
                await self._reconcile(body, state)
            finally:
                self.metrics.reconciles.labels(_metric_result(state)).inc()
                self.metrics.reconcile_seconds.observe(time.monotonic() - started)
                self._write_status(body, patch, state, self._cached_observation(state))

    async def _reconcile(self, body: kopf.Body, state: PolicyState) -> None:
        before = (state.reason, state.message)
        policy = self._validated(body, state, before)
        if policy is None:
            return
        target = await self._allowed_target(body, state, before, policy)
        if target is None:
            return
        policy = policy.waiting(await self.wait_mode(target))
        previous_target = state.target_key
        await self._upload(body, state, policy, target)
        await self.keeper.ensure_dag(target, policy.spec.project)
        if previous_target is not None and previous_target != target.key:
            old = self._targets_by_key[previous_target]
            await asyncio.to_thread(self.targets.bucket(old).delete_dag, state.dag_id)
            await self.drill_runs.retire_moved(old, (state.namespace, state.name))
        seen = self._cached_observation(state)
        if seen is None or seen.reachable:  # an unreachable Airflow would only slow the reconcile down
            await self._apply_pause(state, target)

    def _validated(self, body: kopf.Body, state: PolicyState, before: tuple[str, str]) -> BackupPolicy | None:
        """The spec as a policy; None (and the status says why) when it is not valid."""
        spec = dict(body.spec)
        state.suspend = spec.get("suspend") is True
        try:
            policy = parse_policy(
                state.namespace, state.name, spec, state.generation, body.metadata.get("creationTimestamp")
            )
        except PolicyError as exc:
            problems = "; ".join(f"{field}: {message}" for field, message in exc.problems)
            self._set(state, "Invalid", "InvalidSpec", f"{problems} (the last valid DAG, if any, is kept)")
            _warn_once(body, state, before, problems)
            return None
        state.policy = policy
        return policy

    async def _allowed_target(
        self, body: kopf.Body, state: PolicyState, before: tuple[str, str], policy: BackupPolicy
    ) -> Target | None:
        """Where the policy's DAG goes, plugins synced; None when the tenancy map refuses it (then refused)."""
        refusal = self.tenancy.refusal(policy)
        if refusal is not None:
            await self._refuse(body, state, before, refusal)
            return None
        try:
            target = await self.targets.resolve(policy.namespace, policy.spec.composer)
            synced = await self.targets.ensure_plugins(target)
        except TargetNotAllowedError as exc:  # the tenancy check above already says so; kept for defence in depth
            await self._refuse(body, state, before, str(exc))
            return None
        except TargetUnavailableError as exc:
            self._set(state, "Error", "TargetUnavailable", str(exc))
            raise kopf.TemporaryError(str(exc), delay=self.config.poll_interval_seconds) from exc
        if synced is not None:
            self.metrics.uploads.labels("plugin").inc(len(synced.uploaded))
        return target

    async def _upload(self, body: kopf.Body, state: PolicyState, policy: BackupPolicy, target: Target) -> None:
        """Render and upload the DAG (only when its bytes change); drills need no DAG file (drill_runs.py)."""
        try:
            source = render_dag(policy)
        except Exception as exc:  # a bug, not bad input: say so in the status, keep the last DAG, retry slowly
            self._set(state, "Error", "RenderFailed", f"cannot render the DAG (nothing uploaded): {exc}")
            raise kopf.TemporaryError(f"rendering {policy.dag_id} failed: {exc}", delay=300) from exc
        bucket = self.targets.bucket(target)
        try:
            result = await asyncio.to_thread(bucket.upload_dag, policy.dag_id, source)
        except Exception as exc:
            self._set(state, "Error", "UploadFailed", f"cannot upload to gs://{bucket.name}: {exc}")
            raise kopf.TemporaryError(f"upload to gs://{bucket.name} failed: {exc}", delay=30) from exc
        self._targets_by_key[target.key] = target
        state.target_key = target.key
        state.dag_hash = result.content_hash
        state.wait_mode = policy.wait_mode
        self._set(state, "Uploaded", "DagUploaded", f"DAG {result.object_name} in gs://{bucket.name}")
        self._track(body, policy)
        if result.uploaded:
            self.metrics.uploads.labels("dag").inc()
            name, mode = result.object_name, policy.wait_mode
            logger.info("Uploaded gs://%s/%s (%s, %s sensors)", bucket.name, name, result.content_hash, mode)
            kopf.event(
                body,
                type="Normal",
                reason="DagUploaded",
                message=f"gs://{bucket.name}/{result.object_name} ({policy.wait_mode} sensors)",
            )

    def _track(self, body: kopf.Body, policy: BackupPolicy) -> None:
        """The series alerts need from the start; after a restart, the last success the status remembers."""
        key = (policy.namespace, policy.name)
        created = policy.created.timestamp() if policy.created is not None else None
        interval = None if policy.spec.suspend else schedule_interval_seconds(policy.spec.schedule)
        self.metrics.track_policy(*key, interval, created)
        remembered = _timestamp((body.get("status") or {}).get("lastSnapshotTime"))
        if remembered is not None and remembered > self.metrics.last_success_time(*key):
            self.metrics.last_success.labels(*key).set(remembered)

    async def wait_mode(self, target: Target) -> WaitMode:
        """How this target's DAG sensors wait (asks its Airflow at most once per refresh interval)."""
        return await self.wait_modes.mode(target.key, self.targets.airflow(target))

    async def _refuse(self, body: kopf.Body, state: PolicyState, before: tuple[str, str], refusal: str) -> None:
        """Refused: nothing uploaded, no request to the named target; a DAG uploaded while allowed goes."""
        removed = await self._remove_refused_dag(state)
        self._set(state, "Refused", "TargetNotAllowed", refusal + ("; its DAG was removed" if removed else ""))
        _warn_once(body, state, before, refusal)

    async def _remove_refused_dag(self, state: PolicyState) -> bool:
        """A refused policy must not keep acting through a DAG uploaded while it was allowed."""
        if state.target_key is None:
            return False
        target = self._targets_by_key[state.target_key]
        removed = await asyncio.to_thread(self.targets.bucket(target).delete_dag, state.dag_id)
        state.target_key = None
        state.dag_hash = None
        return bool(removed)

    # ---- deletion ----------------------------------------------------------------------------

    async def remove(self, body: kopf.Body) -> None:
        """Delete the policy's DAG file; its snapshots stay (retention never runs again for them)."""
        key = (str(body.metadata.namespace), str(body.metadata.name))
        async with self._lock(key):
            state = self.states.get(key)
            target = self._targets_by_key.get(state.target_key) if state and state.target_key else None
            if target is None:
                target = await self._target_of_spec(key[0], body.spec)
            if target is not None:
                bucket = self.targets.bucket(target)
                try:
                    deleted = await asyncio.to_thread(bucket.delete_dag, dag_id_for(*key))
                except Exception as exc:
                    raise kopf.TemporaryError(
                        f"cannot delete the DAG from gs://{bucket.name}: {exc}", delay=30
                    ) from exc
                await self.drill_runs.retire_deleted(target, key)  # waits while a legacy drill file's run is in flight
                logger.info(
                    "Deleted the DAG of %s/%s from gs://%s (%s)", *key, bucket.name, (deleted and "found") or "absent"
                )
            self.states.pop(key, None)
            self.metrics.forget_policy(*key)
        self._locks.pop(key, None)

    async def _target_of_spec(self, namespace: str, spec: Mapping[str, Any]) -> Target | None:
        """For a policy this process never reconciled (e.g. deleted while the controller was down).

        None when no target can be named at all, or the named one is not granted (so never written to); a target that cannot be resolved right now
        (Composer API down) is retried, so the finalizer never lets a DAG file outlive its policy.
        """
        composer = None
        if spec.get("composer"):
            try:
                composer = ComposerTarget.model_validate(spec["composer"])
            except ValueError:
                composer = None  # never valid, so never uploaded there
        if composer is None and not self.config.has_default_target:
            return None
        try:
            return await self.targets.resolve(namespace, composer)
        except TargetNotAllowedError as exc:
            logger.info("Not deleting the DAG of a policy in %s from a target it was never granted: %s", namespace, exc)
            return None
        except TargetUnavailableError as exc:
            raise kopf.TemporaryError(f"cannot find where the DAG is to delete it: {exc}", delay=30) from exc

    # ---- Airflow -> status --------------------------------------------------------------------

    async def refresh(self, body: kopf.Body, patch: kopf.Patch) -> None:
        """Timer: take this policy's share of the target's batched poll; patch status only if it changed."""
        key = (str(body.metadata.namespace), str(body.metadata.name))
        state = self.states.get(key)
        if state is None or state.outcome != "Uploaded" or state.target_key is None:
            return
        target = self._targets_by_key[state.target_key]
        observation = await self._observe(target, key)
        if state.wait_mode is not None and await self.wait_mode(target) != state.wait_mode:
            # A triggerer came or went: render the DAG again so its sensors wait the way this Airflow can.
            await self.reconcile(body, patch, of=state)
            return
        async with self._lock(key):
            if self.states.get(key) is not state:
                return  # deleted while Airflow was asked (remove() forgot its series): nothing of it comes back
            # Only for a DAG Airflow has loaded: pausing an unknown DAG is a 404 per policy per tick, which
            # would turn the one batched poll into N requests (docs/benchmarks.md, "Controller").
            if (
                observation is not None
                and observation.reachable
                and observation.dag_loaded is not False
                and state.paused_applied != state.suspend
            ):
                await self._apply_pause(state, target)
            self.runs.announce(body, state, observation)
            self._write_status(body, patch, state, observation)
            await self.drills.refresh(body, patch, self.targets.bucket(target).bucket, state.generation)
            if state.policy is not None:
                await self.drill_runs.scheduled(body, patch, state.policy, target)
            report = observation.report if observation is not None else None
            await self.keeper.refresh(body, patch, target, state.generation, state.instances, report)

    async def _observe(self, target: Target, key: PolicyKey) -> RunObservation | None:
        cache = self._polls.setdefault(target.key, _PollCache())
        async with cache.lock:
            # A policy missing from a fresh poll waits for the next one: one batched query per interval,
            # however many policies appear at once (e.g. all of them resuming after a restart).
            if time.monotonic() - cache.taken_at >= self.config.poll_interval_seconds * 0.9:
                dags = {
                    k: s.dag_id
                    for k, s in self.states.items()
                    if s.outcome == "Uploaded" and s.target_key == target.key
                }
                observed = await self.feed.observe(
                    target, self.targets.airflow(target), self.targets.bucket(target).bucket, dags
                )
                # A policy deleted while Airflow was asked gets no series back (remove() has forgotten them).
                cache.observations = {k: seen for k, seen in observed.items() if k in self.states}
                cache.taken_at = time.monotonic()
                for polled, seen in cache.observations.items():
                    self.metrics.airflow_reachable.labels(*polled).set(1 if seen.reachable else 0)
                reachable = all(o.reachable for o in cache.observations.values())
                self.metrics.airflow_polls.labels("ok" if reachable else "unreachable").inc()
            return cache.observations.get(key)

    def _cached_observation(self, state: PolicyState) -> RunObservation | None:
        cache = self._polls.get(state.target_key) if state.target_key else None
        return cache.observations.get((state.namespace, state.name)) if cache else None

    # ---- suspend and on-demand runs ------------------------------------------------------------

    async def _apply_pause(self, state: PolicyState, target: Target) -> None:
        """Tell Airflow to pause or unpause; until it knows the DAG, the status timer tries again."""
        if state.paused_applied == state.suspend:
            return
        try:
            await self.targets.airflow(target).set_paused(state.dag_id, state.suspend)
        except (AirflowUnreachableError, DagNotFoundError, AirflowRefusedError) as exc:
            logger.info("Cannot %s %s yet: %s", "pause" if state.suspend else "unpause", state.dag_id, exc)
            return
        state.paused_applied = state.suspend
        logger.info("%s %s in Airflow", "Paused" if state.suspend else "Unpaused", state.dag_id)

    async def backup_now(self, body: kopf.Body, patch: kopf.Patch) -> None:
        """Trigger a run now, then drop the annotation; retried while Airflow cannot take it."""
        key = (str(body.metadata.namespace), str(body.metadata.name))
        state = self.states.get(key)
        if state is not None and state.outcome in ("Invalid", "Refused"):
            patch.metadata.annotations[BACKUP_NOW_ANNOTATION] = None
            kopf.event(body, type="Warning", reason="BackupNotTriggered", message=short(state.message))
            return
        if state is None or state.outcome != "Uploaded" or state.target_key is None:
            raise kopf.TemporaryError("the DAG is not uploaded yet", delay=5)
        target = self._targets_by_key[state.target_key]
        try:
            run_id = await self.targets.airflow(target).trigger_run(state.dag_id, backup_now_run_id(body))
        except (AirflowUnreachableError, DagNotFoundError, AirflowRefusedError) as exc:
            raise kopf.TemporaryError(
                f"cannot trigger {state.dag_id} yet: {exc}", delay=self.config.poll_interval_seconds
            ) from exc
        patch.metadata.annotations[BACKUP_NOW_ANNOTATION] = None
        kopf.event(body, type="Normal", reason="BackupTriggered", message=f"run {run_id} of {state.dag_id}")

    # ---- shared ---------------------------------------------------------------------------------

    def _state(self, key: PolicyKey) -> PolicyState:
        if key not in self.states:
            self.states[key] = PolicyState(namespace=key[0], name=key[1], dag_id=dag_id_for(*key))
        return self.states[key]

    def target_of(self, state: PolicyState | None) -> Target | None:
        """Where the policy's DAG is (None: not uploaded anywhere yet)."""
        return self._targets_by_key.get(state.target_key) if state and state.target_key else None

    def _lock(self, key: PolicyKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    @staticmethod
    def _set(state: PolicyState, outcome: Any, reason: str, message: str) -> None:
        state.outcome, state.reason, state.message = outcome, reason, message

    def _write_status(
        self, body: kopf.Body, patch: kopf.Patch, state: PolicyState, observation: RunObservation | None
    ) -> None:
        state.shared = shared_instances_note(state, self.states.values())
        current = body.get("status") or {}
        state.recovery.observe(observation.report if observation is not None else None, current)
        desired = desired_status(state, observation, current, datetime.now(UTC))
        self.metrics.record_recovery_points(state.namespace, state.name, desired.recovery)
        changed = changed_fields(current, desired.to_status())
        if changed:
            logger.debug("Status of %s/%s changes in %s", state.namespace, state.name, ", ".join(sorted(changed)))
            patch.status.update(changed)


def _warn_once(body: kopf.Body, state: PolicyState, before: tuple[str, str], message: str) -> None:
    """A Warning Event for a new finding; a restart or resync that finds the same problem stays quiet."""
    shown = find_condition((body.get("status") or {}).get("conditions"), READY) or {}
    known = {before, (shown.get("reason"), shown.get("message"))}
    if (state.reason, state.message) not in known and (state.reason, short(state.message)) not in known:
        kopf.event(body, type="Warning", reason=state.reason, message=short(message))


def _metric_result(state: PolicyState) -> str:
    return {"Uploaded": "Ready"}.get(state.outcome, state.outcome)


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def backup_now_run_id(body: kopf.Body) -> str:
    """One Airflow run per backup-now request: the id is derived from the object and the annotation's value.

    kopf may handle the same annotation more than once (a retry, a restart before the annotation's removal
    was stored); with a fixed run id the second trigger is Airflow's 409, not a second backup.
    """
    value = str(body.metadata.annotations.get(BACKUP_NOW_ANNOTATION, ""))
    digest = hashlib.sha256(f"{body.metadata.uid}/{value}".encode()).hexdigest()[:16]
    return f"manual__backup-now-{digest}"
