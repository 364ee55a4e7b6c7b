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
from vmbackup.start_dates import first_start

# Inside the down window a stopped VM's waits look this often at most (each look one GET per VM or snapshot; the
# operation waits long-poll `wait`), so the VM is not kept down waiting for the next look.
# docs/benchmarks.md, "Workflow", has what each choice was measured at.
WINDOW_POLL_SECONDS = 1.0
# The down window retries after at most this long when its worker or trigger was lost (Airflow 3.2-3.3 also fails
# a resumed task now and then with "state mismatch", a stale executor event; apache/airflow#71172, #72716): the
# default 60 s delay would keep the VMs down a minute longer. Compute Engine's transient errors are retried inside
# the hook already.
VM_DOWN_RETRY_DELAY_SECONDS = 1.0


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
    lines += _vm_lines(policy)
    lines.append(
        f"- **Snapshot method:** `{spec.snapshot.method}`"
        + {
            "standard": " (a snapshot of each disk)",
            "instant": " (an instant snapshot of each disk, converted to a standard snapshot, then deleted)",
        }[spec.snapshot.method]
    )
    if spec.snapshot.where_and_what:
        lines.append(f"- **Snapshots:** {spec.snapshot.kind()}, in project `{spec.snapshot_project}`")
    if spec.max_unavailable is not None:
        lines.append(f"- **Rolling:** at most `{spec.max_unavailable}` VMs of a tier down at once")
    lines.append(
        f"- **Retention:** keep {' and '.join(spec.retention.phrases())} (in {spec.timezone}; always the newest READY "
        f"snapshot of each disk and the newest {spec.retention.last_successful} complete run(s) of each VM)"
    )
    lines.append(
        "- **Waiting:** "
        + {
            "deferrable": "deferrable sensors (each down window and upload wait runs in the triggerer)",
            "reschedule": "reschedule-mode sensors (no triggerer found when the DAG was rendered: each down window is "
            "one task)",
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


def _vm_lines(policy: BackupPolicy) -> list[str]:
    """The doc's lines on which VMs the policy backs up (listed, or selected at each run) and in which order."""
    spec = policy.spec
    lines: list[str] = []
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
    return lines


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
    stop_mode = spec.consistency == "stop"
    with dag:
        resolve = ResolveInstancesOperator(task_id=steps.RESOLVE, policy_json=policy_json)
        groups = [
            _batch_group(policy, policy_json, key, group_ids[key], resolve, settings, innermost=index == len(keys) - 1)
            for index, key in enumerate(keys)
        ]
        if stop_mode:
            for upper, lower in itertools.pairwise(groups):  # tier order: down tier by tier, up in reverse
                upper.down >> lower.down
                lower.up >> upper.up
        prune = PruneSnapshotsOperator(task_id=steps.PRUNE, policy_json=policy_json, trigger_rule="all_done")
        report = RunReportOperator(
            task_id=steps.REPORT, policy_json=policy_json, group_ids=group_ids, trigger_rule="all_done", retries=0
        )
        for group in groups:
            group.wait_ready >> prune
            if group.conversion is not None:
                group.conversion.delete >> prune  # prune's sweep of leftover instant snapshots comes after
        if stop_mode:
            restart = RestartStoppedInstancesOperator(
                task_id=steps.RESTART_STOPPED,
                start_timeout_seconds=spec.timeouts.start_seconds,
                stopping_timeout_seconds=spec.timeouts.stop_seconds,
                group_ids=group_ids,
                trigger_rule="all_done",
            )
            for group in groups:
                group.up >> restart
            restart >> prune
        prune >> report
        _fail_run_on_any_failure(dag, exclude=report)
    return dag


@dataclass
class BatchSteps:
    """The steps of one tier's mapped group, as objects: `down` ends the tier's going down (the cut is taken),
    `up` ends its coming up (the same task when the tier's window is one step)."""

    down: Any
    up: Any
    wait_ready: Any
    conversion: InstantConversion | None = None


@dataclass
class InstantConversion:
    """The steps spec.snapshot.method instant adds after a batch's cut: convert, then delete the instant snapshots."""

    convert: Any
    delete: Any


def _instant_conversion(policy_json: str, batch: Any, cut: Any) -> InstantConversion:
    """Convert once `cut` (the down window, or the cut of running VMs) saw the instant snapshots READY; delete after
    the READY wait. Both run whatever failed before: the conversion reads each VM's record of the cut, the delete
    cleans up from the batch's targets. The caller makes the READY wait look at `convert.output`."""
    from vmbackup.backup.instant_operators import ConvertInstantSnapshotsOperator, DeleteInstantSnapshotsOperator

    convert = ConvertInstantSnapshotsOperator(
        task_id=steps.CONVERT, batch=batch, policy_json=policy_json, cut_task_id=cut.task_id, trigger_rule="all_done"
    )
    delete = DeleteInstantSnapshotsOperator(
        task_id=steps.DELETE_INSTANT, batch=batch, policy_json=policy_json, trigger_rule="all_done"
    )
    cut >> convert
    return InstantConversion(convert=convert, delete=delete)


def _batch_group(
    policy: BackupPolicy,
    policy_json: str,
    key: str,
    gid: str,
    resolve: Any,
    settings: AirflowSettings,
    *,
    innermost: bool,
) -> BatchSteps:
    """One mapped task group over the batches of a tier: the down window (or the cut), then the upload wait.

    The last tier (or the only group) runs its whole window as one step; an earlier tier goes down in one step and
    comes up in another, after the later tiers are up again.
    """
    from vmbackup.airflow_compat import task, task_group
    from vmbackup.compute.sensors import READY, SnapshotStatusSensor

    spec = policy.spec
    timeouts = spec.timeouts
    poke = settings.poke_interval_seconds
    deferrable = policy.wait_mode == "deferrable"
    stop_mode = spec.consistency == "stop"
    window = _window_args(policy, policy_json, settings)
    built: list[BatchSteps] = []

    @task(task_id=steps.targets_task_id(gid))
    def pick_batches(resolution: Any, key: str = key) -> list[Any]:
        """This tier's batches of VMs from the resolution (an empty list maps the group to nothing)."""
        return list(((resolution or {}).get("batches") or {}).get(key) or [])

    @task_group(group_id=gid, tooltip=f"one batch of VMs of {gid}")
    def per_batch(batch: Any) -> None:
        down, up = _window_steps(policy_json, batch, window, stop_mode=stop_mode, innermost=innermost)
        conversion = _instant_conversion(policy_json, batch, down) if spec.snapshot.method == "instant" else None
        ready = SnapshotStatusSensor(
            task_id=steps.WAIT_READY,
            snapshots=(conversion.convert if conversion else down).output,
            project=spec.project,
            until=READY,
            timeout=timeouts.upload_seconds,
            poke_interval=poke,
            deferrable=deferrable,
        )
        if conversion is not None:  # the READY wait follows the conversion, which runs whatever the cut did
            ready >> conversion.delete
        built.append(BatchSteps(down=down, up=up, wait_ready=ready, conversion=conversion))

    per_batch.expand(batch=pick_batches(resolve.output))
    return built[0]


def _window_args(policy: BackupPolicy, policy_json: str, settings: AirflowSettings) -> dict[str, Any]:
    """The arguments every down window step of the policy gets."""
    timeouts = policy.spec.timeouts
    poke = settings.poke_interval_seconds
    # A VM of the first tier stays locked while every later tier waits for its VMs, stops and starts again.
    tiers = len(policy.spec.tiers or [None])
    lock_ttl = (
        tiers * (timeouts.lock_wait_seconds + timeouts.stop_seconds + timeouts.start_seconds)
        + timeouts.snapshot_seconds
        + 600
    )
    return {
        "policy_json": policy_json,
        "deferrable": policy.wait_mode == "deferrable",
        "poll_seconds": min(WINDOW_POLL_SECONDS, poke, settings.vm_down_poke_seconds),
        "poke_interval": poke,  # the looks of the lock wait, before anything of ours is down
        "lock_ttl_seconds": lock_ttl,
        "project_limit": settings.max_vms_in_flight_per_project,
        "retry_delay": timedelta(seconds=min(settings.retry_delay_seconds, VM_DOWN_RETRY_DELAY_SECONDS)),
    }


def _window_steps(
    policy_json: str, batch: Any, window: dict[str, Any], *, stop_mode: bool, innermost: bool
) -> tuple[Any, Any]:
    """A batch's going down and coming up: one cut of running VMs, one whole window, or a window in two phases."""
    from vmbackup.backup.batch_operators import DownWindowOperator, SnapshotBatchOperator
    from vmbackup.backup.down_window import DOWN, FULL, UP

    down: Any
    up: Any
    if not stop_mode:
        down = up = SnapshotBatchOperator(task_id=steps.SNAPSHOT, batch=batch, policy_json=policy_json)
    elif innermost:
        down = up = DownWindowOperator(
            task_id=steps.DOWN_WINDOW, batch=batch, phase=FULL, trigger_rule="none_failed", **window
        )
    else:
        down = DownWindowOperator(task_id=steps.GO_DOWN, batch=batch, phase=DOWN, trigger_rule="none_failed", **window)
        up = DownWindowOperator(task_id=steps.COME_UP, batch=batch, phase=UP, trigger_rule="all_done", **window)
        down >> up
    return down, up


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
