"""The shared drill DAG: shipped once with the plugins, each run is one restore drill of a policy.

A drill must not wait for a DAG file of its own to reach Airflow (on Composer: the bucket sync, then the DAG
processor's listing, minutes). So the controller triggers a run of this DAG through Airflow's REST API, on the
policy's spec.verification.schedule or when `vmbackupctl verify` asks, with a run id derived from the policy and
the slot (or request), and the validated policy as the run's conf: data, never code, signed by the controller and
verified by every task (vmbackup.drill.run_conf). No schedule of its own.
"""

from __future__ import annotations

from typing import Any

from vmbackup.model.drill import SHARED_DRILL_DAG_ID
from vmbackup.signed_conf import signed_runs_dag

DOC_MD = """# Restore drills (vmbackup-operator)

Each run restores the newest READY backup run of one `VMBackupPolicy` (with `spec.verification`) into a throwaway
VM, checks it and deletes it again; the controller starts the runs. A run's configuration is the policy, signed by
the controller: a run started from this page, or with a configuration changed by hand, fails in its first task and
touches nothing. To start a drill now: `vmbackupctl verify POLICY`.
"""


def build_shared_drill_dag() -> Any:
    from vmbackup.drill.dag import add_drill_steps
    from vmbackup.drill.run_conf import signed_drill_policy_json

    dag = signed_runs_dag(
        SHARED_DRILL_DAG_ID,
        tags=["vmbackup", "restore-drill"],
        doc_md=DOC_MD,
        description="Restore drills (vmbackup-operator)",
    )
    add_drill_steps(dag, None, signed_drill_policy_json)
    return dag
