"""The task ids of the backup DAG, each defined once: the factory names its tasks with these, the report reads them.

Task ids are part of the contract (the controller, the run report and Airflow's history of earlier runs all
name them), so they never change.
"""

from __future__ import annotations

from vmbackup.model.policy import BackupPolicy

RESOLVE = "resolve_instances"
RESTART_STOPPED = "restore_instances"  # the safety net (RestartStoppedInstancesOperator); the id predates the name
PRUNE = "prune_snapshots"
REPORT = "report"
FAIL_RUN = "fail_run_if_a_step_failed"

# The steps of a batch of VMs, inside its tier's mapped task group ("<group>.<step>"): the down window (stop mode),
# split in two for a tier that stays down while the later tiers are backed up, or the cut (other modes); then the
# wait for the upload.
DOWN_WINDOW = "down_window"
GO_DOWN = "go_down"
COME_UP = "come_up"
WINDOW_STEPS = (DOWN_WINDOW, GO_DOWN, COME_UP)

# The steps of one VM in the per-step layout of earlier releases (the benchmark's tutorial flow keeps it).
STOP = "stop"
WAIT_STOPPED = "wait_stopped"
SNAPSHOT = "snapshot"
WAIT_TAKEN = "wait_snapshots_taken"
START = "start"
WAIT_STARTED = "wait_started"
WAIT_READY = "wait_snapshots_ready"
# spec.snapshot.method instant only, per batch after the cut: instant snapshots to standard ones, then the instant
# ones deleted.
CONVERT = "convert_instant_snapshots"
DELETE_INSTANT = "delete_instant_snapshots"
GROUP_STEPS = (DOWN_WINDOW, GO_DOWN, COME_UP, SNAPSHOT, CONVERT, WAIT_READY, DELETE_INSTANT)


def group_id(policy: BackupPolicy, key: str) -> str:
    """The task group of one tier (or of all VMs, without tiers)."""
    return f"tier_{key}" if policy.spec.tiers else "instances"


def targets_task_id(group: str) -> str:
    """The task that picks a group's batches of VMs out of the resolution."""
    return f"{group}_targets"


def in_group(group: str, step: str) -> str:
    """The full task id of a step inside a group."""
    return f"{group}.{step}"
