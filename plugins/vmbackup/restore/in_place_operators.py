"""The two steps of an InPlace restore after its disks exist: replace the VM's disks, then settle (always).

The swap holds a worker slot while it waits (a stop, a detach and an attach per disk, a start: minutes, bounded by
spec.inPlace.swapSeconds) so that it is one retryable unit; restore/in_place.py converges, so a retry finishes
what an earlier try began. A Compute Engine operation that ends with an error fails the step at once, unretried:
the settle step then puts the original disks back and starts the VM.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vmbackup.airflow_compat import AirflowFailException
from vmbackup.compute.hook import ComputeEngineHook, OperationFailedError
from vmbackup.restore import in_place, steps
from vmbackup.restore.operators import RestoreStepOperator, _plan, _report, write_restore_report
from vmbackup.restore.plan import RestorePlan
from vmbackup.vm.disks import detach
from vmbackup.vm.lock import InstanceHeldError
from vmbackup.vm.power import PowerError

log = logging.getLogger(__name__)

LOCK_MARGIN_SECONDS = 600  # the lock outlives the swap's own deadline: the settle step may still need the VM


def _deadline(seconds: int) -> float:
    return time.monotonic() + seconds


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
        seconds = restore.spec.in_place.swap_seconds
        deadline = _deadline(seconds)
        try:
            in_place.take(hook, plan, seconds + LOCK_MARGIN_SECONDS)
        except InstanceHeldError as exc:
            raise AirflowFailException(
                f"instance {plan['target']} is held by a backup run ({exc}); nothing was changed: create the "
                "VMRestore again once that backup has finished"
            ) from None
        try:
            in_place.stop(hook, plan, deadline)
            swapped = in_place.swap_to(hook, plan, plan["in_place"]["replacements"], deadline)
            in_place.start(hook, plan, deadline)
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
        restore = self.restore
        assert restore.spec.in_place is not None
        deadline = _deadline(restore.spec.in_place.swap_seconds)
        swapped = context["ti"].xcom_pull(task_ids=steps.REPLACE_DISKS)
        if swapped and in_place.is_restored(hook, plan):
            replaced = in_place.label_replaced(hook, plan, deadline)
            deleted = in_place.delete_replaced(hook, plan, deadline) if plan["in_place"]["delete_replaced"] else []
            in_place.give_back(hook, plan)
            return {"restored": True, "rolled_back": False, "replaced": replaced, "deleted_replaced": deleted}
        if not self._touched(hook, plan):
            log.info("instance %s was not changed: nothing to put back", plan["target"])
            return {"restored": False, "rolled_back": False}
        log.warning("the restore failed: putting the original disks of %s back", plan["target"])
        if self._differs(hook, plan):
            in_place.stop(hook, plan, deadline)
            self._detach_added(hook, plan, deadline)
            in_place.swap_to(hook, plan, plan["in_place"]["originals"], deadline)
        try:
            in_place.start(hook, plan, deadline)
        finally:  # a VM that does not run again keeps the stopped-by mark: the keeper starts it
            in_place.give_back(hook, plan)
        return {"restored": False, "rolled_back": True}

    @classmethod
    def _touched(cls, hook: ComputeEngineHook, plan: RestorePlan) -> bool:
        """Did this restore change the VM: its lock (it may have stopped it), or a disk swapped?"""
        return in_place.holds(hook, plan) or cls._differs(hook, plan)

    @staticmethod
    def _differs(hook: ComputeEngineHook, plan: RestorePlan) -> bool:
        now = in_place.attached(hook, plan)
        had = {o["device_name"] for o in plan["in_place"]["originals"]}
        return any(now.get(o["device_name"]) != o["disk"] for o in plan["in_place"]["originals"]) or any(
            now.get(r["device_name"]) == r["disk"]
            for r in plan["in_place"]["replacements"]
            if r["device_name"] not in had
        )

    @staticmethod
    def _detach_added(hook: ComputeEngineHook, plan: RestorePlan, deadline: float) -> None:
        """Restored disks at device names the VM did not have before go again."""
        had = {o["device_name"] for o in plan["in_place"]["originals"]}
        now = in_place.attached(hook, plan)
        for new in plan["in_place"]["replacements"]:
            if new["device_name"] not in had and now.get(new["device_name"]) == new["disk"]:
                detach(
                    hook,
                    plan["project"],
                    plan["zone"],
                    plan["target"],
                    new["device_name"],
                    lambda: in_place.left(deadline),
                )
