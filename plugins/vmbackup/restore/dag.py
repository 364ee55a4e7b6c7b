"""Builds a VMRestore's DAG from the restore DATA (its canonical JSON); rendered restore DAG files call it.

One run, triggered by the controller (no schedule): plan -> per disk (mapped): create from snapshot, wait ->
create the instance -> wait -> clean up after a failure -> report. Mode InPlace replaces the instance steps with
replace_disks (stop, swap, start) -> settle (always: keep the replaced disks, or put them back). Waits use the shared OperationStatusSensor.
Nothing here does I/O at parse time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vmbackup.model.restore import Restore
from vmbackup.restore import steps
from vmbackup.restore.steps import DISKS_TIMEOUT, INSTANCE_TIMEOUT
from vmbackup.settings import AirflowSettings


def doc_md(restore: Restore) -> str:
    """What the restore does, for the DAG's page in the Airflow UI (all values are validated names)."""
    spec = restore.spec
    chosen = (
        f"snapshot `{spec.snapshot}` and the other snapshots of its run"
        if spec.snapshot
        else f"backup run `{spec.snapshot_run}`"
        if spec.snapshot_run
        else "the newest run whose snapshots are all READY"
    )
    return "\n".join(
        [
            f"# VM restore `{restore.namespace}/{restore.name}`",
            "",
            "Managed by **vmbackup-operator** from a `VMRestore` custom resource; the controller triggers its one run.",
            "",
            f"- **Policy:** `{restore.namespace}/{restore.policy_name}` (project `{restore.project}`)",
            f"- **Source instance:** `{restore.instance}`" + (f" in `{restore.zone}`" if restore.zone else ""),
            f"- **Snapshots:** {chosen}",
            (
                f"- **In place:** `{restore.instance}` is stopped, its disks replaced, and started again"
                if restore.in_place
                else f"- **New instance:** `{restore.target_name}`"
                + (f" in `{spec.target_zone}`" if spec.target_zone else " in the source zone")
            ),
            f"- **On failure:** {'keep' if spec.keep_disks_on_failure else 'delete'} the disks created so far",
            "",
        ]
    )


def build_restore_dag(restore_json: str) -> Any:
    """The DAG of one VMRestore whose data is in its own DAG file (files rendered by earlier versions)."""
    from vmbackup.compute.sensors import OperationStatusSensor

    restore = Restore.from_json(restore_json)
    timeouts = restore.spec.timeouts
    settings = AirflowSettings.from_env()
    seconds = {DISKS_TIMEOUT: timeouts.disks_seconds, INSTANCE_TIMEOUT: timeouts.instance_seconds}

    def wait(task_id: str, operation: Any, timeout_of: str) -> Any:
        return OperationStatusSensor(
            task_id=task_id,
            operation=operation,
            timeout=seconds[timeout_of],
            poke_interval=settings.poke_interval_seconds,
            deferrable=restore.wait_mode == "deferrable",
        )

    dag = _restore_dag(restore, settings)
    add_restore_steps(dag, restore_json, in_place=restore.in_place, wait=wait)
    return dag


WaitFactory = Callable[[str, Any, str], Any]  # (task_id, operation, DISKS_TIMEOUT | INSTANCE_TIMEOUT) -> sensor


def add_restore_steps(dag: Any, restore_json: str | None, *, in_place: bool, wait: WaitFactory) -> None:
    """The restore's tasks; `restore_json` None: each task reads the restore from its run's signed conf."""
    from vmbackup.restore.operators import CleanupRestoreDisksOperator, PlanRestoreOperator, RestoreReportOperator

    with dag:
        plan = PlanRestoreOperator(task_id=steps.PLAN, restore_json=restore_json)
        disks, disk_steps = _disk_steps(restore_json, plan, wait)
        cleanup = CleanupRestoreDisksOperator(task_id=steps.CLEANUP, restore_json=restore_json, trigger_rule="all_done")
        report = RestoreReportOperator(
            task_id=steps.REPORT, restore_json=restore_json, trigger_rule="all_done", retries=0
        )
        if in_place:
            _in_place_steps(restore_json, plan, disks, disk_steps, cleanup, report)
            return
        _new_instance_steps(restore_json, plan, disks, disk_steps, cleanup, wait)
        cleanup >> report


def _restore_dag(restore: Restore, settings: AirflowSettings) -> Any:
    import pendulum

    from vmbackup.airflow_compat import DAG

    return DAG(
        dag_id=restore.dag_id,
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["vmrestore", f"namespace:{restore.namespace}", f"policy:{restore.policy_name}"],
        doc_md=doc_md(restore),
        description=f"Restore {restore.namespace}/{restore.name} of {restore.instance}",
        default_args=settings.task_defaults(),
    )


def _disk_steps(restore_json: str | None, plan: Any, wait: WaitFactory) -> tuple[Any, list[Any]]:
    """Per planned disk (mapped): create it from its snapshot, wait. The mapped group, and its tasks."""
    from vmbackup.airflow_compat import task, task_group
    from vmbackup.restore.operators import CreateRestoreDiskOperator

    disk_steps: list[Any] = []

    @task(task_id=steps.PLANNED_DISKS)
    def planned_disks(value: Any) -> list[Any]:
        """The disks to create, one mapped task group each (a plan always has at least the boot disk)."""
        return list((value or {}).get("disks") or [])

    @task_group(group_id=steps.DISKS_GROUP, tooltip="one restored disk")
    def per_disk(disk: Any) -> None:
        create = CreateRestoreDiskOperator(task_id=steps.CREATE_DISK, target=disk, restore_json=restore_json)
        waited = wait(steps.WAIT_DISK, create.output, DISKS_TIMEOUT)
        create >> waited
        disk_steps.extend((create, waited))

    return per_disk.expand(disk=planned_disks(plan.output)), disk_steps


def _in_place_steps(
    restore_json: str | None, plan: Any, disks: Any, disk_steps: list[Any], cleanup: Any, report: Any
) -> None:
    """Mode InPlace: replace the disks (stop, swap, start), then settle, clean up and report."""
    from vmbackup.restore.in_place_operators import ReplaceDisksOperator, SettleInPlaceOperator

    replace = ReplaceDisksOperator(task_id=steps.REPLACE_DISKS, plan=plan.output, restore_json=restore_json)
    # Always: puts the original disks back after any failure (also one before the VM was touched).
    settle = SettleInPlaceOperator(task_id=steps.SETTLE, restore_json=restore_json, trigger_rule="all_done")
    disks >> replace
    [*disk_steps, replace] >> settle >> cleanup >> report


def _new_instance_steps(
    restore_json: str | None, plan: Any, disks: Any, disk_steps: list[Any], cleanup: Any, wait: WaitFactory
) -> None:
    """A new VM: create the instance from the restored disks, wait, then clean up."""
    from vmbackup.restore.operators import CreateRestoredInstanceOperator

    create_instance = CreateRestoredInstanceOperator(
        task_id=steps.CREATE_INSTANCE, plan=plan.output, restore_json=restore_json
    )
    wait_instance = wait(steps.WAIT_INSTANCE, create_instance.output, INSTANCE_TIMEOUT)
    disks >> create_instance >> wait_instance
    # Cleanup waits for every disk step too: with one disk failed, the others may still be creating.
    [*disk_steps, wait_instance] >> cleanup
