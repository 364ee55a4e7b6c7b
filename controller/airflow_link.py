"""The controller's view of Airflow: the two calls it makes and the batched status it reads.

The Airflow REST client (controller/airflow_api.py) and the run-status poller
(controller/run_status.py) are separate parts; this module states what the reconciler needs from
them and adapts their types to the reconciler's (errors, RunObservation), so the reconciler does
not depend on their internals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from google.cloud import storage

from controller.airflow_api import AirflowClient, DagRunInfo, TaskInstanceInfo
from controller.airflow_auth import make_auth
from controller.airflow_errors import (
    AirflowAuthError,
    AirflowError,
    AirflowRefusedError,
    AirflowUnavailable,
    AirflowUnreachableError,
    DagNotFoundError,
)
from controller.config import AirflowCredentials
from controller.run_reports import RunReportReader
from controller.run_status import PolicyRunStatus, RunStatusPoller
from controller.status import PolicyKey, RunObservation

if TYPE_CHECKING:
    from controller.targets import Target


class AirflowLink(Protocol):
    async def set_paused(self, dag_id: str, paused: bool) -> None: ...

    async def trigger_run(self, dag_id: str, run_id: str | None = None) -> str: ...

    async def start_run_once(self, dag_id: str, run_id: str, conf: Mapping[str, Any] | None = None) -> bool: ...

    async def run_state(self, dag_id: str, run_id: str) -> str: ...

    async def run_tasks(self, dag_id: str, run_id: str) -> list[TaskInstanceInfo]: ...

    async def active_runs(self, dag_ids: Iterable[str]) -> list[DagRunInfo]: ...

    async def import_error(self, file_name: str) -> str | None: ...

    def status_poller(self, reports: RunReportReader) -> RunStatusPoller: ...

    async def health(self) -> Mapping[str, Any]: ...

    async def close(self) -> None: ...


class RunStatusFeed(Protocol):
    async def observe(
        self, target: Target, airflow: AirflowLink, bucket: storage.Bucket, dags: Mapping[PolicyKey, str]
    ) -> Mapping[PolicyKey, RunObservation]:
        """One batched query for all ``dags`` of one target (an unreachable Airflow is an observation too)."""
        ...


class AirflowControl:
    """AirflowLink over the REST client, with its errors sorted into the reconciler's three kinds."""

    def __init__(self, client: AirflowClient):
        self.client = client

    async def set_paused(self, dag_id: str, paused: bool) -> None:
        try:
            await self.client.set_paused(dag_id, paused)
        except Exception as exc:
            raise _sorted_error(exc, dag_id) from exc

    async def trigger_run(self, dag_id: str, run_id: str | None = None) -> str:
        """Start a run; with a run_id, asking twice starts one run (Airflow's 409 for an existing id is success)."""
        try:
            run = await self.client.trigger_run(dag_id, run_id=run_id)
        except AirflowError as exc:
            if run_id is not None and exc.status == 409:
                return run_id
            raise _sorted_error(exc, dag_id) from exc
        except Exception as exc:
            raise _sorted_error(exc, dag_id) from exc
        return run.run_id

    async def start_run_once(self, dag_id: str, run_id: str, conf: Mapping[str, Any] | None = None) -> bool:
        """Start the one run with this id (a restore's, with its conf); False when Airflow has it already (409).

        Sorted as a restore needs: rejected credentials are a refusal (not worth waiting for), and a 404 says
        the DAG's file is not parsed yet.
        """
        try:
            await self.client.trigger_run(dag_id, run_id=run_id, conf=conf)
        except AirflowUnavailable as exc:
            raise AirflowUnreachableError(str(exc)) from exc
        except AirflowError as exc:
            if exc.status == 409:
                return False
            if exc.status == 404:
                raise DagNotFoundError(f"Airflow has not parsed {dag_id} yet") from exc
            raise AirflowRefusedError(str(exc)) from exc
        return True

    async def run_state(self, dag_id: str, run_id: str) -> str:
        """The state of one run (queued, running, success, failed)."""
        try:
            run = await self.client.get_run(dag_id, run_id)
        except Exception as exc:
            raise _sorted_error(exc, dag_id) from exc
        return str(run.state)

    async def run_tasks(self, dag_id: str, run_id: str) -> list[TaskInstanceInfo]:
        """The task instances of one run (what a restore is doing now)."""
        try:
            return await self.client.task_instances(dag_id, run_id)
        except Exception as exc:
            raise _sorted_error(exc, dag_id) from exc

    async def active_runs(self, dag_ids: Iterable[str]) -> list[DagRunInfo]:
        """The queued and running runs of these DAGs (a drill in flight), in one request."""
        wanted = list(dag_ids)
        try:
            return await self.client.active_runs(wanted)
        except Exception as exc:
            raise _sorted_error(exc, ", ".join(wanted)) from exc

    async def import_error(self, file_name: str) -> str | None:
        """The last line of Airflow's import error for a DAG file of this name (None: it imports, or not parsed)."""
        try:
            errors = await self.client.import_errors()
        except Exception as exc:
            raise _sorted_error(exc, "") from exc
        found = next((e for e in errors if e.filename.rsplit("/", 1)[-1] == file_name), None)
        if found is None:
            return None
        lines = [line for line in found.stack_trace.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"Airflow cannot import {file_name}"

    def status_poller(self, reports: RunReportReader) -> RunStatusPoller:
        """The batched run-status poller (controller/run_status.py) over this Airflow's client."""
        return RunStatusPoller(self.client, reports)

    async def health(self) -> Mapping[str, Any]:
        """Airflow's health report (which components run, the triggerer among them)."""
        try:
            return await self.client.health()
        except Exception as exc:
            raise _sorted_error(exc, "") from exc

    async def close(self) -> None:
        await self.client.close()


def _sorted_error(exc: Exception, dag_id: str) -> Exception:
    if isinstance(exc, AirflowUnavailable | AirflowAuthError):
        return AirflowUnreachableError(str(exc))
    if isinstance(exc, AirflowError) and exc.status == 404:
        return DagNotFoundError(f"Airflow does not know DAG {dag_id} yet (it has not parsed the uploaded file)")
    if isinstance(exc, AirflowError):
        return AirflowRefusedError(str(exc))
    return exc


def make_airflow_client(airflow_url: str, auth: AirflowCredentials) -> AirflowClient:
    return AirflowClient(
        airflow_url, make_auth(auth.mode, username=auth.username, password=auth.password, token=auth.token)
    )


class PollerFeed:
    """RunStatusFeed over the run-status poller (controller/run_status.py), one poller per target."""

    def __init__(self) -> None:
        self._pollers: dict[tuple[str, str], RunStatusPoller] = {}

    async def observe(
        self, target: Target, airflow: AirflowLink, bucket: storage.Bucket, dags: Mapping[PolicyKey, str]
    ) -> Mapping[PolicyKey, RunObservation]:
        if target.key not in self._pollers:
            self._pollers[target.key] = airflow.status_poller(RunReportReader(bucket))
        statuses = await self._pollers[target.key].poll(dags)
        return {key: observation_of(status) for key, status in statuses.items()}


def observation_of(status: PolicyRunStatus) -> RunObservation:
    """The poller's per-policy answer in the reconciler's terms."""
    import_error = None
    if status.import_error is not None:
        import_error = status.import_error.stack_trace or f"Airflow cannot import {status.import_error.filename}"
    elif status.has_import_error:
        import_error = f"Airflow cannot import the file of {status.dag_id}"
    return RunObservation(
        reachable=status.reachable,
        run=status.run_fields(),
        conditions=tuple(status.conditions()),
        dag_loaded=status.dag is not None if status.reachable else None,
        dag_paused=status.dag.is_paused if status.reachable and status.dag is not None else None,
        import_error=import_error,
        unreachable_reason=status.unreachable or "",
        report=status.report,
    )
