"""vmbackupctl shows the VMLeftStopped condition: a marker on RESULT in `get`, a column with -o wide, a row in describe."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.conditions import VM_LEFT_STOPPED
from controller.vmbackupctl.render import LEFT_STOPPED_MARKER, describe, policy_table

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
MESSAGE = "VM web-1 (shop-prod-1, us-central1-a) stopped by this product since 2026-12-07T05:00:00Z is TERMINATED"


def policy(left_stopped: str | None) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True", "reason": "DagLoaded", "message": "ok"}]
    if left_stopped is not None:
        conditions.append(
            {
                "type": VM_LEFT_STOPPED,
                "status": left_stopped,
                "reason": "WaitingToStart",
                "message": MESSAGE,
                "lastTransitionTime": "2026-12-07T05:10:00Z",
            }
        )
    return {
        "metadata": {"namespace": "shop", "name": "web", "creationTimestamp": "2026-12-04T06:00:00Z"},
        "spec": {"project": "shop-prod-1", "instances": [{"name": "web-1", "zone": "us-central1-a"}]},
        "status": {"result": "Succeeded", "conditions": conditions},
    }


def test_get_marks_the_result_while_a_vm_is_left_stopped() -> None:
    lines = policy_table([policy("True")], NOW, all_namespaces=False, wide=False).splitlines()

    assert f"Succeeded{LEFT_STOPPED_MARKER}" in lines[1]


def test_get_shows_no_marker_once_the_vm_runs() -> None:
    lines = policy_table([policy("False")], NOW, all_namespaces=False, wide=False).splitlines()

    assert LEFT_STOPPED_MARKER not in lines[1]


def test_get_wide_has_a_vm_left_stopped_column() -> None:
    header, row = policy_table([policy("True")], NOW, all_namespaces=False, wide=True).splitlines()

    start = header.index("VM LEFT STOPPED")
    assert row[start:].split()[0] == "True"


def test_describe_lists_the_condition_with_its_message() -> None:
    text = describe(policy("True"), NOW)

    (line,) = [line for line in text.splitlines() if VM_LEFT_STOPPED in line]
    assert "True" in line
    assert "WaitingToStart" in line
    assert "web-1" in line
