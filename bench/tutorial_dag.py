"""The baseline: the Cloud Composer tutorial's backup flow, built from the project's own operators.

"Automating infrastructure with Cloud Composer" backs a VM up with one sequential chain: stop the VM, wait,
snapshot its disk, wait until the snapshot is done, start the VM, wait, each wait a sensor in poke mode (it
holds its worker slot for the whole wait). Building it from our operators and sensors means both flows pay the
same Compute Engine calls per step and the same Airflow overhead; what differs is exactly what the benchmark
compares: when the VM is started again (after READY here, after the snapshot left CREATING in ours) and how
the sensors wait.

The DAG file the benchmark writes is fixed text; the policy is read from a JSON file next to it (data). The text
names both "airflow" and "dag": the DAG processor's safe mode skips files that do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmbackup.model.policy import BackupPolicy
from vmbackup.settings import AirflowSettings


def tutorial_dag_id(policy: BackupPolicy) -> str:
    return f"tutorial__{policy.namespace}__{policy.name}"


DAG_FILE_TEXT = '''"""Airflow DAG: the Composer tutorial's backup flow (benchmark baseline); the policy is the JSON file beside it."""

from pathlib import Path

from bench.tutorial_dag import build_tutorial_dag

dag = build_tutorial_dag(Path(__file__).with_suffix(".json").read_text())
'''


def write_tutorial_dag(folder: Path, policy: BackupPolicy) -> str:
    """Write the baseline DAG (fixed code plus the policy as a JSON data file); returns its dag_id."""
    dag_id = tutorial_dag_id(policy)
    (folder / f"{dag_id}.json").write_text(policy.to_json())
    (folder / f"{dag_id}.py").write_text(DAG_FILE_TEXT)
    return dag_id


def build_tutorial_dag(policy_json: str) -> Any:
    """resolve -> per VM: stop -> wait -> snapshot -> wait until READY -> start -> wait (sensors in poke mode)."""
    import pendulum

    from vmbackup.airflow_compat import DAG, task, task_group
    from vmbackup.backup.operators import ResolveInstancesOperator
    from vmbackup.backup.resolution import NO_TIER

    policy = BackupPolicy.from_json(policy_json)
    dag = DAG(
        dag_id=tutorial_dag_id(policy),
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["vmbackup-bench", "baseline"],
        default_args={"owner": "vmbackup-bench", "retries": 0},
    )
    with dag:
        resolve = ResolveInstancesOperator(task_id="resolve_instances", policy_json=policy_json)

        @task(task_id="targets")
        def pick_targets(resolution: Any) -> list[Any]:
            return list(((resolution or {}).get("groups") or {}).get(NO_TIER) or [])

        @task_group(group_id="backup")
        def backup(target: Any) -> None:
            tutorial_chain(target, policy, policy_json)

        backup.expand(target=pick_targets(resolve.output))
    return dag


def tutorial_chain(target: Any, policy: BackupPolicy, policy_json: str) -> None:
    """One VM's chain, in the task group being built: each step waits for the one before, each wait holds a slot."""
    from vmbackup.backup.operators import (
        InstanceStartedSensor,
        SnapshotDiskOperator,
        StartInstanceOperator,
        StopInstanceOperator,
    )
    from vmbackup.compute.sensors import READY, OperationStatusSensor, SnapshotStatusSensor

    timeouts = policy.spec.timeouts
    poke = AirflowSettings.from_env().poke_interval_seconds
    lock_ttl = timeouts.stop_seconds + timeouts.upload_seconds + timeouts.start_seconds + 600
    stop = StopInstanceOperator(task_id="stop", target=target, policy_json=policy_json, lock_ttl_seconds=lock_ttl)
    wait_stopped = OperationStatusSensor(
        task_id="wait_stopped", operation=stop.output, timeout=timeouts.stop_seconds, poke_interval=poke, mode="poke"
    )
    snapshot = SnapshotDiskOperator(task_id="snapshot", target=target, stop_result=stop.output, policy_json=policy_json)
    wait_snapshot = SnapshotStatusSensor(
        task_id="wait_snapshot_ready",
        snapshots=snapshot.output,
        project=policy.spec.project,
        until=READY,
        timeout=timeouts.upload_seconds,
        poke_interval=poke,
        mode="poke",
    )
    start = StartInstanceOperator(task_id="start", target=target)
    wait_started = InstanceStartedSensor(
        task_id="wait_started",
        operation=start.output,
        target=target,
        timeout=timeouts.start_seconds,
        poke_interval=poke,
        mode="poke",
    )
    stop >> wait_stopped >> snapshot >> wait_snapshot >> start >> wait_started
