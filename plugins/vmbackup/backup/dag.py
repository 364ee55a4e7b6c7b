"""Builds a policy's whole DAG from the policy DATA (its canonical JSON); rendered DAG files call build_dag.

Nothing here does I/O at DAG parse time: Compute Engine is only contacted inside tasks. Tuning knobs that are
about the Airflow installation rather than the policy come from AirflowSettings, read once per parse. Task ids
come from backup.steps; steps are wired by object.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from vmbackup.backup import steps
from vmbackup.model.policy import BackupPolicy, cron_of
from vmbackup.settings import AirflowSettings

# The waits a stopped VM sits on (wait_stopped without a triggerer, wait_snapshots_taken) look often, each look
# one GET in a short task execution, so the VM is not kept down waiting for the next look; with a triggerer the
# operation waits long-poll `wait` in the trigger instead, where no worker slot is held. README, "Workflow
# benchmark", has what each choice was measured at.
TRIGGER_LONG_POLL_SECONDS = 60.0
# Steps a stopped VM waits on retry after at most this long. Airflow 3.2-3.3 sometimes fails a rescheduled or
# resumed sensor with "state mismatch" (a stale executor event; apache/airflow#71172, #72716): the retry absorbs
# it, and the default 60 s delay would keep the VM down a minute longer. Compute Engine's transient errors are
# retried inside the hook already.
VM_DOWN_RETRY_DELAY_SECONDS = 1.0


def first_start(policy: BackupPolicy) -> Any:
    """The DAG's start_date: the policy's creation time, so its first run is the next scheduled one.

    With catchup off, Airflow (2.10 and 3.x) runs the latest past interval as soon as a DAG with an old
    start_date is unpaused: a new 02:00 policy applied at 14:00 would stop its VMs right away.
    """
    import pendulum

    if policy.created is None:
        return pendulum.datetime(2024, 1, 1, tz=policy.spec.timezone)
    return pendulum.instance(policy.created).in_timezone(policy.spec.timezone).replace(second=0, microsecond=0)


def doc_md(policy: BackupPolicy) -> str:
    """What the policy does, for the DAG's page in the Airflow UI (all values are validated names)."""
    spec = policy.spec
    lines = [
        f"# VM backup policy `{policy.namespace}/{policy.name}`",
        "",
        "Managed by **vmbackup-operator** from a `VMBackupPolicy` custom resource: edit the resource, not this DAG.",
        "",
        f"- **Project:** `{spec.project}`",
        f"- **Schedule:** `{spec.schedule}` ({spec.timezone})",
        f"- **Consistency:** `{spec.consistency}`"
        + {
            "stop": " (each VM is stopped, snapshotted and started again)",
            "none": " (crash-consistent snapshots; VMs keep running)",
            "guestFlush": " (guest-flushed snapshots; VMs keep running)",
        }[spec.consistency],
    ]
    if spec.instances is not None:
        lines.append("- **Instances:**")
        lines += [
            f"  - `{i.name}` in `{i.zone}`"
            + (f", disks {', '.join(f'`{d}`' for d in i.disks)}" if i.disks else "")
            + (f", tier `{i.tier}`" if i.tier else "")
            for i in spec.instances
        ]
    if spec.selector is not None:
        labels = ", ".join(f"`{k}={v}`" for k, v in sorted(spec.selector.match_labels.items()))
        zones = ", ".join(f"`{z}`" for z in spec.selector.zones)
        lines.append(f"- **Selector:** instances labelled {labels} in {zones} (resolved at each run)")
    if spec.tiers:
        lines.append(f"- **Tiers (stop order):** {' → '.join(f'`{t}`' for t in spec.tiers)}; started in reverse")
    lines.append(
        f"- **Snapshot method:** `{spec.snapshot.method}`"
        + {
            "standard": " (a snapshot of each disk)",
            "instant": " (an instant snapshot of each disk, converted to a standard snapshot, then deleted)",
        }[spec.snapshot.method]
    )
    keep = []
    if spec.retention.count is not None:
        keep.append(f"the newest {spec.retention.count}")
    if spec.retention.max_age_days is not None:
        keep.append(f"those younger than {spec.retention.max_age_days} days")
    lines.append(f"- **Retention:** keep {' and '.join(keep)} per disk (the newest READY one always)")
    lines.append(
        "- **Waiting:** "
        + {
            "deferrable": "deferrable sensors (Compute Engine operations are awaited in the triggerer)",
            "reschedule": "reschedule-mode sensors (no triggerer found when the DAG was rendered)",
        }[policy.wait_mode]
    )
    t = spec.timeouts
    lines.append(
        f"- **Timeouts:** stop {t.stop_seconds}s, snapshot {t.snapshot_seconds}s, "
        f"upload {t.upload_seconds}s, start {t.start_seconds}s"
    )
    if spec.snapshot.labels:
        lines.append(
            "- **Snapshot labels:** " + ", ".join(f"`{k}={v}`" for k, v in sorted(spec.snapshot.labels.items()))
        )
    return "\n".join(lines) + "\n"


