"""A run's task logs from Airflow, reached with the controller's own configuration.

The policy's Airflow is found exactly as the controller finds it (spec.composer through the tenancy
map's grant, else the configured default target), and the controller's REST client does the talking
with the credentials made for that target, so the CLI cannot disagree with the controller about where
a policy runs or how to log in, and never hands the operator's credentials to an address a policy wrote.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from controller.airflow_api import AirflowClient, DagRunInfo, TaskInstanceInfo
from controller.airflow_errors import AirflowAuthError, AirflowError, AirflowUnavailable
from controller.config import AirflowAuthMode, ConfigError, ControllerConfig
from controller.targets import Target
from controller.vmbackupctl.errors import CliError, Failed, NotFound, Unreachable, UsageError
from vmbackup.model.policy import ComposerTarget, dag_id_for

FAILED_STATES = ("failed", "upstream_failed", "up_for_retry")
LOG_FETCH_CONCURRENCY = 8


@dataclasses.dataclass(frozen=True)
class TaskLog:
    task: TaskInstanceInfo
    text: str

    @property
    def failed(self) -> bool:
        return (self.task.state or "") in FAILED_STATES


@dataclasses.dataclass(frozen=True)
class RunLogs:
    dag_id: str
    run: DagRunInfo
    logs: list[TaskLog]  # failed tasks first, then in the order they ran
    not_run: list[TaskInstanceInfo]  # tasks with no try yet (skipped, upstream failed, waiting)


async def resolve_target(config: ControllerConfig, namespace: str, spec: dict[str, Any]) -> Target:
    """The policy's bucket, Airflow web server and credentials, resolved as the controller resolves them."""
    from controller.target_grants import TargetNotAllowedError
    from controller.targets import Targets, TargetUnavailableError
    from controller.tenancy import Tenancy, TenancyConfigError

    raw = spec.get("composer")
    try:
        composer = ComposerTarget.model_validate(raw) if raw else None
    except ValueError as exc:
        raise UsageError(f"spec.composer of this policy is invalid, so its Airflow is unknown: {exc}") from None
    if composer is None and not config.has_default_target:
        raise UsageError(
            "no Airflow to ask: the policy sets no spec.composer and no default target is configured; "
            "set VMBACKUP_COMPOSER_ENVIRONMENT, or VMBACKUP_BUCKET with VMBACKUP_AIRFLOW_URL (or the same flags)"
        )
    try:
        tenancy = Tenancy.configured(config) if composer is not None else Tenancy(None)
    except TenancyConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from None
    targets = Targets(
        config, tenancy=tenancy, airflow_factory=lambda target: None, resolve_environment=_composer_resolver()
    )
    try:
        target = await targets.resolve(namespace, composer)
    except TargetNotAllowedError as exc:
        raise UsageError(
            f"{exc} (vmbackupctl reads the tenancy map from VMBACKUP_TENANCY_FILE, as the controller does)"
        ) from None
    except TargetUnavailableError as exc:
        raise Unreachable(str(exc)) from None
    return target


async def fetch_run_logs(
    client: AirflowClient, dag_id: str, run_id: str | None = None, task_id: str | None = None
) -> RunLogs:
    """The given run (default: the newest) and each of its tasks' latest try's log."""
    with airflow_errors(client.base_url, dag_id):
        if run_id is None:
            latest = await client.latest_runs([dag_id])
            if dag_id not in latest:
                await client.get_dag(dag_id)  # 404 here: Airflow does not know the DAG at all
                raise NotFound(f"DAG {dag_id} has no runs yet; start one with `vmbackupctl backup-now`")
            run = latest[dag_id]
        else:
            run = await _run_or_not_found(client, dag_id, run_id)
        tasks = await client.task_instances(dag_id, run.run_id)
        if task_id is not None:
            tasks = [t for t in tasks if t.task_id == task_id]
            if not tasks:
                raise NotFound(f"run {run.run_id} of {dag_id} has no task {task_id!r}")
        ran = [t for t in tasks if t.try_number > 0]
        texts = await _gather_limited(
            [client.task_log(dag_id, run.run_id, t.task_id, t.try_number, t.map_index) for t in ran]
        )
    logs = [TaskLog(task, text) for task, text in zip(ran, texts, strict=True)]
    logs.sort(key=lambda log: (not log.failed, _started(log.task), log.task.task_id, log.task.map_index))
    not_run = [t for t in tasks if t.try_number == 0]
    return RunLogs(dag_id=dag_id, run=run, logs=logs, not_run=not_run)


