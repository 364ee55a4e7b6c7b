"""One keeper pass: every instance carrying the stopped-by mark is started once its backoff has expired.

A window that met a stockout for longer than spec.timeouts.startSeconds fails and leaves the VM with the mark
(vm/mark.py); a stockout can last hours ("Troubleshooting resource availability errors",
https://cloud.google.com/compute/docs/resource-error). The keeper lists the marked instances of each project with
one instances.aggregatedList and a label filter, tries a start of each whose backoff has expired (exponential from
STOPPED_AT, capped at BACKOFF_CAP_SECONDS, so it goes on for hours at a bounded rate), removes the mark once the VM
is RUNNING and reports what is still stopped. Its state lives on the instance (the keeper-tries label), so a
pass needs nothing from the one before.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from vmbackup.compute.hook import ComputeEngineHook, resource_name
from vmbackup.model import labels as vmlabels
from vmbackup.model.identifiers import read_lock
from vmbackup.model.keeper_report import KeeperReport, LeftStoppedInstance
from vmbackup.vm.labels import relabel_instance
from vmbackup.vm.lock import clear_mark, live_lock
from vmbackup.vm.mark import Mark, keeper_tries_label, read_mark
from vmbackup.vm.power import PowerError, start_until_running

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 900.0
START_TIMEOUT_SECONDS = 600.0
MARK_FILTER = f"labels.{vmlabels.STOPPED_BY}:*"


def next_try_at(mark: Mark) -> float:
    """When the keeper may try again: at once for a fresh mark, then 1, 2, 4, ... minutes after each try, at most
    BACKOFF_CAP_SECONDS apart."""
    if mark.tries == 0 or mark.last_try is None:
        return float(mark.at or 0)
    return mark.last_try + min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (mark.tries - 1))


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def _entry(project: str, instance: Any, mark: Mark, **fields: Any) -> LeftStoppedInstance:
    lock = read_lock(instance.labels)
    owner = lock if lock is not None and lock.kind == "policy" else None
    values: dict[str, Any] = {
        "project": project,
        "zone": resource_name(instance.zone),
        "instance": instance.name,
        "stopped_by": mark.run,
        "stopped_at": _when(mark.at),
        "status": instance.status,
        "namespace": owner.namespace if owner else None,
        "policy": owner.name if owner else None,
        "attempts": mark.tries,
        "next_attempt_at": _when(next_try_at(mark)),
    }
    return LeftStoppedInstance(**(values | fields))


def _record_try(hook: ComputeEngineHook, project: str, zone: str, name: str, now: float) -> Mark | None:
    """Count this try on the instance before making it; None when the mark went or a run holds the VM now."""

    def change(instance: Any) -> dict[str, str] | None:
        mark = read_mark(instance.labels)
        if mark is None or live_lock(instance, time.time()) is not None:
            return None
        return dict(instance.labels) | keeper_tries_label(mark.tries + 1, now)

    instance = relabel_instance(hook, project, zone, name, change)
    mark = read_mark(instance.labels) if instance is not None else None
    return mark if mark is not None and mark.last_try == int(now) else None


def keep_one(
    hook: ComputeEngineHook, project: str, instance: Any, now: float, poll_seconds: float
) -> tuple[LeftStoppedInstance | None, bool]:
    """(what the report says of the instance, whether it runs again now); None: nothing to report."""
    mark = read_mark(instance.labels)
    if mark is None:
        return None, False
    zone, name = resource_name(instance.zone), instance.name
    if live_lock(instance, now) is not None:  # a run holds it (its down window): it starts it, or leaves it to us
        return None, False
    if instance.status == "RUNNING":
        clear_mark(hook, project, zone, name)
        return _entry(project, instance, mark, next_attempt_at=None), True
    if next_try_at(mark) > now:
        return _entry(project, instance, mark), False
    tried = _record_try(hook, project, zone, name, now)
    if tried is None:
        return _entry(project, instance, mark, last_error="changed while the keeper looked; next pass"), False
    try:
        start_until_running(
            hook,
            project,
            zone,
            name,
            timeout_seconds=START_TIMEOUT_SECONDS,
            poll_seconds=poll_seconds,
            timeout_field="the keeper's start timeout",
            retry_stockouts=False,  # the keeper's backoff spaces the tries, across passes
        )
    except PowerError as exc:
        log.warning("%s (%s): still not running: %s", name, zone, exc)
        now_status = hook.get_instance(project, zone, name).status
        return _entry(project, instance, tried, status=now_status, last_error=str(exc)), False
    clear_mark(hook, project, zone, name)
    log.info("%s (%s) runs again (stopped by run %s); its mark is removed", name, zone, mark.run)
    return _entry(project, instance, tried, status="RUNNING", next_attempt_at=None), True


def keep(
    hook: ComputeEngineHook, projects: list[str], *, poll_seconds: float = 1.0
) -> tuple[KeeperReport, dict[str, str]]:
    """One pass over every project; the report, and the projects that could not be looked at (with why)."""
    checked: list[str] = []
    failed: dict[str, str] = {}
    left: list[LeftStoppedInstance] = []
    started: list[LeftStoppedInstance] = []
    for project in projects:
        try:
            marked = hook.aggregated_list_instances(project, MARK_FILTER)
        except Exception as exc:
            log.exception("could not list the marked instances of project %s", project)
            failed[project] = str(exc) or type(exc).__name__
            continue
        checked.append(project)
        for instance in marked:
            try:
                entry, runs = keep_one(hook, project, instance, time.time(), poll_seconds)
            except Exception as exc:  # one VM's answer must not keep the keeper from the others
                log.exception("%s: the keeper could not handle it", instance.name)
                mark = read_mark(instance.labels)
                entry = _entry(project, instance, mark, last_error=str(exc)) if mark else None
                runs = False
            if entry is not None:
                (started if runs else left).append(entry)
    report = KeeperReport(written_at=datetime.now(UTC), projects=checked, left_stopped=left, started=started)
    return report, failed
