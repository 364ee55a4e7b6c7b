"""The two steps spec.snapshot.method instant adds after the cut: convert to standard snapshots, delete the instant ones.

Both call backup/snapshot_cuts.py, which owns names, labels and the made-by-this-run rule; they only read their
inputs from XCom and hand the results on. Returns have the shape of SnapshotDiskOperator's, so the READY wait and
the report read them alike.
"""

from __future__ import annotations

from typing import Any

from vmbackup.backup.resolution import Target
from vmbackup.backup.slot_check import scheduled_slot
from vmbackup.backup.snapshot_cuts import convert_instant_snapshots, remove_instant_snapshots
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.compute.step_operator import ComputeStepOperator
from vmbackup.model.policy import BackupPolicy


class ConvertInstantSnapshotsOperator(ComputeStepOperator):
    """Starts a standard snapshot from each instant snapshot of the cut (the VM may already run again).

    Returns {"instance", "zone", "snapshots": [{"name", "disk", "operation", "kind", "instant_snapshot"}], "skipped"}.
    """

    template_fields = ("target", "cut")

    def __init__(self, *, target: Any, policy_json: str, cut: Any, **kwargs: Any):
        super().__init__(target=target, **kwargs)
        self.policy_json = policy_json
        self.cut = cut

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        t: Target = self.target
        cut = self.cut if isinstance(self.cut, dict) else {}
        result: dict[str, Any] = {"instance": t["instance"], "zone": t["zone"], "snapshots": [], "skipped": None}
        if cut.get("skipped"):
            return result | {"skipped": cut["skipped"]}
        policy = BackupPolicy.from_json(self.policy_json)
        items = list(cut.get("snapshots") or [])
        return result | {"snapshots": convert_instant_snapshots(hook, policy, t, items, scheduled_slot(context))}


class DeleteInstantSnapshotsOperator(ComputeStepOperator):
    """Deletes this run's instant snapshots of the VM once its standard snapshots are READY, or after any failure
    (trigger rule all_done). Returns {"instance", "zone", "deleted": [...], "kept": [...]}."""

    template_fields = ("target",)

    def __init__(self, *, target: Any, policy_json: str, **kwargs: Any):
        super().__init__(target=target, **kwargs)
        self.policy_json = policy_json

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        t: Target = self.target
        done = remove_instant_snapshots(hook, BackupPolicy.from_json(self.policy_json), t)
        return {"instance": t["instance"], "zone": t["zone"], **done}
