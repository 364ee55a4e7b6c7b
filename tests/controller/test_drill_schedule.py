"""When a drill is due (controller/drill_schedule.py): the newest slot that has come, in the policy's time zone,
newer than the policy and than the last drill the controller started; many missed slots give one drill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.drill_schedule import drill_conf, due_drill_slot, latest, next_drill_slot
from vmbackup.model.drill import SHARED_DRILL_DAG_ID, scheduled_drill_run_id
from vmbackup.model.run_signature import verify_run_conf

SUNDAYS_AT_4 = "0 4 * * 0"
NOW = datetime(2026, 12, 9, 12, 30, tzinfo=UTC)  # a Wednesday
LAST_SUNDAY_4_UTC = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
CREATED_LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_newest_past_slot_is_due() -> None:
    assert due_drill_slot(SUNDAYS_AT_4, "UTC", NOW, CREATED_LONG_AGO) == LAST_SUNDAY_4_UTC


def test_many_missed_slots_give_one_drill_for_the_newest() -> None:
    assert due_drill_slot("0 * * * *", "UTC", NOW, CREATED_LONG_AGO) == datetime(2026, 12, 9, 12, 0, tzinfo=UTC)


def test_a_slot_is_due_exactly_at_its_time() -> None:
    assert due_drill_slot(SUNDAYS_AT_4, "UTC", LAST_SUNDAY_4_UTC, CREATED_LONG_AGO) == LAST_SUNDAY_4_UTC
    assert due_drill_slot(SUNDAYS_AT_4, "UTC", LAST_SUNDAY_4_UTC - timedelta(seconds=1), LAST_SUNDAY_4_UTC) is None


def test_nothing_is_due_before_the_first_slot_after_the_policy_was_created() -> None:
    created = LAST_SUNDAY_4_UTC + timedelta(minutes=1)

    assert due_drill_slot(SUNDAYS_AT_4, "UTC", NOW, created) is None
    assert due_drill_slot(SUNDAYS_AT_4, "UTC", datetime(2026, 12, 13, 4, 0, 30, tzinfo=UTC), created) == datetime(
        2026, 12, 13, 4, 0, tzinfo=UTC
    )


def test_a_slot_the_controller_started_a_drill_for_is_not_due_again() -> None:
    assert due_drill_slot(SUNDAYS_AT_4, "UTC", NOW, LAST_SUNDAY_4_UTC) is None


def test_a_request_after_the_slot_counts_as_its_drill() -> None:
    requested = LAST_SUNDAY_4_UTC + timedelta(hours=2)

    assert due_drill_slot(SUNDAYS_AT_4, "UTC", NOW, latest(CREATED_LONG_AGO, requested)) is None


@pytest.mark.parametrize(
    ("zone", "expected"),
    [  # 04:00 local on Sunday 6 December
        ("Europe/Berlin", datetime(2026, 12, 6, 3, 0, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 12, 6, 9, 0, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2026, 12, 5, 22, 30, tzinfo=UTC)),
    ],
)
def test_slots_fall_in_the_policys_time_zone(zone: str, expected: datetime) -> None:
    assert due_drill_slot(SUNDAYS_AT_4, zone, NOW, CREATED_LONG_AGO) == expected


def test_the_local_day_decides_which_weekday_fires() -> None:
    # Monday 00:30 in Tokyo is Sunday 15:30 UTC: a Monday-only schedule is due then, not on the UTC Monday.
    now = datetime(2026, 12, 6, 15, 45, tzinfo=UTC)

    assert due_drill_slot("30 0 * * 1", "Asia/Tokyo", now, CREATED_LONG_AGO) == datetime(
        2026, 12, 6, 15, 30, tzinfo=UTC
    )


def test_slots_follow_daylight_saving_time() -> None:
    summer_now = datetime(2026, 7, 8, 12, 0, tzinfo=UTC)

    assert due_drill_slot(SUNDAYS_AT_4, "Europe/Berlin", summer_now, CREATED_LONG_AGO) == datetime(
        2026, 7, 5, 2, 0, tzinfo=UTC
    )


def test_the_next_slot_is_in_the_future_in_the_policys_zone() -> None:
    assert next_drill_slot(SUNDAYS_AT_4, "UTC", NOW) == datetime(2026, 12, 13, 4, 0, tzinfo=UTC)
    assert next_drill_slot("@weekly", "Europe/Berlin", NOW) == datetime(2026, 12, 12, 23, 0, tzinfo=UTC)


def test_a_scheduled_run_id_is_the_same_for_the_same_slot_in_any_zone() -> None:
    berlin = LAST_SUNDAY_4_UTC.astimezone(datetime.now().astimezone().tzinfo)

    assert scheduled_drill_run_id("shop", "db", LAST_SUNDAY_4_UTC) == scheduled_drill_run_id("shop", "db", berlin)
    assert scheduled_drill_run_id("shop", "db", LAST_SUNDAY_4_UTC) == "vmdrill__shop__db__scheduled-20261206T040000Z"


def test_the_conf_is_the_policy_signed_for_the_shared_drill_dag_and_the_run() -> None:
    key = "s" * 64
    conf = drill_conf(key, "vmdrill__shop__db__scheduled-1", '{"policy":1}', NOW, 600)

    payload = verify_run_conf(
        key.encode(), conf, dag_id=SHARED_DRILL_DAG_ID, run_id="vmdrill__shop__db__scheduled-1", now=NOW.timestamp()
    )
    assert payload == '{"policy":1}'
    assert conf["expiresAt"] == int(NOW.timestamp()) + 600
