"""``vmbackupctl verify POLICY [--wait]``: ask the controller for one restore drill of a policy now.

It sets the policy's VERIFY_NOW_ANNOTATION (a patch of the policy, as for ``backup-now``); the controller starts the
drill as a run of the shared drill DAG and removes the annotation, or, while a drill of the policy is still in
flight, keeps it and starts this one when that drill ends. No Airflow credentials are needed. With --wait it follows
the policy's status.verification, which the controller fills from the drill report, until a drill newer than the
request has ended: exit 0 when it verified the backup, 1 when it failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from controller.vmbackupctl.errors import ExitCode, Failed
from vmbackup.model.policy import VERIFY_NOW_ANNOTATION

if TYPE_CHECKING:
    from controller.vmbackupctl.commands import Session

WAIT_POLL_SECONDS = 2.0


def verify(session: Session, sleep: Callable[[float], None] = time.sleep) -> int:
    from controller.vmbackupctl.commands import REFUSED_RESULTS

    args = session.args
    obj = session.policy()
    ref = f"{session.namespace}/{args.policy}"
    if not (obj.get("spec") or {}).get("verification"):
        raise Failed(f"{ref} has no spec.verification: set it (schedule, network, ...) to have restore drills")
    status = obj.get("status") or {}
    if status.get("result") in REFUSED_RESULTS:
        raise Failed(f"{ref} is {status['result']}, so no drill can start: see `vmbackupctl describe {args.policy}`")
    shown = status.get("verification") or {}
    before, started_before = shown.get("time"), shown.get("startedRun")
    session.store.request_drill(session.namespace, args.policy, session.clock())
    if not args.wait:
        session.out(f"{ref}: restore drill requested (the controller starts it and removes {VERIFY_NOW_ANNOTATION})")
        return ExitCode.OK
    session.note(f"{ref}: restore drill requested; waiting up to {args.timeout:g}s")
    deadline = time.monotonic() + args.timeout
    announced = started_before
    while True:
        current = session.policy()
        shown = (current.get("status") or {}).get("verification") or {}
        if shown.get("startedRun") and shown.get("startedRun") != announced:
            announced = shown["startedRun"]
            session.note(f"drill {announced} started")
        if shown.get("time") and shown.get("time") != before:
            return _report(session, ref, shown)
        if time.monotonic() >= deadline:
            waiting = "the drill to end" if announced != started_before else "the controller to start the drill"
            raise Failed(
                f"timed out after {args.timeout:g}s waiting for {waiting}; it goes on: check later with "
                f"`vmbackupctl describe {args.policy} -n {session.namespace}`"
            )
        sleep(WAIT_POLL_SECONDS)


def _report(session: Session, ref: str, shown: dict[str, Any]) -> int:
    if shown.get("result") == "Succeeded":
        boot = f", RUNNING after {shown['bootSeconds']} s" if shown.get("bootSeconds") is not None else ""
        session.out(f"{ref}: verified run {shown.get('lastVerifiedRun')}{boot}: {shown.get('message', '')}")
        return ExitCode.OK
    session.out(f"{ref}: restore drill failed: {shown.get('message', '')}")
    return ExitCode.FAILED
