"""spec.snapshot.archiveRungs: the slot a GFS rung will keep is cut as ARCHIVE, predicted from the schedule."""

from datetime import UTC, datetime
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from tests.plugins.vmbackup.model.test_policy import WORDPRESS, errors_of
from vmbackup.model.archive_rungs import cut_type
from vmbackup.model.policy import PolicySpec, parse_policy
from vmbackup.model.retention_spec import RUNG_NAMES
from vmbackup.model.snapshot_settings import RungName

BERLIN = "Europe/Berlin"


def spec(schedule: str = "0 2 * * *", rungs: list[str] | None = None, **snapshot: Any) -> PolicySpec:
    retention = {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3}
    settings = {**snapshot, **({"archiveRungs": rungs} if rungs else {})}
    body = {**WORDPRESS, "schedule": schedule, "timezone": BERLIN, "retention": retention, "snapshot": settings}
    return parse_policy("default", "wordpress", body).spec


def berlin(text: str) -> datetime:
    """A slot given in Berlin wall time, as the run sees it (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(BERLIN)).astimezone(UTC)


def test_the_rung_names_are_retentions():
    assert get_args(RungName) == RUNG_NAMES


def test_the_last_daily_slot_of_a_month_is_cut_as_archive_for_the_monthly_rung():
    assert cut_type(spec(rungs=["monthly"]), berlin("2026-01-31T02:00")) == "ARCHIVE"


def test_any_other_slot_of_the_month_is_cut_as_the_policy_type():
    assert cut_type(spec(rungs=["monthly"]), berlin("2026-01-30T02:00")) is None
    assert cut_type(spec(rungs=["monthly"], type="STANDARD"), berlin("2026-02-01T02:00")) == "STANDARD"


def test_the_period_is_the_policys_time_zone_not_utc():
    """00:30 in Berlin on 1 February is 23:30 UTC on 31 January: a February slot, not January's last."""
    midnight = spec(schedule="30 0 * * *", rungs=["monthly"])
    assert cut_type(midnight, berlin("2026-02-01T00:30")) is None
    assert cut_type(midnight, berlin("2026-01-31T00:30")) == "ARCHIVE"


def test_on_a_weekday_schedule_the_last_weekday_of_the_month_is_the_monthly_one():
    weekdays = spec(schedule="0 2 * * 1-5", rungs=["monthly"])
    assert cut_type(weekdays, berlin("2026-01-30T02:00")) == "ARCHIVE"  # Friday; the 31st is a Saturday
    assert cut_type(weekdays, berlin("2026-01-29T02:00")) is None


def test_a_yearly_rung_alone_archives_only_the_last_slot_of_the_year():
    yearly = spec(rungs=["yearly"])
    assert cut_type(yearly, berlin("2026-12-31T02:00")) == "ARCHIVE"
    assert cut_type(yearly, berlin("2026-11-30T02:00")) is None


def test_a_run_asked_for_by_hand_has_no_slot_and_cuts_the_policy_type():
    assert cut_type(spec(rungs=["monthly"]), None) is None


def test_a_policy_wide_archive_type_archives_every_slot():
    assert cut_type(spec(type="ARCHIVE"), berlin("2026-01-15T02:00")) == "ARCHIVE"
    assert cut_type(spec(type="ARCHIVE"), None) == "ARCHIVE"


def test_an_archive_rung_retention_does_not_set_is_refused_naming_the_fix():
    body = {**WORDPRESS, "retention": {"daily": 7}, "snapshot": {"archiveRungs": ["monthly"]}}
    message = errors_of(body)["spec.snapshot"]
    assert message.startswith("archiveRungs names monthly, which spec.retention does not set")
    assert "set spec.retention.monthly or remove monthly from spec.snapshot.archiveRungs" in message


def test_archive_rungs_with_the_instant_method_are_refused_naming_the_fix():
    body = {
        **WORDPRESS,
        "retention": {"daily": 7, "monthly": 12},
        "snapshot": {"method": "instant", "archiveRungs": ["monthly"]},
    }
    message = errors_of(body)["spec.snapshot.archiveRungs"]
    assert "set spec.snapshot.method to standard, or remove spec.snapshot.archiveRungs" in message


@pytest.mark.parametrize("rungs", [["monthly", "monthly"], ["fortnightly"], []])
def test_repeated_unknown_or_no_rungs_are_refused(rungs):
    body = {**WORDPRESS, "retention": {"daily": 7, "monthly": 12}, "snapshot": {"archiveRungs": rungs}}
    assert any(field.startswith("spec.snapshot.archiveRungs") for field in errors_of(body))
