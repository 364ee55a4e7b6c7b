"""The two steps of an InPlace restore after its disks exist: replace the VM's disks, then settle (always).

The swap holds a worker slot while it waits (a stop, a detach and an attach per disk, a start: minutes, bounded by
spec.inPlace.swapSeconds) so that it is one retryable unit; restore/in_place_swap.py converges, so a retry finishes
what an earlier try began. A Compute Engine operation that ends with an error fails the step at once, unretried:
the settle step then puts the original disks back and starts the VM. The Compute Engine part of both steps is
restore/in_place_swap.py's, which `vmbackupctl restore --from-snapshots --in-place` runs without Airflow.
"""

from __future__ import annotations

from typing import Any

from vmbackup.airflow_compat import AirflowFailException
from vmbackup.compute.hook import ComputeEngineHook, OperationFailedError
from vmbackup.restore import in_place_swap, steps
from vmbackup.restore.operators import RestoreStepOperator, _plan, _report, write_restore_report
from vmbackup.restore.plan import RestorePlan
from vmbackup.vm.lock import InstanceHeldError
from vmbackup.vm.power import PowerError


class ReplaceDisksOperator(RestoreStepOperator):
    """Holds the VM (lock label), stops it, swaps in the restored disks and starts it again."""

    template_fields = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.plan = plan

    def restore_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        plan: RestorePlan = self.plan
        restore = self.restore
        write_restore_report(_report(restore, context, plan, "ReplacingDisks"))
        if plan["done"]:
            return {"replaced": True, "detached": [], "attached": []}
        assert restore.spec.in_place is not None
        try:
            swapped = in_place_swap.replace_disks(hook, plan, restore.spec.in_place.swap_seconds)
        except InstanceHeldError as exc:
            raise AirflowFailException(
                f"instance {plan['target']} is held by a backup run ({exc}); nothing was changed: create the "
                "VMRestore again once that backup has finished"
            ) from None
        except (OperationFailedError, TimeoutError, PowerError) as exc:
            raise AirflowFailException(str(exc)) from None
        return {"replaced": True, **swapped}


class SettleInPlaceOperator(RestoreStepOperator):
    """Always runs. After the swap: labels (or deletes) the replaced disks. After any failure: puts the original
    disks back under their device names, starts the VM when it was RUNNING, and lets go of it."""

    def restore_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        plan = _plan(context)
        if plan is None or "in_place" not in plan:
            return {"restored": False, "rolled_back": False}
        assert self.restore.spec.in_place is not None
        swapped = context["ti"].xcom_pull(task_ids=steps.REPLACE_DISKS)
        return in_place_swap.settle(hook, plan, swapped=bool(swapped), seconds=self.restore.spec.in_place.swap_seconds)
