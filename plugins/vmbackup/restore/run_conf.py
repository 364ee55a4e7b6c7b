"""The restore of a shared restore DAG's run: its signed conf, verified on the worker before any step acts.

The controller starts each restore as a run of a shared DAG (vmbackup.restore.shared_dag) with the validated
restore as the run's conf, signed (vmbackup.model.run_signature). Every task reads it from there: the
signature binds it to the DAG and the run id, the first step also checks that it has not expired, and the
restore is validated again here. Anything else fails the task at once (no retries), before a Compute Engine
client exists.
"""

from __future__ import annotations

from typing import Any

from vmbackup.airflow_compat import AirflowFailException
from vmbackup.compute.sensors import OperationStatusSensor
from vmbackup.model.policy import PolicyError
from vmbackup.model.restore import Restore, shared_restore_dag_id
from vmbackup.restore.steps import DISKS_TIMEOUT
from vmbackup.signed_conf import signed_payload

PLACEHOLDER_TIMEOUT_SECONDS = 24 * 3600  # replaced in execute() by the restore's own spec.timeouts


def signed_restore_json(context: Any) -> str:
    """The run's restore as canonical JSON; AirflowFailException unless the controller signed it for this run.

    The run must have started before the conf expired: its later steps go on however long the restore takes.
    """
    dag_id, run_id = str(context["ti"].dag_id), str(context["run_id"])
    payload = signed_payload(context)
    try:
        restore = Restore.from_json(payload)
    except (PolicyError, ValueError) as exc:
        raise AirflowFailException(f"refused: run {run_id} carries no valid restore: {exc}") from None
    if shared_restore_dag_id(restore.in_place) != dag_id:
        raise AirflowFailException(
            f"refused: restore {restore.namespace}/{restore.name} (mode {restore.spec.mode}) does not run in {dag_id}"
        )
    return payload


class RestoreOperationSensor(OperationStatusSensor):
    """The shared DAG's wait: its timeout (spec.timeouts) and wait mode come from the run's signed restore."""

    def __init__(self, *, timeout_of: str, **kwargs: Any):
        super().__init__(timeout=PLACEHOLDER_TIMEOUT_SECONDS, **kwargs)
        self.timeout_of = timeout_of

    def execute(self, context: Any) -> Any:
        restore = Restore.from_json(signed_restore_json(context))
        timeouts = restore.spec.timeouts
        self.timeout = float(timeouts.disks_seconds if self.timeout_of == DISKS_TIMEOUT else timeouts.instance_seconds)
        self.deferrable = restore.wait_mode == "deferrable"
        return super().execute(context)
