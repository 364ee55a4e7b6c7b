"""Schedules and windows Compute Engine or the owner could not keep are refused at validation, naming the field.

Compute Engine snapshots a disk at most once every 10 minutes, 6 times an hour ("About disk snapshots"), so
slots closer than that would stop VMs only to fail. A refused policy gets Ready=False (InvalidSpec) and a
Warning Event naming spec.schedule, from the real controller on kmock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, time
from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.app import build_controller
from controller.conditions import find_condition
from controller.handlers import build_registry
from tests.fixtures.kube import (
    events_for,
    eventually,
    offline_config,
    policy_object,
    policy_url,
    running_operator,
    stored,
)
from vmbackup.model.policy import STOP_MODE_STARTING_DEADLINE_SECONDS, PolicyError, parse_policy
from vmbackup.model.slots import CronSlots, Window

BASE: dict[str, Any] = {"project": "shop-prod-1", "instances": [{"name": "web-1", "zone": "us-central1-a"}]}


def problems(**spec: Any) -> dict[str, str]:
    with pytest.raises(PolicyError) as refused:
        parse_policy("shop", "web", {**BASE, **spec})
    return dict(refused.value.problems)


@pytest.mark.parametrize("schedule", ["* * * * *", "*/5 * * * *", "0,5 2 * * *", "0-9 3 * * *"])
def test_slots_closer_than_the_snapshot_rate_are_refused_on_spec_schedule(schedule: str) -> None:
    found = problems(schedule=schedule)

    assert "spec.schedule" in found
    assert "at most once every 10 minutes" in found["spec.schedule"]


@pytest.mark.parametrize("schedule", ["*/10 * * * *", "0 * * * *", "@hourly", "0 2 * * *", "0 0 * * sun"])
def test_slots_ten_minutes_apart_or_more_are_accepted(schedule: str) -> None:
    parse_policy("shop", "web", {**BASE, "schedule": schedule})


def test_the_gap_across_midnight_counts() -> None:
    assert problems(schedule="0,55 0,23 * * *")["spec.schedule"].startswith("slots of '0,55 0,23 * * *' come 5 minute")


@pytest.mark.parametrize("seconds", [-1, 0, 59, 86401])
def test_a_starting_deadline_out_of_range_is_refused_naming_the_field(seconds: int) -> None:
    assert "spec.startingDeadlineSeconds" in problems(startingDeadlineSeconds=seconds)


def test_stop_mode_gets_the_default_deadline_and_other_modes_none() -> None:
    stop = parse_policy("shop", "web", {**BASE, "consistency": "stop"})
    crash = parse_policy("shop", "web", {**BASE, "consistency": "none"})
    explicit = parse_policy("shop", "web", {**BASE, "consistency": "none", "startingDeadlineSeconds": 300})

    assert stop.spec.effective_starting_deadline == STOP_MODE_STARTING_DEADLINE_SECONDS
    assert crash.spec.effective_starting_deadline is None
    assert explicit.spec.effective_starting_deadline == 300


@pytest.mark.parametrize("start", ["2:00", "24:00", "02:60", "0200", "02:00:00", "two"])
def test_a_malformed_window_start_is_refused_naming_the_field(start: str) -> None:
    found = problems(schedule="0 2 * * *", maintenanceWindow={"start": start, "durationMinutes": 60})

    assert "HH:MM" in found["spec.maintenanceWindow.start"]


def test_a_window_longer_than_the_schedule_interval_is_refused() -> None:
    found = problems(schedule="0 * * * *", maintenanceWindow={"start": "00:00", "durationMinutes": 90})

    assert "durationMinutes 90 is longer than the 60 minutes between slots" in found["spec.maintenanceWindow"]


def test_a_window_that_holds_no_slot_is_refused() -> None:
    found = problems(schedule="0 2 * * *", maintenanceWindow={"start": "03:00", "durationMinutes": 60})

    assert "no slot of '0 2 * * *' falls in 03:00 for 60 min" in found["spec.maintenanceWindow"]


def test_a_window_holds_its_start_and_not_its_end_and_may_cross_midnight() -> None:
    window = Window(time(23, 30), 60)

    assert window.contains(datetime(2026, 1, 1, 23, 30))
    assert window.contains(datetime(2026, 1, 2, 0, 29, 59))
    assert not window.contains(datetime(2026, 1, 2, 0, 30))
    assert not window.contains(datetime(2026, 1, 1, 23, 29, 59))
    assert window.holds_a_slot_of(CronSlots.parse("15 0 * * *"))


# --- the controller refuses it with a condition and a Warning Event ------------------------------------------


@pytest.fixture
def operator(
    kube: kmock.KubernetesEmulator, gcs_bucket: storage.Bucket, gcs_client: storage.Client, kubeconfig: Any
) -> Callable[[], AbstractAsyncContextManager[None]]:
    config = offline_config(gcs_bucket.name, {"namespaces": {"shop": {"projects": ["shop-prod-1"]}}})

    @asynccontextmanager
    async def start() -> AsyncIterator[None]:
        async with running_operator(build_registry(build_controller(config, storage_client=gcs_client))):
            yield

    return start


async def test_the_controller_refuses_a_too_frequent_schedule_with_a_condition_and_an_event(
    kube: kmock.KubernetesEmulator,
    operator: Callable[[], AbstractAsyncContextManager[None]],
    gcs_bucket: storage.Bucket,
) -> None:
    async with operator():
        body = policy_object("shop", "web", {**BASE, "schedule": "* * * * *"})
        async with kube.post(policy_url("shop"), json=body) as response:
            assert response.status in (200, 201)

        ready = await eventually(
            lambda: find_condition((stored(kube, "shop", "web").get("status") or {}).get("conditions"), "Ready")
        )
        event = await eventually(lambda: [e for e in events_for(kube, "web") if e.get("type") == "Warning"])

    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.schedule" in ready["message"]
    assert "10 minutes" in ready["message"]
    assert "spec.schedule" in event[0]["message"]
    assert gcs_bucket.get_blob("dags/vmbackup__shop__web.py") is None  # nothing uploaded