def build_dag(policy_json: str) -> Any:
    """The DAG of one policy: resolve instances, per tier a mapped group per VM, then restart, prune, report."""

    from vmbackup.airflow_compat import DAG, CronTriggerTimetable
    from vmbackup.backup.operators import ResolveInstancesOperator
    from vmbackup.backup.prune import PruneSnapshotsOperator
    from vmbackup.backup.resolution import group_keys
    from vmbackup.backup.run_report import RunReportOperator
    from vmbackup.backup.safety_net import RestartStoppedInstancesOperator

    policy = BackupPolicy.from_json(policy_json)
    spec = policy.spec
    settings = AirflowSettings.from_env()
    dag = DAG(
        dag_id=policy.dag_id,
        schedule=CronTriggerTimetable(cron_of(spec.schedule), timezone=spec.timezone),
        start_date=first_start(policy),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=spec.suspend,  # a suspended policy never starts a run, not even its first
        tags=["vmbackup", f"namespace:{policy.namespace}", f"policy:{policy.name}", f"consistency:{spec.consistency}"],
        doc_md=doc_md(policy),
        description=f"VM backups of policy {policy.namespace}/{policy.name}",
        default_args=settings.task_defaults(),
    )
    keys = group_keys(policy)
    group_ids = {key: steps.group_id(policy, key) for key in keys}
    with dag:
        resolve = ResolveInstancesOperator(task_id=steps.RESOLVE, policy_json=policy_json)
        groups = [_instance_group(policy, policy_json, key, group_ids[key], resolve, settings) for key in keys]
        if spec.consistency == "stop":
            for upper, lower in itertools.pairwise(groups):  # tier order: stop down, start back up
                upper.wait_stopped >> lower.stop
                lower.wait_started >> upper.start
        prune = PruneSnapshotsOperator(task_id=steps.PRUNE, policy_json=policy_json, trigger_rule="all_done")
        report = RunReportOperator(
            task_id=steps.REPORT, policy_json=policy_json, group_ids=group_ids, trigger_rule="all_done", retries=0
        )
        for group in groups:
            group.wait_ready >> prune
            if group.conversion is not None:
                group.conversion.delete >> prune  # prune's sweep of leftover instant snapshots comes after
        if spec.consistency == "stop":
            restart = RestartStoppedInstancesOperator(
                task_id=steps.RESTART_STOPPED,
                start_timeout_seconds=spec.timeouts.start_seconds,
                stopping_timeout_seconds=spec.timeouts.stop_seconds,
                trigger_rule="all_done",
            )
            for group in groups:
                group.wait_started >> restart
            restart >> prune
        prune >> report
        _fail_run_on_any_failure(dag, exclude=report)
    return dag


@dataclass
class InstanceSteps:
    """The steps of one tier's mapped group, as objects (None where the consistency mode has no such step)."""

    snapshot: Any
    wait_taken: Any
    wait_ready: Any
    stop: Any = None
    wait_stopped: Any = None
    start: Any = None
    wait_started: Any = None
    conversion: InstantConversion | None = None


@dataclass
class InstantConversion:
    """The steps spec.snapshot.method instant adds after the cut: convert, then delete the instant snapshots."""

    convert: Any
    delete: Any


def _instant_conversion(policy_json: str, target: Any, cut: Any, taken: Any) -> InstantConversion:
    """Convert (once `taken` saw the instant snapshots READY) and delete (after the READY wait, or any failure).

    `cut` is the step whose result lists the instant snapshots: wire both onto whichever step cuts them.
    Returns the conversion steps; the caller makes the READY wait look at `convert.output` and precede `delete`.
    """
    from vmbackup.backup.instant_operators import ConvertInstantSnapshotsOperator, DeleteInstantSnapshotsOperator

    convert = ConvertInstantSnapshotsOperator(
        task_id=steps.CONVERT, target=target, policy_json=policy_json, cut=cut.output
    )
    delete = DeleteInstantSnapshotsOperator(
        task_id=steps.DELETE_INSTANT, target=target, policy_json=policy_json, trigger_rule="all_done"
    )
    taken >> convert
    return InstantConversion(convert=convert, delete=delete)


