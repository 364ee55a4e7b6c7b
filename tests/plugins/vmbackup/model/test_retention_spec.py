"""spec.retention's checks: bad input is refused naming the field and the fix; existing policies read as before."""

from __future__ import annotations

import json

import pytest

from tests.plugins.vmbackup.model.test_policy import WORDPRESS, errors_of
from vmbackup.model.policy import parse_policy


def retention_errors(retention: dict, schedule: str = "0 2 * * *") -> dict[str, str]:
    return errors_of({**WORDPRESS, "schedule": schedule, "retention": retention})


@pytest.mark.parametrize("rung", ["hourly", "daily", "weekly", "monthly", "yearly", "count", "maxAgeDays"])
@pytest.mark.parametrize("value", [0, -3])
def test_a_rule_below_one_is_refused_naming_the_field_and_the_fix(rung: str, value: int) -> None:
    schedule = "@hourly" if rung == "hourly" else "0 2 * * *"
    message = retention_errors({rung: value}, schedule)[f"spec.retention.{rung}"]
    assert message == f"{rung}: {value} would keep nothing by this rule; set {rung} to 1 or more, or remove {rung}"


def test_keep_last_successful_zero_is_refused() -> None:
    message = retention_errors({"count": 7, "keepLastSuccessful": 0})["spec.retention.keepLastSuccessful"]
    assert "set keepLastSuccessful to 1 or more" in message


def test_an_unknown_rung_is_refused_with_the_known_ones() -> None:
    message = retention_errors({"biweekly": 2})["spec.retention"]
    assert message.startswith("unknown retention rule 'biweekly': use count, maxAgeDays, hourly, daily, weekly")


def test_retention_without_a_rule_names_them_all() -> None:
    message = retention_errors({"keepLastSuccessful": 2})["spec.retention"]
    assert (
        message
        == "set at least one of count, maxAgeDays, hourly, daily, weekly, monthly, yearly (e.g. count: 7, or daily: 7)"
    )


@pytest.mark.parametrize(
    ("rung", "schedule"),
    [
        ("hourly", "@daily"),
        ("hourly", "0 */2 * * *"),
        ("daily", "@weekly"),
        ("daily", "0 2 * * 1"),
        ("weekly", "@monthly"),
    ],
)
def test_a_rung_finer_than_the_schedule_is_refused(rung: str, schedule: str) -> None:
    message = retention_errors({rung: 24}, schedule)["spec.retention"]
    assert message.startswith(f"{rung}: 24 keeps the newest snapshot of each")
    assert f"remove {rung} (use count for a number of runs) or schedule more often" in message


@pytest.mark.parametrize(
    ("rung", "schedule"),
    [
        ("hourly", "0 8-18 * * *"),
        ("daily", "0 2 * * 1-5"),
        ("weekly", "@weekly"),
        ("monthly", "@monthly"),
        ("yearly", "@yearly"),
    ],
)
def test_a_rung_the_schedule_can_fill_is_accepted(rung: str, schedule: str) -> None:
    spec = parse_policy("default", "wordpress", {**WORDPRESS, "schedule": schedule, "retention": {rung: 3}}).spec
    assert spec.retention.rungs()[0][0].field == rung


def test_gfs_mixes_with_count_age_and_the_guard() -> None:
    retention = {"count": 3, "maxAgeDays": 30, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 12, "yearly": 3}
    policy = parse_policy("default", "wordpress", {**WORDPRESS, "schedule": "@hourly", "retention": retention})
    assert [r.field for r, _ in policy.spec.retention.rungs()] == ["hourly", "daily", "weekly", "monthly", "yearly"]
    assert policy.spec.retention.last_successful == 1


def test_an_existing_policy_reads_and_renders_as_before() -> None:
    """No new key in the policy's JSON (the DAG's content hash stays), the default keeps the newest 7."""
    policy = parse_policy("default", "wordpress", {k: v for k, v in WORDPRESS.items() if k != "retention"})
    assert json.loads(policy.to_json())["spec"]["retention"] == {"count": 7}
    assert json.loads(parse_policy("default", "wordpress", WORDPRESS).to_json())["spec"]["retention"] == {"count": 7}
