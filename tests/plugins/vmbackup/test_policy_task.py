"""A task built with the policy's JSON parses it once, on both Airflow lines."""

from __future__ import annotations

import pytest

from vmbackup.model.policy import parse_policy

pytestmark = pytest.mark.airflow

POLICY_JSON = parse_policy(
    "team-a", "nightly", {"project": "demo-project", "instances": [{"name": "db-1", "zone": "us-central1-c"}]}
).to_json()


def test_an_operator_parses_its_policy_once() -> None:
    from vmbackup.backup.prune import PruneSnapshotsOperator

    step = PruneSnapshotsOperator(task_id="prune", policy_json=POLICY_JSON)
    assert step.policy is step.policy
    assert step.policy.name == "nightly"


def test_the_stop_step_reads_its_timeouts_from_the_parse_it_keeps() -> None:
    from vmbackup.backup.operators import StopInstanceOperator

    step = StopInstanceOperator(task_id="stop", target={}, policy_json=POLICY_JSON, lock_ttl_seconds=60)
    assert step.timeout == step.policy.spec.timeouts.lock_wait_seconds + 3600
    assert step.__dict__["policy"] is step.policy