def _instance_group(
    policy: BackupPolicy, policy_json: str, key: str, gid: str, resolve: Any, settings: AirflowSettings
) -> InstanceSteps:
    """One mapped task group over the VMs of a tier: each VM gets its own chain of steps."""
    from vmbackup.airflow_compat import task, task_group
    from vmbackup.backup.operators import (
        InstanceStartedSensor,
        SnapshotDiskOperator,
        StartInstanceOperator,
        StopInstanceOperator,
    )
    from vmbackup.compute.sensors import READY, TAKEN, OperationStatusSensor, SnapshotStatusSensor

    spec = policy.spec
    timeouts = spec.timeouts
    poke = settings.poke_interval_seconds
    vm_down_poke = min(poke, settings.vm_down_poke_seconds)
    deferrable = policy.wait_mode == "deferrable"
    long_poll = TRIGGER_LONG_POLL_SECONDS if deferrable else 0.0  # 0: a poke is one GET
    stop_mode = spec.consistency == "stop"
    # Only in stop mode is a VM down between these steps; elsewhere the default delay suits transient errors.
    quick: dict[str, Any] = {}
    if stop_mode:
        quick["retry_delay"] = timedelta(seconds=min(settings.retry_delay_seconds, VM_DOWN_RETRY_DELAY_SECONDS))
    # A VM of the first tier stays locked while every later tier waits for its VMs, stops and starts again.
    tiers = len(spec.tiers or [None])
    lock_ttl = (
        tiers * (timeouts.lock_wait_seconds + timeouts.stop_seconds + timeouts.start_seconds)
        + timeouts.snapshot_seconds
        + 600
    )
    built: list[InstanceSteps] = []

    @task(task_id=steps.targets_task_id(gid))
    def pick_targets(resolution: Any, key: str = key) -> list[Any]:
        """This tier's VMs from the resolution (an empty list maps the group to nothing)."""
        return list(((resolution or {}).get("groups") or {}).get(key) or [])

    @task_group(group_id=gid, tooltip=f"one VM of {gid}")
    def per_instance(target: Any) -> None:
        stop: Any = None
        wait_stopped: Any = None
        if stop_mode:
            stop = StopInstanceOperator(
                task_id=steps.STOP,
                target=target,
                policy_json=policy_json,
                lock_ttl_seconds=lock_ttl,
                poke_interval=poke,  # while another run holds the VM; nothing of ours is down meanwhile
                trigger_rule="none_failed",
            )
            wait_stopped = OperationStatusSensor(
                task_id=steps.WAIT_STOPPED,
                operation=stop.output,
                timeout=timeouts.stop_seconds,
                poke_interval=vm_down_poke,
                long_poll_seconds=long_poll,
                deferrable=deferrable,
                timeout_field="spec.timeouts.stopSeconds",
                **quick,
            )
        snapshot = SnapshotDiskOperator(
            task_id=steps.SNAPSHOT,
            target=target,
            stop_result=stop.output if stop is not None else None,
            policy_json=policy_json,
            **quick,
        )
        taken = SnapshotStatusSensor(
            task_id=steps.WAIT_TAKEN,
            snapshots=snapshot.output,
            project=spec.project,
            until=TAKEN,
            timeout=timeouts.snapshot_seconds,
            # CREATING lasts seconds and a stopped VM waits on it: look often (each look is one cheap GET). Never
            # deferred: for a wait this short, handing it to the triggerer and resuming keeps the VM down longer.
            poke_interval=vm_down_poke,
            **quick,
        )
        conversion = None
        if spec.snapshot.method == "instant":
            conversion = _instant_conversion(policy_json, target, snapshot, taken)
        ready = SnapshotStatusSensor(
            task_id=steps.WAIT_READY,
            snapshots=(conversion.convert if conversion else snapshot).output,
            project=spec.project,
            until=READY,
            timeout=timeouts.upload_seconds,
            poke_interval=poke,
            deferrable=deferrable,
        )
        taken >> ready
        if conversion is not None:
            conversion.convert >> ready >> conversion.delete
        found = InstanceSteps(snapshot=snapshot, wait_taken=taken, wait_ready=ready, conversion=conversion)
        if stop_mode:
            start = StartInstanceOperator(
                task_id=steps.START,
                target=target,
                stopping_timeout_seconds=timeouts.stop_seconds,
                trigger_rule="all_done",
                **quick,
            )
            started = InstanceStartedSensor(
                task_id=steps.WAIT_STARTED,
                operation=start.output,
                target=target,
                timeout=timeouts.start_seconds,
                poke_interval=poke,
                long_poll_seconds=long_poll,
                deferrable=deferrable,
                timeout_field="spec.timeouts.startSeconds",
            )
            wait_stopped >> snapshot
            taken >> start >> started
            found.stop, found.wait_stopped, found.start, found.wait_started = stop, wait_stopped, start, started
        built.append(found)

    per_instance.expand(target=pick_targets(resolve.output))
    return built[0]


def _fail_run_on_any_failure(dag: Any, exclude: Any) -> None:
    """A leaf that fails the run if any step failed, even one whose failure the report cannot see."""
    from vmbackup.airflow_compat import AirflowException, task

    @task(task_id=steps.FAIL_RUN, trigger_rule="one_failed", retries=0)
    def fail_run_if_a_step_failed() -> None:
        raise AirflowException("a backup step failed; the run report lists what happened to each VM")

    upstream = [t for t in dag.tasks if t is not exclude]
    watcher = fail_run_if_a_step_failed()
    for t in upstream:
        t >> watcher
