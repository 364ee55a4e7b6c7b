"""The timeline the workflow bench records: each VM's down interval, read from the simulator's operations."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.workflow import instance_down_intervals, instance_downtimes

ZONE = "us-central1-a"


def operation(kind: str, vm: str, inserted: str, start: str, end: str) -> dict[str, str]:
    return {
        "targetLink": f"https://compute.googleapis.com/compute/v1/projects/p/zones/{ZONE}/instances/{vm}",
        "operationType": kind,
        "insertTime": inserted,
        "startTime": start,
        "endTime": end,
    }


OPERATIONS = [
    operation("stop", "web-1", "2026-11-25T02:00:00Z", "2026-11-25T02:00:01Z", "2026-11-25T02:00:20Z"),
    operation("start", "web-1", "2026-11-25T02:00:40Z", "2026-11-25T02:00:41Z", "2026-11-25T02:00:51Z"),
    operation("stop", "web-2", "2026-11-25T02:00:05Z", "2026-11-25T02:00:06Z", "2026-11-25T02:00:25Z"),
    operation("start", "web-2", "2026-11-25T02:01:00Z", "2026-11-25T02:01:01Z", "2026-11-25T02:01:16Z"),
]


def at(second: int) -> datetime:
    return datetime(2026, 11, 25, 2, second // 60, second % 60, tzinfo=UTC)


def test_each_vm_is_down_from_its_stop_to_its_start_ending() -> None:
    assert instance_down_intervals(OPERATIONS, ZONE, ["web-1", "web-2"]) == [
        ("web-1", at(1), at(51)),
        ("web-2", at(6), at(76)),
    ]


def test_downtimes_are_the_interval_lengths() -> None:
    assert instance_downtimes(OPERATIONS, ZONE, ["web-1", "web-2"]) == [50.0, 70.0]
