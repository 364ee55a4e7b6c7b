"""spec.rpo: a duration in h, m and s; bad input is refused naming spec.rpo and the form to write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from vmbackup.model.policy import PolicyError, parse_policy
from vmbackup.model.rpo import parse_duration

BASE: dict[str, Any] = {
    "project": "demo-project",
    "instances": [{"name": "web-1", "zone": "us-central1-a"}],
    "schedule": "0 2 * * *",
}


def problems(rpo: Any, **spec: Any) -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as refused:
        parse_policy("shop", "web", {**BASE, **spec, "rpo": rpo})
    return refused.value.problems


@pytest.mark.parametrize(("text", "expected"), [("26h", 26 * 3600), ("90m", 5400), ("1h30m15s", 5415)])
def test_a_duration_in_hours_minutes_and_seconds_is_read(text: str, expected: int) -> None:
    assert parse_duration(text) == timedelta(seconds=expected)
    assert parse_policy("shop", "web", {**BASE, "schedule": "@hourly", "rpo": text}).spec.rpo == text


@pytest.mark.parametrize("rpo", ["abc", "-1h", "1d", "1.5h"])
def test_what_is_not_a_duration_is_refused_naming_the_field_and_the_form(rpo: str) -> None:
    [(field, message)] = problems(rpo)
    assert field == "spec.rpo"
    assert "such as 24h, 90m or 1h30m" in message


def test_zero_is_refused_with_the_minimum() -> None:
    [(field, message)] = problems("0s")
    assert (field, "at least 1m" in message) == ("spec.rpo", True)


def test_an_objective_no_longer_than_the_schedules_gap_is_refused_with_the_fix() -> None:
    [(field, message)] = problems("24h")
    assert field == "spec.rpo"
    assert "not longer than the 24h between slots of '0 2 * * *'" in message
    assert "set rpo above 24h (e.g. 36h) or schedule runs more often" in message


def test_the_weekend_gap_of_a_weekday_schedule_counts() -> None:
    [(field, message)] = problems("48h", schedule="0 2 * * 1-5")
    assert field == "spec.rpo"
    assert "72h" in message


def test_a_number_is_not_a_duration() -> None:
    [(field, _)] = problems(26)
    assert field == "spec.rpo"
