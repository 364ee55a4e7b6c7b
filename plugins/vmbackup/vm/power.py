"""Stop until stopped, start (or resume) until RUNNING: Compute Engine's power states as they are, handled once.

- Graceful shutdown: a VM with `scheduling.gracefulShutdown` enabled stays PENDING_STOP for up to its
  `maxDuration` (10 minutes when unset) before STOPPING, so a stop's deadline is that grace plus the stop timeout
  ("Graceful shutdown overview", https://cloud.google.com/compute/docs/instances/graceful-shutdown-overview;
  `SchedulingGracefulShutdown.max_duration` in the compute v1 reference).
- A SUSPENDED VM comes back with `instances.resume`, not `start` ("Suspend and resume an instance",
  https://cloud.google.com/compute/docs/instances/suspend-resume-instance).
- Stockouts: a start or resume can end DONE with ZONE_RESOURCE_POOL_EXHAUSTED(_WITH_DETAILS) when the zone has no
  capacity, for minutes or hours ("Troubleshooting resource availability errors",
  https://cloud.google.com/compute/docs/resource-error): it is tried again with backoff within the caller's
  timeout; what is left after that is the keeper's (keeper/), since the VM keeps the stopped-by mark.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from vmbackup.compute.hook import (
    STOPPED_STATUSES,
    STOPPING_STATUSES,
    ComputeEngineHook,
    OperationFailedError,
    OperationRef,
)
from vmbackup.model import labels as vmlabels
from vmbackup.model.keeper_report import KEEPER_DAG_ID

log = logging.getLogger(__name__)

STOCKOUT_CODES = ("ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS")
DEFAULT_GRACE_SECONDS = 600  # gracefulShutdown.maxDuration when enabled without one (the overview page)
BACKOFF_CAP_SECONDS = 60.0


class PowerError(Exception):
    """A stop or start failed at one step (`step`: the sub-step the report names); Compute Engine's words kept."""

    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


class StockoutError(PowerError):
    """The zone had no capacity to start the VM for as long as the caller could wait."""


@dataclass
class Started:
    """What a start-until-running did."""

    ended_at: str | None = None  # the last start (or resume) operation's endTime
    stockouts: list[str] = field(default_factory=list)  # Compute Engine's words for each stockout met


def is_stockout(message: str) -> bool:
    return any(code in message for code in STOCKOUT_CODES)


def is_spot(instance: Any) -> bool:
    """A Spot VM, which Compute Engine may preempt (TERMINATED) at any time ("Spot VMs",
    https://cloud.google.com/compute/docs/instances/spot)."""
    return bool(instance.scheduling and instance.scheduling.provisioning_model == "SPOT")


def grace_seconds(instance: Any) -> float:
    """How long the VM may stay PENDING_STOP: its own gracefulShutdown.maxDuration, 0 when not enabled."""
    graceful = instance.scheduling.graceful_shutdown if instance.scheduling else None
    if not graceful or not graceful.enabled:
        return 0.0
    duration = graceful.max_duration
    seconds = (duration.seconds + duration.nanos / 1e9) if duration else 0.0
    return seconds or DEFAULT_GRACE_SECONDS


def in_status(instance: Any, status: str) -> Any:
    """The instance as our own DONE operation left it (a stop: TERMINATED, a start: RUNNING), without reading it
    again: calls count against rate quotas, and a DONE operation without an error is Compute Engine's word."""
    after = type(instance)(instance)
    after.status = status
    return after


def timeout_message(what: str, timeout: float, timeout_field: str) -> str:
    return (
        f"{what} was not done {timeout:.0f}s after it was requested: the timeout ({timeout_field}) ran out. Raise it "
        "if this VM needs longer"
    )


def request_stop(hook: ComputeEngineHook, project: str, zone: str, name: str, *, discard_local_ssd: bool) -> Any:
    """instances.stop; a VM with a Local SSD is stopped only with discardLocalSsd (the policy's choice)."""
    try:
        if discard_local_ssd:
            return hook.stop_instance(project, zone, name, discard_local_ssd=True)
        return hook.stop_instance(project, zone, name)
    except Exception as exc:
        raise PowerError("instances.stop", str(exc) or type(exc).__name__) from exc


def wait_stopped(
    hook: ComputeEngineHook,
    project: str,
    zone: str,
    name: str,
    ref: OperationRef | None,
    *,
    since: float,
    timeout_seconds: float,
    poll_seconds: float,
    timeout_field: str,
    instance: Any = None,
) -> Any:
    """Until the VM is stopped; PENDING_STOP and STOPPING count as stopping. Returns the stop operation (or None).

    The deadline is `since` (the stop request) + the VM's graceful-shutdown maxDuration + `timeout_seconds`;
    `instance`: the VM as the caller read it before the stop (its grace; saves a GET)."""
    known = instance if instance is not None else hook.get_instance(project, zone, name)
    deadline = since + grace_seconds(known) + timeout_seconds
    op = None
    if ref is not None:
        try:
            op = hook.wait_done(ref, max(1.0, deadline - time.time()))
        except OperationFailedError as exc:
            raise PowerError("wait_stopped", f"Compute Engine {exc}") from None
        except TimeoutError:
            raise PowerError("wait_stopped", timeout_message(ref["name"], timeout_seconds, timeout_field)) from None
        return op  # DONE without an error: the instance is stopped, not read again (calls count against quotas)
    while True:  # no operation known (a restarted window found the VM stopping): read the instance
        if hook.get_instance(project, zone, name).status in STOPPED_STATUSES:
            return op
        if time.time() >= deadline:
            raise PowerError("wait_stopped", timeout_message(f"stop of {name}", timeout_seconds, timeout_field))
        time.sleep(poll_seconds)


