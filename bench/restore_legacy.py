"""The path earlier versions took, driven from the bench: a DAG file of the restore's (or the policy's drill's) own.

The bench's baseline only; the controller never takes this path any more. What it reproduces, step by step:

- **A restore** (the controller's VMRestore handler before commit ae3d1a7): validate the restore against its
  policy, render the restore's own DAG file (``dags_templates.render_restore.render_restore_dag``, the template
  earlier versions rendered, kept for files already in buckets) with the wait mode the controller picks for the
  environment, upload it to the bucket's ``dags/``, then unpause the DAG and start its one run (run id
  ``vmrestore__<uid>``, no conf), retried every ``min(poll interval, 15 s)`` (the handler's TemporaryError
  delay) while Airflow answers 404 because it has not parsed the file yet. Its status then came from the
  restore report at the controller's status timer (every poll interval from the object's creation), which the
  driver does the same way; the file is deleted after the restore is done (as ``kubectl delete vmrestore`` did).
- **A drill** (before commit 6ef097f): once ``spec.verification`` is applied, render and upload the policy's own
  drill DAG file (``render_drill_dag``), then ``vmbackupctl verify`` as it was: unpause and trigger a run
  ``manual__verify-<time>``, retried every 2 s (an accepted request needs the DAG in Airflow first). The drill's
  result is read into the policy status by today's controller, as then (controller/drills.py is unchanged).

The file then travels the stack's modelled bucket -> Airflow sync and waits for the DAG processor's next listing,
and Airflow runs it with today's plugins (``vmbackup.restore_factory`` and ``vmbackup.drill.dag`` still build
such files: "DAG files of restores created by earlier versions keep working until they finish"), so it runs the
same tasks as the shipped DAGs; only the way it reaches Airflow differs. Every call is made with the
controller's own clients (BucketSync, AirflowControl, WaitModeResolver). What differs from a VMRestore handled
by an earlier controller: the driver acts at the apply itself, so the controller's reaction to a new object
(kopf's watch, the handler) is not in this column, while it is in the shipped column; the difference favours
the old path.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from controller.airflow_errors import AirflowUnreachableError, DagNotFoundError
from controller.airflow_link import AirflowControl, make_airflow_client
from controller.bucket import BucketSync
from controller.config import ControllerConfig
from controller.restore_handlers import run_id_for
from controller.targets import Target, Targets
from controller.tenancy import Tenancy
from controller.wait_mode import WaitModeResolver
from dags_templates.render_drill import render_drill_dag
from dags_templates.render_restore import render_restore_dag
from devstack.stack import LocalStack, wait_until
from vmbackup.model.drill import drill_dag_id_for
from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL, BackupPolicy, parse_policy
from vmbackup.model.report import RestoreReport, restore_report_object_name
from vmbackup.model.restore import TERMINAL_PHASES, parse_restore

T = TypeVar("T")
TRIGGER_RETRY_CAP_SECONDS = 15.0  # the VMRestore handler retried its trigger after min(poll interval, this)
VERIFY_RETRY_SECONDS = 2.0  # how often the bench retried `vmbackupctl verify` until Airflow had the drill DAG


@dataclass(frozen=True)
class LegacyRun:
    """One run in a DAG file of its own: the file's DAG and the run the driver started in it."""

    dag_id: str
    run_id: str
    name: str  # the restore's name (the restored VM's), or the policy's for a drill


