"""From Airflow's view of the managed DAGs to each policy's status: one batched poll per cycle.

:class:`RunStatusPoller` asks Airflow three questions for all policies at once (their DAGs, each
DAG's latest run, the import errors), reads run reports only for runs it has not seen finish, and
asks for task instances only for runs that newly failed without a report naming the step. The cost
of a cycle is therefore a small constant, whatever the number of policies.

:class:`PolicyRunStatus` is the pure mapping of those facts to the status contract: typed run fields
(controller/status.py's RunFields, serialised only when the status is written) and conditions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import cast

from controller.airflow_api import ACTIVE_RUN_STATES, AirflowClient, DagInfo, DagRunInfo, ImportErrorInfo
from controller.airflow_errors import AirflowAuthError, AirflowError, AirflowRedirectError, AirflowUnavailable
from controller.conditions import (
    AIRFLOW_REACHABLE,
    DAG_IMPORT_ERROR,
    LAST_BACKUP_SUCCEEDED,
    SCHEDULE_ON_TIME,
    Condition,
    rfc3339,
)
from controller.run_reports import RunReportError, RunReportReader
from controller.status import LastRun, PolicyKey, RunFields, SnapshotsTaken
from vmbackup.model.policy import DAG_ID_PREFIX, dag_id_for
from vmbackup.model.report import MissedSlot, RunReport

log = logging.getLogger(__name__)

# Run states -> the contract's `result`.
RESULTS = {"success": "Succeeded", "failed": "Failed", "running": "Running", "queued": "Queued"}
MAX_MESSAGE_CHARS = 2000  # condition messages stay readable in `kubectl describe`


def _tail(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """The end of a long text: a traceback's last lines say what went wrong."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


