"""The shared restore DAGs: shipped once with the plugins, each run is one VMRestore given as its signed conf.

A restore must not wait for a DAG file of its own to reach Airflow (on Composer: the bucket sync, then the DAG
processor's listing, minutes). So the controller triggers a run of one of these two DAGs (new VM, or InPlace:
another task graph) through Airflow's REST API, with a run id derived from the VMRestore, and the restore as the
run's conf: data, never code, signed by the controller and verified by every task (vmbackup.restore.run_conf).
No schedule; paused-on-creation does not matter: the controller unpauses before it triggers.
"""

from __future__ import annotations

from typing import Any

from vmbackup.model.restore import SHARED_IN_PLACE_RESTORE_DAG_ID, SHARED_RESTORE_DAG_ID
from vmbackup.settings import AirflowSettings
from vmbackup.signed_conf import signed_runs_dag

DOC_MD = """# VM restores (vmbackup-operator)

Each run restores one `VMRestore` custom resource; the controller starts the runs. A run's configuration is
the restore, signed by the controller: a run started from this page, or with a configuration changed by hand,
fails in its first task and touches nothing. To restore a VM, create a `VMRestore` (`vmbackupctl restore`).
"""


def build_shared_restore_dag(in_place: bool) -> Any:
    from vmbackup.restore.dag import add_restore_steps
    from vmbackup.restore.run_conf import RestoreOperationSensor

    settings = AirflowSettings.from_env()
    dag = signed_runs_dag(
        SHARED_IN_PLACE_RESTORE_DAG_ID if in_place else SHARED_RESTORE_DAG_ID,
        tags=["vmrestore", "vmbackup"],
        doc_md=DOC_MD,
        description="In-place VM restores (vmbackup-operator)" if in_place else "VM restores (vmbackup-operator)",
    )

    def wait(task_id: str, operation: Any, timeout_of: str) -> Any:
        return RestoreOperationSensor(
            task_id=task_id, operation=operation, timeout_of=timeout_of, poke_interval=settings.poke_interval_seconds
        )

    add_restore_steps(dag, None, in_place=in_place, wait=wait)
    return dag
