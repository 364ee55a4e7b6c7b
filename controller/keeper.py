"""The keeper in the controller: its DAG shipped once per bucket, its report read back into metrics and conditions.

The keeper DAG (``dags/vmbackup_keeper.py``, built by ``vmbackup.keeper.dag``) starts again, on its own
schedule and with backoff, every VM carrying the stopped-by mark (``labels.STOPPED_BY``) in the projects it
is given: every project a policy of that bucket names and, in the controller's default target only, every
project the tenancy map grants (union over namespaces). A bucket granted to one namespace (its own Airflow)
never learns other tenants' projects, and its Airflow is never asked to act on them. The set only grows while
the controller runs, so a project whose last policy went away is still watched until a restart. The file is
rendered again when that set changes, and uploaded only when its bytes do.

Whom a listed VM belongs to: the policy its mark names (``namespace``/``policy`` in the report entry), or a
policy that lists the VM in spec.instances or backed it up in its last run (a selector policy's VMs are known
only from its runs). A policy with no VM waiting gets VMLeftStopped=False; before the bucket's first report it
gets no condition, unless the keeper DAG has been in place for longer than the staleness limit (Unknown).

The keeper's report (``KEEPER_REPORT_OBJECT``) is read at most once per bucket per
``keeper_read_interval_seconds`` (one GET), on the policies' status timer; every policy's refresh reuses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from google.api_core import exceptions as gcs_errors
from google.cloud import storage
from pydantic import ValidationError

from controller.conditions import VM_LEFT_STOPPED, Condition, changed_fields, merge_conditions, rfc3339
from controller.config import ControllerConfig
from controller.metrics import ControllerMetrics
from controller.schedule_interval import schedule_interval_seconds
from controller.status import short
from controller.targets import Target, Targets, TargetUnavailableError
from controller.tenancy import Tenancy
from vmbackup.model.keeper_report import KEEPER_REPORT_OBJECT, KeeperReport, LeftStoppedInstance
from vmbackup.model.report import RunReport

logger = logging.getLogger(__name__)

InstanceKey = tuple[str, str, str]  # (project, zone, instance)
STALE_FIX = "check the vmbackup_keeper DAG in Airflow (paused, failing or not parsed)"


def granted_projects(tenancy: Tenancy) -> set[str]:
    """Every project the tenancy map grants to some namespace (allowAllProjects names none)."""
    if tenancy.map is None:
        return set()
    return {grant.project for namespace in tenancy.map.namespaces.values() for grant in namespace.projects}


def read_keeper_report(bucket: storage.Bucket) -> KeeperReport | None:
    """The keeper's latest report; None when there is none yet or it cannot be read (logged)."""
    try:
        data = bucket.blob(KEEPER_REPORT_OBJECT).download_as_bytes()
    except gcs_errors.NotFound:
        return None
    try:
        return KeeperReport.model_validate_json(data)
    except ValidationError as exc:
        logger.warning("gs://%s/%s is not a keeper report: %s", bucket.name, KEEPER_REPORT_OBJECT, exc)
        return None


def owned_by(entry: LeftStoppedInstance, namespace: str, name: str, instances: Iterable[InstanceKey]) -> bool:
    """The policy owns the VM when the mark names it, or when it backs the VM up (its list or its last run)."""
    return (entry.namespace, entry.policy) == (namespace, name) or (
        (entry.project, entry.zone, entry.instance) in set(instances)
    )


def describe_left_stopped(entry: LeftStoppedInstance) -> str:
    since = rfc3339(entry.stopped_at) if entry.stopped_at else "an unknown time"
    text = (
        f"VM {entry.instance} ({entry.project}, {entry.zone}) stopped by this product since {since} is "
        f"{entry.status}; {entry.attempts} start attempt(s)"
    )
    if entry.last_error:
        text += f", last error: {entry.last_error}"
    if entry.next_attempt_at:
        text += f"; next attempt at {rfc3339(entry.next_attempt_at)}"
    return text


