"""How long a policy's schedule can leave between two slots, for the alert on a missing backup.

The alert compares the age of the last success with a multiple of this interval, so one rule serves
hourly, nightly, weekday-only and monthly schedules alike. The longest gap is the one that matters: a
weekday schedule ("0 2 * * 1-5") leaves three days over a weekend, and an alert after two days would fire
every Sunday. Computed in the schedule's own clock, ignoring daylight-saving shifts (one hour at most).
Day matching follows cron (and croniter, which Airflow uses): when both day-of-month and day-of-week are
restricted, a day matching either one runs.
"""

from __future__ import annotations

from vmbackup.model.policy import cron_of
from vmbackup.model.slots import CronSlots


def schedule_interval_seconds(schedule: str) -> float:
    """The longest gap between consecutive slots of a valid schedule (a preset or a 5-field cron expression)."""
    return CronSlots.parse(cron_of(schedule)).longest_gap().total_seconds()