@dataclasses.dataclass(frozen=True)
class PolicyRunStatus:
    """What Airflow (and the run report) say about one policy, and how that reads as status."""

    namespace: str
    name: str
    dag_id: str
    unreachable: str | None = None  # why Airflow could not be asked; None when it answered
    unreachable_reason: str = "Unreachable"
    dag: DagInfo | None = None
    run: DagRunInfo | None = None
    import_error: ImportErrorInfo | None = None
    report: RunReport | None = None
    report_problem: str | None = None
    failed_step: str | None = None
    failure_message: str | None = None

    @property
    def reachable(self) -> bool:
        return self.unreachable is None

    @property
    def has_import_error(self) -> bool:
        return self.import_error is not None or bool(self.dag and self.dag.has_import_errors)

    @property
    def dag_loaded(self) -> bool:
        """Airflow knows the DAG and parsed its file cleanly: half of the Ready condition."""
        return self.reachable and self.dag is not None and not self.has_import_error

    @property
    def result(self) -> str:
        if not self.reachable:
            return "Unknown"
        active = self.run is not None and self.run.state in ACTIVE_RUN_STATES
        if self.dag is not None and self.dag.is_paused and not active:
            return "Suspended"
        if self.run is None:
            return "Pending"
        if self.run.state == "success" and self.missed is not None:
            return "Missed"
        return RESULTS.get(self.run.state, "Unknown")

    @property
    def missed(self) -> MissedSlot | None:
        return self.report.missed if self.report is not None else None

    @property
    def snapshots(self) -> list[str] | None:
        return self.report.snapshots if self.report is not None else None

    def last_run(self) -> LastRun | None:
        run = self.run
        if run is None:
            return None
        return LastRun(
            run_id=run.run_id,
            state=run.state,
            start_time=run.start_date,
            end_time=run.end_date,
            duration_seconds=run.duration_seconds,
            failed_step=self.failed_step if run.state == "failed" else None,
            message=self._run_message(),
        )

    def _run_message(self) -> str:
        run = self.run
        if run is None:
            return ""
        notes = []
        if run.state == "failed":
            notes.append(self.failure_message or "the run failed; see its task logs in Airflow")
        elif run.state == "success" and self.missed is not None:
            notes.append(f"slot missed ({self.missed.reason}): {self.missed.message}")
        elif run.state == "success" and self.report is not None:
            count = len(self.report.snapshots)
            notes.append(f"{count} snapshot{'' if count == 1 else 's'} created")
        if self.report_problem:
            notes.append(self.report_problem)
        return "; ".join(notes)

    def conditions(self) -> list[Condition]:
        """LastBackupSucceeded, DagImportError, AirflowReachable: the conditions Airflow decides (their one owner).

        A condition this cycle cannot decide is left out (e.g. LastBackupSucceeded while a run is in
        progress), so the object keeps what it said before. Ready and Suspended are controller/status.py's.
        """
        if not self.reachable:
            return [Condition(AIRFLOW_REACHABLE, "False", self.unreachable_reason, self.unreachable or "")]
        conditions = []
        run = self.run
        if run is None:
            conditions.append(Condition(LAST_BACKUP_SUCCEEDED, "Unknown", "NoRunYet", "the DAG has not run yet"))
        elif run.state == "success" and self.missed is None:
            conditions.append(Condition(LAST_BACKUP_SUCCEEDED, "True", "RunSucceeded", self._describe_run()))
        elif run.state == "failed":
            conditions.append(Condition(LAST_BACKUP_SUCCEEDED, "False", "RunFailed", self._describe_run()))
        schedule = self._schedule_condition()
        if schedule is not None:
            conditions.append(schedule)
        if self.import_error is not None:
            conditions.append(Condition(DAG_IMPORT_ERROR, "True", "ImportError", _tail(self.import_error.stack_trace)))
        elif self.dag is not None and self.dag.has_import_errors:
            where = self.dag.fileloc or self.dag_id
            conditions.append(Condition(DAG_IMPORT_ERROR, "True", "ImportError", f"Airflow cannot import {where}"))
        elif self.dag is None:
            conditions.append(
                Condition(
                    DAG_IMPORT_ERROR,
                    "Unknown",
                    "DagNotLoaded",
                    f"Airflow has not loaded DAG {self.dag_id} yet; an uploaded file is picked up at the next scan",
                )
            )
        else:
            conditions.append(Condition(DAG_IMPORT_ERROR, "False", "Imported", ""))
        conditions.append(Condition(AIRFLOW_REACHABLE, "True", "Reachable", ""))
        return conditions

    def _schedule_condition(self) -> Condition | None:
        """ScheduleOnTime for a finished scheduled run; a backup asked for by hand says nothing about the schedule."""
        if self.run is None or not self.run.finished or self.report is None:
            return None
        missed = self.report.missed
        if missed is not None:
            slot = rfc3339(missed.slot)
            return Condition(SCHEDULE_ON_TIME, "False", f"Missed{missed.reason}", f"slot {slot}: {missed.message}")
        if self.report.slot is not None:
            return Condition(SCHEDULE_ON_TIME, "True", "SlotRan", f"slot {rfc3339(self.report.slot)} ran")
        return None

    def _describe_run(self) -> str:
        assert self.run is not None
        message = self._run_message()
        return f"run {self.run.run_id}: {message}" if message else f"run {self.run.run_id}"

    def run_fields(self) -> RunFields | None:
        """The status fields this module owns (result and the run fields); None when Airflow could not be asked."""
        if not self.reachable:
            return None
        run, report = self.run, self.report
        succeeded = run is not None and run.state == "success"
        taken = None
        if run is not None and succeeded and self.missed is None:
            finished = report.finished_at if report is not None and report.finished_at else None
            taken = SnapshotsTaken(finished or run.end_date, report.snapshots if report is not None else None)
        return RunFields(
            result=self.result,
            last_run=self.last_run(),
            next_run=self.dag.next_run if self.dag is not None and not self.dag.is_paused else None,
            schedule_time=report.slot if report is not None else None,
            missed_slot=self.missed if succeeded else None,
            taken=taken,
        )


