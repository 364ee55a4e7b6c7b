"""The two steps spec.snapshot.method instant adds after a batch's cut: convert to standard snapshots, delete the
instant ones.

Both call backup/snapshot_cuts.py, which owns names, labels and the made-by-this-run rule; they only read their
inputs and hand the results on. Both run whatever happened before (trigger rule all_done): the conversion reads the
cut step's per-VM record, which that step leaves also when one of its VMs failed, so one VM's failure never costs
the others of its batch their backup; the delete works from the batch's targets, so it also cleans up after a cut
that failed half way. Results have the shape of a batch step's, so the READY wait and the report read them alike.
"""

from __future__ import annotations

import time
from typing import Any

from vmbackup.airflow_compat import AirflowException
from vmbackup.backup.batch_operators import batch_result, window_record
from vmbackup.backup.resolution import Target, vm_key
from vmbackup.backup.slot_check import scheduled_slot
from vmbackup.backup.snapshot_cuts import convert_instant_snapshots, remove_instant_snapshots
from vmbackup.compute.hook import TAKEN, ComputeEngineHook, pending_snapshots
from vmbackup.compute.step_operator import ComputeStepOperator
from vmbackup.model.policy import BackupPolicy
from vmbackup.policy_task import PolicyTask


class ConvertInstantSnapshotsOperator(PolicyTask, ComputeStepOperator):
    """Starts a standard snapshot from each instant snapshot the batch's cut step made (the VMs may run again).

    Returns a batch result: {"vms": [{"instance", "zone", "snapshots"}], "snapshots": [every item, as the cut's]}.
    """

    template_fields = ("batch",)

    def __init__(self, *, batch: Any, policy_json: str, cut_task_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.batch = batch
        self.policy_json = policy_json
        self.cut_task_id = cut_task_id

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        targets: dict[str, Target] = {vm_key(t): t for t in self.batch or []}
        cut = window_record(context, self.cut_task_id) or {}
        policy = self.policy
        slot = scheduled_slot(context)
        vms: list[dict[str, Any]] = []
        failed: list[str] = []
        for vm in cut.get("vms") or []:
            items = list(vm.get("snapshots") or [])
            if vm.get("skipped") or vm.get("error") or not items or vm_key(vm) not in targets:
                continue  # nothing cut, or the cut failed (that VM's error is its cut step's)
            try:
                _wait_taken(hook, policy, targets[vm_key(vm)]["project"], items)
                converted = convert_instant_snapshots(hook, policy, targets[vm_key(vm)], items, slot)
            except Exception as exc:  # the batch's other VMs are still converted; the step fails after them
                failed.append(f"{vm['instance']}: {exc}")
                continue
            vms.append({"instance": vm["instance"], "zone": vm["zone"], "snapshots": converted})
        if failed:
            raise AirflowException(f"converting instant snapshots failed for {len(failed)} VM(s): {'; '.join(failed)}")
        return batch_result(vms)


class DeleteInstantSnapshotsOperator(PolicyTask, ComputeStepOperator):
    """Deletes this run's instant snapshots of the batch's VMs once their standard snapshots are READY, or after any
    failure (trigger rule all_done). Returns {"deleted": [...], "kept": [...]}."""

    template_fields = ("batch",)

    def __init__(self, *, batch: Any, policy_json: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.batch = batch
        self.policy_json = policy_json

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        policy = self.policy
        done: dict[str, list[str]] = {"deleted": [], "kept": []}
        for t in self.batch or []:
            removed = remove_instant_snapshots(hook, policy, t)
            done["deleted"] += removed["deleted"]
            done["kept"] += removed["kept"]
        return done


def _wait_taken(hook: ComputeEngineHook, policy: BackupPolicy, project: str, items: list[dict[str, Any]]) -> None:
    """Until the instant snapshots are READY: the down window waited already (one look then), a cut of running VMs
    did not. Seconds at most; bounded by spec.timeouts.snapshotSeconds."""
    limit = policy.spec.timeouts.snapshot_seconds
    deadline = time.monotonic() + limit
    while pending := pending_snapshots(hook.snapshot_states(project, items), TAKEN):
        if time.monotonic() >= deadline:
            names = ", ".join(f"{n}={s}" for n, s in sorted(pending.items()))
            raise TimeoutError(
                f"instant snapshots {names} were not READY {limit}s after the cut: the timeout "
                "(spec.timeouts.snapshotSeconds) ran out. Raise it if these disks need longer"
            )
        time.sleep(1.0)