class LegacyPath:
    """Earlier versions' controller (and vmbackupctl verify) for one policy of the stack, in the bench process."""

    def __init__(self, stack: LocalStack, api: Any, namespace: str, policy: str, within: float) -> None:
        self.stack, self.api, self.namespace, self.policy_name, self.within = stack, api, namespace, policy, within
        self.config = ControllerConfig.from_env(stack.controller_env())
        self.targets = Targets(
            self.config,
            tenancy=Tenancy(None),
            storage_client=stack.storage_client(),
            airflow_factory=lambda target: AirflowControl(make_airflow_client(target.airflow_url, target.auth)),
        )
        self.wait_modes = WaitModeResolver(self.config.wait_mode, self.config.wait_mode_refresh_seconds)
        self._runner = asyncio.Runner()
        self.target: Target = self._run(self.targets.default())

    def close(self) -> None:
        self._run(self.targets.close())
        self._runner.close()

    def _run(self, work: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await work

        return self._runner.run(wrapped())

    @property
    def airflow(self) -> AirflowControl:
        control: AirflowControl = self.targets.airflow(self.target)
        return control

    @property
    def bucket(self) -> BucketSync:
        return self.targets.bucket(self.target)

    def policy(self) -> BackupPolicy:
        """The policy as the controller validated it (its spec, generation and creation time), for this target."""
        obj = self.api.get_namespaced_custom_object(API_GROUP, API_VERSION, self.namespace, PLURAL, self.policy_name)
        meta = obj["metadata"]
        policy = parse_policy(
            self.namespace, self.policy_name, obj["spec"], int(meta.get("generation") or 0), meta["creationTimestamp"]
        )
        return policy.waiting(self._run(self.wait_modes.mode(self.target.key, self.airflow)))

    # -- a restore ---------------------------------------------------------------------------------------

    def start_restore(self, name: str) -> LegacyRun:
        """Upload the restore's own DAG file, then start its one run as soon as Airflow has parsed it."""
        policy = self.policy()
        restore = parse_restore(self.namespace, name, {"policyName": self.policy_name}, policy, generation=1)
        restore = restore.model_copy(update={"wait_mode": policy.wait_mode})
        self.bucket.upload_dag(restore.dag_id, render_restore_dag(restore))
        run = LegacyRun(restore.dag_id, run_id_for(str(uuid.uuid4())), name)

        async def trigger() -> None:
            await self.airflow.set_paused(run.dag_id, False)
            await self.airflow.start_run_once(run.dag_id, run.run_id)

        every = min(self.config.poll_interval_seconds, TRIGGER_RETRY_CAP_SECONDS)
        self._when_parsed(run.dag_id, trigger, every)
        return run

    def restore_done(self, run: LegacyRun) -> RestoreReport:
        """The status timer: every poll interval, the restore report of this run, until it says the restore ended."""

        def ended() -> RestoreReport | None:
            blob = self.bucket.bucket.get_blob(restore_report_object_name(self.namespace, run.name))
            if blob is None:
                return None
            report = RestoreReport.model_validate_json(blob.download_as_bytes())
            return report if report.run_id == run.run_id and report.phase in TERMINAL_PHASES else None

        what = f"the restore report of {run.run_id} in {run.dag_id}"
        report: RestoreReport = wait_until(
            ended, within=self.within, what=what, interval=self.config.poll_interval_seconds
        )
        return report

    # -- a drill -----------------------------------------------------------------------------------------

    def start_drill(self) -> LegacyRun:
        """The policy's own drill DAG file (spec.verification is applied), then `vmbackupctl verify` as it was."""
        policy = self.policy()
        dag_id = drill_dag_id_for(self.namespace, self.policy_name)
        self.bucket.upload_dag(dag_id, render_drill_dag(policy))
        run = LegacyRun(dag_id, f"manual__verify-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}", self.policy_name)

        async def verify() -> None:
            await self.airflow.set_paused(run.dag_id, False)
            await self.airflow.trigger_run(run.dag_id, run_id=run.run_id)

        self._when_parsed(run.dag_id, verify, VERIFY_RETRY_SECONDS)
        return run

    # -- shared ------------------------------------------------------------------------------------------

    def has_file(self, run: LegacyRun) -> bool:
        return self.bucket.has_dag(run.dag_id)

    def retire(self, run: LegacyRun) -> None:
        """Delete the file (as its VMRestore's deletion, or spec.verification's removal, did), then wait until
        Airflow's DAG processor has listed the folder without it: a later file at the same path is new to it again,
        as a first drill DAG file of a policy was."""
        self.bucket.delete_dag(run.dag_id)
        assert self.stack.airflow is not None
        api = self.stack.airflow.api

        def forgotten() -> bool:
            dag = api.dag(run.dag_id)
            return dag is None or bool(dag.get("is_stale")) or dag.get("is_active") is False

        wait_until(forgotten, within=self.within, what=f"Airflow to forget {run.dag_id} (its file deleted)", interval=2)

    def _when_parsed(self, dag_id: str, start: Callable[[], Awaitable[None]], every: float) -> None:
        """Call `start` until Airflow knows the DAG (a 404 until its file has reached Airflow and been parsed)."""

        def attempt() -> bool:
            try:
                self._run(start())
            except (DagNotFoundError, AirflowUnreachableError):
                return False
            return True

        wait_until(attempt, within=self.within, what=f"{dag_id} in Airflow (a DAG file of its own)", interval=every)