def left_stopped_condition(
    report: KeeperReport, namespace: str, name: str, project: str | None, instances: Iterable[InstanceKey], stale: str
) -> Condition:
    """VMLeftStopped for one policy from the keeper's report; ``stale`` is why the report is stale, or ''."""
    owned = set(instances)
    waiting = [e for e in report.left_stopped if owned_by(e, namespace, name, owned)]
    if waiting:
        message = "; ".join(describe_left_stopped(e) for e in waiting) + (f" ({stale})" if stale else "")
        return Condition(VM_LEFT_STOPPED, "True", "WaitingToStart", short(message))
    if stale:
        return Condition(VM_LEFT_STOPPED, "Unknown", "KeeperReportStale", short(stale))
    if project is not None and project not in report.projects:
        return Condition(
            VM_LEFT_STOPPED, "Unknown", "ProjectNotChecked", f"the keeper's latest pass did not check project {project}"
        )
    started = [e for e in report.started if owned_by(e, namespace, name, owned)]
    if started:
        names = ", ".join(f"{e.instance} ({e.zone})" for e in started)
        return Condition(VM_LEFT_STOPPED, "False", "StartedAgain", f"the keeper started {names} again")
    return Condition(VM_LEFT_STOPPED, "False", "NoneLeftStopped", "no VM this product stopped is left stopped")


