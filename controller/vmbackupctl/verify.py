"""``vmbackupctl verify POLICY [--wait]``: start one restore drill of a policy now.

The drill DAG (vmdrill__<ns>__<name>) is the one the controller keeps in the bucket for a policy with
spec.verification; this triggers a run of it in Airflow (found as for ``logs``). With --wait it follows the
policy's status.verification, which the controller fills from the drill report, until a drill newer than the
request has ended: exit 0 when it verified the backup, 1 when it failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from controller.vmbackupctl.errors import ExitCode, Failed
from vmbackup.model.drill import drill_dag_id_for

if TYPE_CHECKING:
    from controller.vmbackupctl.commands import Session

WAIT_POLL_SECONDS = 2.0


def verify(session: Session, sleep: Callable[[float], None] = time.sleep) -> int:
    from controller.airflow_link import make_airflow_client
    from controller.vmbackupctl.commands import target_overrides
    from controller.vmbackupctl.logs import airflow_errors, load_config, resolve_target

    args = session.args
    obj = session.policy()
    ref = f"{session.namespace}/{args.policy}"
    if not (obj.get("spec") or {}).get("verification"):
        raise Failed(f"{ref} has no spec.verification: set it (schedule, network, ...) to have restore drills")
    before = ((obj.get("status") or {}).get("verification") or {}).get("time")
    config = load_config(target_overrides(args), args.airflow_auth)
    dag_id = drill_dag_id_for(session.namespace, args.policy)
    requested = datetime.now(UTC)
    run_id = f"manual__verify-{requested.strftime('%Y%m%dT%H%M%SZ')}"

    async def trigger() -> None:
        target = await resolve_target(config, session.namespace, dict(obj.get("spec") or {}))
        with airflow_errors(target.airflow_url, dag_id):
            async with make_airflow_client(target.airflow_url, target.auth) as client:
                await client.set_paused(dag_id, False)
                await client.trigger_run(dag_id, run_id=run_id)

    asyncio.run(trigger())
    if not args.wait:
        session.out(f"{ref}: restore drill {run_id} started (see `vmbackupctl describe {args.policy}`)")
        return ExitCode.OK
    session.note(f"{ref}: restore drill {run_id} started; waiting up to {args.timeout:g}s")
    deadline = time.monotonic() + args.timeout
    while True:
        shown = ((session.policy().get("status") or {}).get("verification")) or {}
        if shown.get("time") and shown.get("time") != before:
            if shown.get("result") == "Succeeded":
                boot = f", RUNNING after {shown['bootSeconds']} s" if shown.get("bootSeconds") is not None else ""
                session.out(f"{ref}: verified run {shown.get('lastVerifiedRun')}{boot}: {shown.get('message', '')}")
                return ExitCode.OK
            session.out(f"{ref}: restore drill failed: {shown.get('message', '')}")
            return ExitCode.FAILED
        if time.monotonic() >= deadline:
            raise Failed(
                f"timed out after {args.timeout:g}s waiting for drill {run_id}; it goes on: check later with "
                f"`vmbackupctl describe {args.policy} -n {session.namespace}`"
            )
        sleep(WAIT_POLL_SECONDS)
