"""When a policy's restore drill is due, and what its run is given: pure functions, no I/O.

The controller starts drills itself (controller/drill_runs.py) as runs of the shared drill DAG: on each status
refresh it asks `due_drill_slot` for the newest slot of spec.verification.schedule (in spec.timezone) that has
come and is newer than both the policy and the last drill it started. Many missed slots give one drill (like
Airflow's catchup=False), and the run id is derived from the policy and the slot, so a second controller (or a
retry) triggering the same slot gets Airflow's 409, which means "already started".
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from vmbackup.model.drill import SHARED_DRILL_DAG_ID
from vmbackup.model.policy import cron_of
from vmbackup.model.run_signature import sign_run_conf
from vmbackup.model.slots import CronSlots

MAX_LOOKBACK = timedelta(days=366 * 8)  # a schedule that fired in none of these days has no slot to catch up


def due_drill_slot(schedule: str, timezone: str, now: datetime, after: datetime | None) -> datetime | None:
    """The newest slot at or before `now` that is strictly after `after` (UTC), or None when no slot is due.

    `after`: the later of the policy's creation and the slot (or request) of the last drill the controller
    started; None looks back as far as the schedule can (callers pass the creation time at least).
    """
    zone = ZoneInfo(timezone)
    slots = CronSlots.parse(cron_of(schedule))
    local = now.astimezone(zone)
    floor = (after or now - MAX_LOOKBACK).astimezone(zone).date()
    times = sorted(slots.times_of_day(), reverse=True)
    day, minute = local.date(), local.hour * 60 + local.minute
    while day >= max(floor, local.date() - MAX_LOOKBACK):
        if slots.fires_on(day):
            for at in (t for t in times if t <= minute):
                slot = datetime.combine(day, time(at // 60, at % 60), tzinfo=zone).astimezone(UTC)
                if slot > now:  # a wall time a daylight-saving shift moved past now
                    continue
                return slot if after is None or slot > after else None
        day, minute = day - timedelta(days=1), 24 * 60
    return None


def next_drill_slot(schedule: str, timezone: str, now: datetime) -> datetime | None:
    """The first slot after `now` (UTC), or None when the schedule never fires again."""
    zone = ZoneInfo(timezone)
    wall = CronSlots.parse(cron_of(schedule)).next_after(now.astimezone(zone).replace(tzinfo=None))
    return wall.replace(tzinfo=zone).astimezone(UTC) if wall is not None else None


def latest(*moments: datetime | None) -> datetime | None:
    """The latest of the known moments (None when none is known)."""
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def drill_conf(key: str, run_id: str, policy_json: str, now: datetime, ttl_seconds: float) -> dict[str, Any]:
    """The conf of one drill run: the validated policy, signed for the shared drill DAG and this run id."""
    expires_at = int(now.timestamp() + ttl_seconds)
    return sign_run_conf(
        key.encode(), dag_id=SHARED_DRILL_DAG_ID, run_id=run_id, payload=policy_json, expires_at=expires_at
    )
