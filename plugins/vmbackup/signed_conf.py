"""The payload of a shared DAG's run (restores, drills): its conf as the controller signed it, checked on the worker.

The shared DAGs take their data from the run's conf, signed by the controller (vmbackup.model.run_signature) for
the DAG, the run id and an expiry. Each task checks it here before it does anything: a conf the controller did not
sign for this very run, or one whose run started after it expired, fails the task at once (no retries).
"""

from __future__ import annotations

import time
from typing import Any

from vmbackup.airflow_compat import AirflowFailException
from vmbackup.model.run_signature import RunSignatureError, signing_key_from_env, verify_run_conf


def _started_at(dag_run: Any) -> float:
    """When the scheduler started the run (no API caller sets it; clearing a run resets it); unknown: now."""
    started = getattr(dag_run, "start_date", None)
    return started.timestamp() if started is not None else time.time()


def signed_payload(context: Any) -> str:
    """The run's signed payload; AirflowFailException unless the controller signed it for this DAG and run.

    The run must have started before the conf expired: its later steps go on however long they take.
    """
    dag_id, run_id, dag_run = str(context["ti"].dag_id), str(context["run_id"]), context.get("dag_run")
    try:
        conf = getattr(dag_run, "conf", None) or {}
        return verify_run_conf(signing_key_from_env(), conf, dag_id=dag_id, run_id=run_id, now=_started_at(dag_run))
    except RunSignatureError as exc:
        raise AirflowFailException(f"refused: {exc}") from None


def signed_runs_dag(dag_id: str, *, tags: list[str], doc_md: str, description: str) -> Any:
    """A DAG with no schedule whose runs the controller starts, each with its signed conf (restores, drills).

    Paused-on-creation does not matter: the controller unpauses it before it triggers a run.
    """
    import pendulum

    from vmbackup.airflow_compat import DAG
    from vmbackup.settings import AirflowSettings

    settings = AirflowSettings.from_env()
    return DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=settings.max_active_restores,
        tags=tags,
        doc_md=doc_md,
        description=description,
        default_args=settings.task_defaults(),
    )