class RunStatusPoller:
    """One poll cycle for many policies against one Airflow; keeps small caches between cycles."""

    def __init__(
        self,
        client: AirflowClient,
        reports: RunReportReader | None = None,
        *,
        dag_id_prefix: str = DAG_ID_PREFIX,
        concurrency: int = 8,
    ) -> None:
        self.client = client
        self.reports = reports
        self.dag_id_prefix = dag_id_prefix
        self._limit = asyncio.Semaphore(concurrency)
        # (dag_id, run_id, run start) -> (step, message): a fresh metadata DB reuses run ids (scheduled__<slot>)
        self._failures: dict[tuple[str, str, datetime | None], tuple[str | None, str]] = {}

    async def poll(self, policies: Iterable[PolicyKey]) -> dict[PolicyKey, PolicyRunStatus]:
        """Every policy's status; an unreachable Airflow gives each an AirflowReachable=False status."""
        keys = list(dict.fromkeys(policies))
        if self.reports is not None:
            self.reports.keep_only(keys)  # a deleted policy's report is not kept
        if not keys:
            return {}
        dag_ids = {key: dag_id_for(*key) for key in keys}
        answers = await asyncio.gather(
            self.client.list_dags(self.dag_id_prefix),
            self.client.latest_runs(dag_ids.values()),
            self.client.import_errors(),
            return_exceptions=True,
        )
        problem = next((a for a in answers if isinstance(a, BaseException)), None)
        if problem is not None:
            return {key: self._unreachable(key, dag_ids[key], problem) for key in keys}
        dags_list, runs, errors = cast(tuple[list[DagInfo], dict[str, DagRunInfo], list[ImportErrorInfo]], answers)
        dags = {dag.dag_id: dag for dag in dags_list}
        statuses = await asyncio.gather(
            *(self._status(key, dag_ids[key], dags.get(dag_ids[key]), runs.get(dag_ids[key]), errors) for key in keys)
        )
        self._failures = {
            k: v
            for k, v in self._failures.items()
            if runs.get(k[0]) and (runs[k[0]].run_id, runs[k[0]].start_date) == k[1:]
        }
        return dict(zip(keys, statuses, strict=True))

    def _unreachable(self, key: PolicyKey, dag_id: str, problem: BaseException) -> PolicyRunStatus:
        if isinstance(problem, AirflowAuthError):
            reason = "AuthenticationFailed"
        elif isinstance(problem, AirflowUnavailable):
            reason = "Unreachable"
        elif isinstance(problem, AirflowRedirectError):
            reason = "Redirected"
        elif isinstance(problem, AirflowError):
            reason = "RequestFailed"
        else:
            raise problem  # a bug of ours, not Airflow's state: let it surface
        return PolicyRunStatus(key[0], key[1], dag_id, unreachable=str(problem), unreachable_reason=reason)

    async def _status(
        self,
        key: PolicyKey,
        dag_id: str,
        dag: DagInfo | None,
        run: DagRunInfo | None,
        errors: list[ImportErrorInfo],
    ) -> PolicyRunStatus:
        namespace, name = key
        report, report_problem = None, None
        if run is not None and run.finished and self.reports is not None:
            async with self._limit:
                try:
                    report = await self.reports.report_for(namespace, name, run.run_id, run.start_date)
                except RunReportError as exc:
                    report_problem = str(exc)
                except Exception as exc:  # the bucket is a best-effort source of detail, never fatal
                    log.warning("cannot read the run report of %s/%s: %s", namespace, name, exc)
        failed_step, failure_message = None, None
        if run is not None and run.state == "failed":
            failed_step, failure_message = await self._failure(dag_id, run, report)
        return PolicyRunStatus(
            namespace,
            name,
            dag_id,
            dag=dag,
            run=run,
            import_error=_import_error_for(dag_id, dag, errors),
            report=report,
            report_problem=report_problem,
            failed_step=failed_step,
            failure_message=failure_message,
        )

    async def _failure(self, dag_id: str, run: DagRunInfo, report: RunReport | None) -> tuple[str | None, str]:
        """The step that failed: the report's first error, or Airflow's failed task (one call per failed run)."""
        if report is not None and report.failed_step is not None:
            error = report.failed_step
            subject = " ".join(part for part in (error.instance, error.disk) if part)
            return error.step, f"{error.step} failed{f' for {subject}' if subject else ''}: {error.message}"
        cached = self._failures.get((dag_id, run.run_id, run.start_date))
        if cached is not None:
            return cached
        async with self._limit:
            try:
                tasks = await self.client.task_instances(dag_id, run.run_id)
            except (AirflowError, AirflowUnavailable) as exc:
                return None, f"the run failed; its tasks could not be listed: {exc}"
        failed = sorted(
            (t for t in tasks if t.state == "failed"),
            key=lambda t: t.end_date or datetime.max.replace(tzinfo=UTC),
        )
        if failed:
            task = failed[0]
            answer: tuple[str | None, str] = (
                task.task_id,
                f"task {task.task_id} failed (try {task.try_number}); its log in Airflow says why",
            )
        else:
            answer = (None, "the run failed without a failed task (timed out or marked failed)")
        self._failures[(dag_id, run.run_id, run.start_date)] = answer
        return answer


def _import_error_for(dag_id: str, dag: DagInfo | None, errors: list[ImportErrorInfo]) -> ImportErrorInfo | None:
    """Import errors name files, not DAGs: ours are ``<dag_id>.py`` (or whatever file Airflow loaded the DAG from)."""
    filename = f"{dag_id}.py"
    for error in errors:
        if error.filename == filename or error.filename.endswith("/" + filename):
            return error
        if dag is not None and dag.fileloc and error.filename == dag.fileloc:
            return error
    return None