def format_run_logs(result: RunLogs) -> str:
    """A header per task (failed ones first, marked), then its log; tasks that never ran are listed at the end."""
    run = result.run
    lines = [f"# run {run.run_id} of {result.dag_id}: {run.state}"]
    for log in result.logs:
        task = log.task
        mark = "FAILED " if log.failed else ""
        mapped = f" [map {task.map_index}]" if task.map_index >= 0 else ""
        lines.append("")
        lines.append(f"==> {mark}{task.task_id}{mapped} ({task.state}, try {task.try_number}) <==")
        lines.append(log.text.rstrip("\n") or "(empty log)")
    if result.not_run:
        lines.append("")
        names = ", ".join(f"{t.task_id} ({t.state or 'no status'})" for t in result.not_run)
        lines.append(f"# not run: {names}")
    return "\n".join(lines)


async def _run_or_not_found(client: AirflowClient, dag_id: str, run_id: str) -> DagRunInfo:
    try:
        return await client.get_run(dag_id, run_id)
    except AirflowError as exc:
        if exc.status == 404:
            raise NotFound(f"DAG {dag_id} has no run {run_id!r} ({exc.message})") from None
        raise


async def _gather_limited(calls: Sequence[Coroutine[Any, Any, str]]) -> list[str]:
    """Fetch logs side by side, a few at a time (a run can have hundreds of tasks)."""
    semaphore = asyncio.Semaphore(LOG_FETCH_CONCURRENCY)

    async def one(call: Coroutine[Any, Any, str]) -> str:
        async with semaphore:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))


def _started(task: TaskInstanceInfo) -> str:
    return task.start_date.isoformat() if task.start_date else "~"


@contextmanager
def airflow_errors(url: str, dag_id: str) -> Iterator[None]:
    try:
        yield
    except CliError:
        raise
    except AirflowAuthError as exc:
        raise Unreachable(
            f"Airflow at {url} refused our credentials: {exc.message}; check VMBACKUP_AIRFLOW_AUTH and "
            "VMBACKUP_AIRFLOW_USERNAME/_PASSWORD/_TOKEN (Composer: your Google credentials)"
        ) from None
    except AirflowUnavailable as exc:
        raise Unreachable(f"{exc}; check VMBACKUP_AIRFLOW_URL (or the Composer environment) and try again") from None
    except AirflowError as exc:
        if exc.status == 404:
            raise NotFound(
                f"Airflow at {url} does not know DAG {dag_id}: the controller has not uploaded it or Airflow "
                "has not parsed it yet (see `vmbackupctl describe`)"
            ) from None
        raise Failed(str(exc)) from None


def load_config(overrides: dict[str, Any], auth_mode: AirflowAuthMode | None) -> ControllerConfig:
    """The controller's configuration (VMBACKUP_* variables), flags winning; a bad value is a usage error."""
    try:
        config = ControllerConfig.from_env(**overrides)
        if auth_mode:
            config = dataclasses.replace(config, airflow_auth=dataclasses.replace(config.airflow_auth, mode=auth_mode))
    except ConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from None
    return config


def policy_dag_id(namespace: str, name: str) -> str:
    return dag_id_for(namespace, name)


def _composer_resolver() -> Callable[[str], Awaitable[tuple[str, str]]]:
    """Composer environment -> (bucket, Airflow URL) from the Composer API, as the controller resolves it."""

    async def resolve(environment: str) -> tuple[str, str]:
        from controller.composer import discover

        found = await discover(environment)
        return found.bucket, found.airflow_uri

    return resolve
