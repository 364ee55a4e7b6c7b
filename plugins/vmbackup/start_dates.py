"""When a policy's DAGs (backup and drill) start: below both workflows, so neither imports the other's internals."""

from __future__ import annotations

from typing import Any

from vmbackup.model.policy import BackupPolicy


def first_start(policy: BackupPolicy) -> Any:
    """The DAG's start_date: the policy's creation time, so its first run is the next scheduled one.

    With catchup off, Airflow (2.10 and 3.x) runs the latest past interval as soon as a DAG with an old
    start_date is unpaused: a new 02:00 policy applied at 14:00 would stop its VMs right away.
    """
    import pendulum

    if policy.created is None:
        return pendulum.datetime(2024, 1, 1, tz=policy.spec.timezone)
    return pendulum.instance(policy.created).in_timezone(policy.spec.timezone).replace(second=0, microsecond=0)