class KeeperWatch:
    """The keeper DAG per bucket and the keeper's latest report per bucket, for every policy's status refresh."""

    def __init__(
        self, config: ControllerConfig, metrics: ControllerMetrics, tenancy: Tenancy, targets: Targets
    ) -> None:
        self.config = config
        self.targets = targets
        self.metrics = metrics
        self.granted = granted_projects(tenancy)
        self.interval = schedule_interval_seconds(config.keeper_schedule)
        self._projects: dict[str, set[str]] = {}
        self._shipped: dict[str, tuple[str, ...]] = {}  # bucket -> the projects of the keeper DAG it holds
        self._shipped_at: dict[str, float] = {}  # bucket -> when this process first saw its keeper DAG in place
        self._reports: dict[str, tuple[float, KeeperReport | None]] = {}  # bucket -> (monotonic read time, report)
        self._locks: dict[str, asyncio.Lock] = {}
        self._first_seen: dict[InstanceKey, float] = {}  # for a VM whose mark has no stopped-at time

    async def ensure_dag(self, target: Target, project: str | None = None) -> None:
        """Ship the keeper DAG for this bucket's projects (adding ``project``); a failure is retried next refresh."""
        from dags_templates.render_keeper import KEEPER_DAG_ID, render_keeper_dag

        bucket = self.targets.bucket(target)
        if bucket.name not in self._projects:
            self._projects[bucket.name] = set(self.granted) if await self._is_default(target) else set()
        projects = self._projects[bucket.name]
        if project:
            projects.add(project)
        wanted = tuple(sorted(projects))
        if not wanted or self._shipped.get(bucket.name) == wanted:
            return  # checked without rendering: every status refresh of every policy comes here
        async with self._locks.setdefault(bucket.name, asyncio.Lock()):
            if self._shipped.get(bucket.name) == wanted:
                return
            source = render_keeper_dag(list(wanted), self.config.keeper_schedule)
            try:
                result = await asyncio.to_thread(bucket.upload_dag, KEEPER_DAG_ID, source)
            except Exception as exc:
                logger.error("Cannot write the keeper DAG to gs://%s (retried): %s", bucket.name, exc)
                return
            self._shipped[bucket.name] = wanted
            self._shipped_at.setdefault(bucket.name, time.time())
        self.metrics.keeper_interval.labels(bucket.name).set(self.interval)
        if result.uploaded:
            self.metrics.uploads.labels("keeper").inc()
            logger.info("Uploaded gs://%s/%s for projects %s", bucket.name, result.object_name, sorted(projects))

    async def _is_default(self, target: Target) -> bool:
        if not self.config.has_default_target:
            return False
        try:
            return (await self.targets.default()).key == target.key
        except TargetUnavailableError:
            return False

    async def report(self, bucket: storage.Bucket) -> KeeperReport | None:
        """The bucket's keeper report, read at most once per keeper_read_interval_seconds."""
        name = str(bucket.name)
        async with self._locks.setdefault(name, asyncio.Lock()):
            read_at, report = self._reports.get(name, (float("-inf"), None))
            if time.monotonic() - read_at >= self.config.keeper_read_interval_seconds:
                try:
                    report = await asyncio.to_thread(read_keeper_report, bucket)
                except Exception as exc:  # the bucket is unreachable: keep the last report, try next interval
                    logger.warning("Cannot read gs://%s/%s: %s", name, KEEPER_REPORT_OBJECT, exc)
                self._reports[name] = (time.monotonic(), report)
                self._publish()
        age = self._age(name, report)
        if age is not None:
            self.metrics.keeper_report_age.labels(name).set(age)
        return report

    def stale(self, bucket: str, report: KeeperReport | None) -> str:
        """Why the bucket's keeper report is too old to trust (or still missing), or ''."""
        age, limit = self._age(bucket, report), self.config.keeper_stale_after_intervals * self.interval
        if age is None or age <= limit:
            return ""
        if report is None:
            return f"the keeper has written no report {age:.0f}s after its DAG was shipped: {STALE_FIX}"
        return f"the keeper's latest report is from {rfc3339(report.written_at)}, {age:.0f}s old: {STALE_FIX}"

    async def refresh(
        self,
        body: kopf.Body,
        patch: kopf.Patch,
        target: Target,
        generation: int,
        instances: Iterable[InstanceKey],
        last_run: RunReport | None,
    ) -> None:
        """The policy's VMLeftStopped condition from its bucket's keeper report (nothing before the first report)."""
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        project = (body.get("spec") or {}).get("project")
        await self.ensure_dag(target, project)
        bucket = self.targets.bucket(target)
        report = await self.report(bucket.bucket)
        stale = self.stale(bucket.name, report)
        if report is None:
            if stale:
                _patch_condition(
                    body, patch, Condition(VM_LEFT_STOPPED, "Unknown", "KeeperReportMissing", stale), generation
                )
            return
        owned = set(instances)
        if last_run is not None and project:
            owned |= {(project, vm.zone, vm.instance) for vm in last_run.instances}
        condition = left_stopped_condition(report, namespace, name, project, owned, stale)
        _patch_condition(body, patch, condition, generation)

    def _age(self, bucket: str, report: KeeperReport | None) -> float | None:
        """Seconds since the report was written; with none yet, since the keeper DAG was shipped (None: not yet)."""
        if report is None:
            shipped = self._shipped_at.get(bucket)
            return None if shipped is None else max(0.0, time.time() - shipped)
        written = report.written_at if report.written_at.tzinfo else report.written_at.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - written).total_seconds())

    def _publish(self) -> None:
        """The left-stopped gauges from every bucket's latest report (a VM two keepers watch counts once)."""
        waiting: dict[InstanceKey, LeftStoppedInstance] = {}
        projects: set[str] = set()
        for _, report in self._reports.values():
            if report is not None:
                projects.update(report.projects)
                waiting.update({(e.project, e.zone, e.instance): e for e in report.left_stopped})
        counts = {project: 0 for project in projects}
        for key in waiting:
            counts[key[0]] = counts.get(key[0], 0) + 1
        _replace_series(self.metrics.vms_left_stopped, {(p,): float(n) for p, n in counts.items()})
        self._first_seen = {key: self._first_seen.get(key, time.time()) for key in waiting}
        since: dict[tuple[str, ...], float] = {
            key: (e.stopped_at.timestamp() if e.stopped_at else self._first_seen[key]) for key, e in waiting.items()
        }
        _replace_series(self.metrics.vm_left_stopped_since, since)


def _replace_series(gauge: Any, values: Mapping[tuple[str, ...], float]) -> None:
    """Set exactly these children of ``gauge``: a VM started again loses its series."""
    present = {tuple(s.labels.values()) for family in gauge.collect() for s in family.samples}
    for labels in present - set(values):
        gauge.remove(*labels)
    for labels, value in values.items():
        gauge.labels(*labels).set(value)


def _patch_condition(body: kopf.Body, patch: kopf.Patch, condition: Condition, generation: int) -> None:
    current = dict(body.get("status") or {})
    base = patch.status.get("conditions") or current.get("conditions")
    conditions = merge_conditions(base, [condition], generation=generation, now=datetime.now(UTC))
    changed = changed_fields(current, {"conditions": conditions})
    if changed:
        patch.status.update(changed)
