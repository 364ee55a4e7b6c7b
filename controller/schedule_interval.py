"""How long a policy's schedule can leave between two slots, for the alert on a missing backup.

The alert compares the age of the last success with a multiple of this interval, so one rule serves
hourly, nightly, weekday-only and monthly schedules alike. The longest gap is the one that matters: a
weekday schedule ("0 2 * * 1-5") leaves three days over a weekend, and an alert after two days would fire
every Sunday. Computed in the schedule's own clock, ignoring daylight-saving shifts (one hour at most).
Day matching follows cron (and croniter, which Airflow uses): when both day-of-month and day-of-week are
restricted, a day matching either one runs.
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

from vmbackup.model.policy import _CRON_FIELD_RANGES, _CRON_NAMES

MINUTES_PER_DAY = 24 * 60
PRESET_SECONDS = {
    "@hourly": 3600.0,
    "@daily": 86400.0,
    "@weekly": 7 * 86400.0,
    "@monthly": 31 * 86400.0,
    "@yearly": 366 * 86400.0,
}
# Eight years from a leap year: long enough to see the gap of every schedule, Feb 29 included.
_SCAN_START = date(2024, 1, 1)
_SCAN_DAYS = 8 * 365 + 2


def schedule_interval_seconds(schedule: str) -> float:
    """The longest gap between consecutive slots of a valid schedule (a preset or a 5-field cron expression)."""
    if schedule in PRESET_SECONDS:
        return PRESET_SECONDS[schedule]
    fields = schedule.split()
    minutes, hours, days, months, weekdays = (
        _expand(text, *_CRON_FIELD_RANGES[index], _CRON_NAMES.get(index, {})) for index, text in enumerate(fields)
    )
    weekdays = {0 if day == 7 else day for day in weekdays}
    times = sorted(h * 60 + m for h in hours for m in minutes)
    day_any, weekday_any = fields[2].startswith("*"), fields[4].startswith("*")
    run_days = [
        day.toordinal()
        for day in (_SCAN_START + timedelta(days=offset) for offset in range(_SCAN_DAYS))
        if day.month in months and _day_matches(day, days, weekdays, day_any, weekday_any)
    ]
    gaps = [later - earlier for earlier, later in pairwise(times)]
    gaps += [(later - earlier) * MINUTES_PER_DAY - times[-1] + times[0] for earlier, later in pairwise(run_days)]
    return float(max(gaps)) * 60 if gaps else PRESET_SECONDS["@yearly"]


def _day_matches(day: date, days: set[int], weekdays: set[int], day_any: bool, weekday_any: bool) -> bool:
    in_month, in_week = day.day in days, (day.isoweekday() % 7) in weekdays
    if day_any or weekday_any:
        return in_month and in_week
    return in_month or in_week


def _expand(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        else:
            bounds = [int(b) if b.isdigit() else names[b.lower()] for b in base.split("-")]
            start = bounds[0]
            # "a-b", or "a/n" (from a on, every n), or "a" alone.
            end = bounds[1] if len(bounds) > 1 else (high if step_text else start)
        values.update(range(start, end + 1, step))
    return values
