"""The policy of a shared drill DAG's run: its signed conf, verified on the worker before any drill step acts.

The controller starts each drill as a run of the shared drill DAG (vmbackup.drill.shared_dag) with the validated
policy as the run's conf, signed (vmbackup.model.run_signature) for that DAG and run id. Every drill task reads
the policy from here (vmbackup.policy_task's policy source): the signature binds it to the DAG and the run id
(the controller signs only run ids of the policy's drill prefix, by which it finds a drill in flight), and the
policy is validated again and must ask for drills. Anything else fails the task at once, before a Compute Engine
client exists.
"""

from __future__ import annotations

from typing import Any

from vmbackup.airflow_compat import AirflowFailException
from vmbackup.model.drill import SHARED_DRILL_DAG_ID
from vmbackup.model.policy import BackupPolicy, PolicyError
from vmbackup.signed_conf import signed_payload


def signed_drill_policy_json(context: Any) -> str:
    """The run's policy as canonical JSON; AirflowFailException unless the controller signed it for this run."""
    dag_id, run_id = str(context["ti"].dag_id), str(context["run_id"])
    if dag_id != SHARED_DRILL_DAG_ID:
        raise AirflowFailException(f"refused: drills read a signed policy only in {SHARED_DRILL_DAG_ID}, not {dag_id}")
    payload = signed_payload(context)
    try:
        policy = BackupPolicy.from_json(payload)
    except (PolicyError, ValueError) as exc:
        raise AirflowFailException(f"refused: run {run_id} carries no valid policy: {exc}") from None
    if policy.spec.verification is None:
        raise AirflowFailException(f"refused: policy {policy.namespace}/{policy.name} has no spec.verification")
    return payload