def stop_until_stopped(
    hook: ComputeEngineHook,
    project: str,
    zone: str,
    name: str,
    *,
    timeout_seconds: float,
    poll_seconds: float,
    timeout_field: str,
    discard_local_ssd: bool = False,
) -> None:
    """Stop a RUNNING VM and wait; one already stopped or stopping is only waited for."""
    instance = hook.get_instance(project, zone, name)
    ref = None
    if instance.status == "RUNNING":
        log.info("Stopping instance %s in %s", name, zone)
        ref = request_stop(hook, project, zone, name, discard_local_ssd=discard_local_ssd)
    wait_stopped(
        hook,
        project,
        zone,
        name,
        ref,
        since=time.time(),
        timeout_seconds=timeout_seconds,
        poll_seconds=poll_seconds,
        timeout_field=timeout_field,
    )


def _bring_up(hook: ComputeEngineHook, project: str, zone: str, name: str, status: str) -> OperationRef:
    try:
        if status == "SUSPENDED":
            log.info("Resuming instance %s in %s (it is SUSPENDED: resume, not start)", name, zone)
            return hook.resume_instance(project, zone, name)
        log.info("Starting instance %s in %s", name, zone)
        return hook.start_instance(project, zone, name)
    except Exception as exc:
        call = "instances.resume" if status == "SUSPENDED" else "instances.start"
        raise PowerError(call, str(exc) or type(exc).__name__) from exc


def stockout_message(name: str, zone: str, started: Started, waited: float) -> str:
    return (
        f"instance {name} could not be started: zone {zone} has no capacity for it (a stockout, "
        f"https://cloud.google.com/compute/docs/resource-error); {len(started.stockouts)} tries in {waited:.0f}s, "
        f"the last: {started.stockouts[-1]}. It keeps the {vmlabels.STOPPED_BY} mark, and the keeper DAG "
        f"({KEEPER_DAG_ID}) starts it once the zone has capacity again"
    )


def start_until_running(
    hook: ComputeEngineHook,
    project: str,
    zone: str,
    name: str,
    *,
    timeout_seconds: float,
    poll_seconds: float,
    timeout_field: str,
    stopping_seconds: float = 0.0,
    retry_stockouts: bool = True,
    instance: Any = None,
) -> Started:
    """Start (or resume) the VM until it is RUNNING; a stockout is tried again with backoff until the timeout.

    A VM still stopping is waited for first (up to its grace plus `stopping_seconds`): Compute Engine refuses a
    start until then. StockoutError when only stockouts kept it from running; PowerError for anything else.
    `instance`: the VM as the caller knows it (e.g. `in_status` after its DONE stop; saves a GET)."""
    started, began = Started(), time.time()
    instance = instance if instance is not None else hook.get_instance(project, zone, name)
    settle = time.time() + grace_seconds(instance) + stopping_seconds
    while instance.status in STOPPING_STATUSES and time.time() < settle:
        time.sleep(poll_seconds)
        instance = hook.get_instance(project, zone, name)
    deadline, delay = time.time() + timeout_seconds, poll_seconds
    while instance.status != "RUNNING":
        if time.time() >= deadline:
            if started.stockouts and instance.status in STOPPED_STATUSES:  # (the deadline passed in a backoff or GET)
                raise StockoutError("wait_started", stockout_message(name, zone, started, time.time() - began))
            raise PowerError("wait_started", timeout_message(f"start of {name}", timeout_seconds, timeout_field))
        if instance.status in STOPPED_STATUSES:
            ref = _bring_up(hook, project, zone, name, instance.status)
            try:
                started.ended_at = hook.wait_done(ref, max(1.0, deadline - time.time())).end_time or None
                return started  # DONE without an error: RUNNING, not read again (calls count against quotas)
            except TimeoutError:
                raise PowerError("wait_started", timeout_message(ref["name"], timeout_seconds, timeout_field)) from None
            except OperationFailedError as exc:
                if not is_stockout(str(exc)):
                    raise PowerError("wait_started", f"Compute Engine {exc}") from None
                started.stockouts.append(str(exc))
                log.warning("%s: stockout (%s); trying again in %.1fs", name, exc, delay)
                if not retry_stockouts or time.time() + delay >= deadline:
                    raise StockoutError(
                        "wait_started", stockout_message(name, zone, started, time.time() - began)
                    ) from None
                time.sleep(delay)
                delay = min(BACKOFF_CAP_SECONDS, delay * 2)
        else:
            time.sleep(poll_seconds)
        instance = hook.get_instance(project, zone, name)
    return started
