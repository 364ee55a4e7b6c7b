"""Schedule slots: how close a cron schedule's slots come, and whether a run may still start for its slot.

Shared by the model's validation (a schedule Compute Engine would refuse, a window that cannot hold a slot) and
by the DAG's first task (a late run, or one outside the maintenance window, touches no VM). Pure Python, no
croniter: this module loads in the controller image, which carries no Airflow.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

# "You can snapshot your disks at most once every 10 minutes" and at most 6 times in 60 minutes per disk
# ("About disk snapshots", Snapshot frequency limits, https://cloud.google.com/compute/docs/disks/snapshots).
# Every run snapshots each of its disks once, so slots must be at least this far apart (which also keeps a
# disk within 6 snapshots in any hour).
MIN_SNAPSHOT_INTERVAL = timedelta(minutes=10)
CRON_FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
CRON_NAMES = {
    3: {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    4: {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}
_DAY = 24 * 60
_YEARS_SCANNED = 8  # two leap cycles: enough to meet every day-of-month / weekday / month combination

MissReason = Literal["Late", "OutsideWindow", "AlreadyBackedUp"]


@dataclass(frozen=True)
class CronSlots:
    """A 5-field cron expression (Airflow's CronTriggerTimetable reading: day-of-month OR day-of-week)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month is '*'
    any_weekday: bool  # day-of-week is '*'

    @classmethod
    def parse(cls, cron: str) -> CronSlots:
        """A validated 5-field expression (presets expanded by the model's cron_of)."""
        fields = cron.split()
        sets = [_expand(text, *CRON_FIELD_RANGES[i], CRON_NAMES.get(i, {})) for i, text in enumerate(fields)]
        weekdays = frozenset(d % 7 for d in sets[4])
        minutes, hours, days, months = (frozenset(values) for values in sets[:4])
        return cls(minutes, hours, days, months, weekdays, fields[2].startswith("*"), fields[4].startswith("*"))

    def times_of_day(self) -> list[int]:
        """Minutes after midnight at which a firing day has slots, ascending."""
        return sorted(h * 60 + m for h in self.hours for m in self.minutes)

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        weekday = (day.weekday() + 1) % 7
        in_month, in_week = day.day in self.days, weekday in self.weekdays
        if self.any_day or self.any_weekday:  # cron: restricted fields AND, both restricted OR
            return in_month and in_week
        return in_month or in_week

    def shortest_gap(self) -> timedelta:
        """The closest two consecutive slots come (wall clock)."""
        times = self.times_of_day()
        gaps = [b - a for a, b in itertools.pairwise(times)]
        if self._consecutive_firing_days():
            gaps.append(_DAY - times[-1] + times[0])
        elif not gaps:  # one slot a day, never on two days in a row
            gaps.append(_DAY)
        return timedelta(minutes=min(gaps))

    def longest_gap(self) -> timedelta:
        """The longest two consecutive slots leave between them (wall clock; a year when it never fires twice)."""
        times = self.times_of_day()
        firing = [day.toordinal() for day in _scanned_days() if self.fires_on(day)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        gaps += [(later - earlier) * _DAY - times[-1] + times[0] for earlier, later in itertools.pairwise(firing)]
        return timedelta(minutes=max(gaps)) if gaps else timedelta(days=366)

    def closest_slots(self) -> timedelta:
        """The closest two consecutive slots ever come, across days too (a weekly schedule's is 7 days; wall clock;
        a year when it never fires twice): how fine a retention period the schedule can fill."""
        times = self.times_of_day()
        firing = [day.toordinal() for day in _scanned_days() if self.fires_on(day)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        gaps += [(later - earlier) * _DAY - times[-1] + times[0] for earlier, later in itertools.pairwise(firing)]
        return timedelta(minutes=min(gaps)) if gaps else timedelta(days=366)

    def next_after(self, wall: datetime) -> datetime | None:
        """The first slot after the wall-clock time `wall` (naive, minutes), or None when none comes in the years
        scanned."""
        minute = wall.hour * 60 + wall.minute
        day = wall.date()
        times = self.times_of_day()
        for _ in range(366 * _YEARS_SCANNED):
            if self.fires_on(day):
                later = [t for t in times if t > minute]
                if later:
                    return datetime.combine(day, time(later[0] // 60, later[0] % 60))
            day, minute = day + timedelta(days=1), -1
        return None

    def _consecutive_firing_days(self) -> bool:
        day = date(2024, 1, 1)
        previous = False
        for _ in range(366 * _YEARS_SCANNED):
            fires = self.fires_on(day)
            if fires and previous:
                return True
            previous, day = fires, day + timedelta(days=1)
        return False


def _scanned_days() -> list[date]:
    first = date(2024, 1, 1)
    return [first + timedelta(days=offset) for offset in range(366 * _YEARS_SCANNED)]


def _expand(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        else:
            bounds = [int(b) if b.isdigit() else names[b.lower()] for b in base.split("-")]
            first = bounds[0]
            last = bounds[-1] if len(bounds) > 1 else (high if step_text else first)  # "5/15": 5, 20, 35, 50
        values.update(range(first, last + 1, step))
    return values


def schedule_rate_problem(schedule: str, cron: str) -> str | None:
    """Why Compute Engine would refuse this schedule's snapshots (cron: its 5-field form), or None."""
    gap = CronSlots.parse(cron).shortest_gap()
    if gap >= MIN_SNAPSHOT_INTERVAL:
        return None
    minutes = int(gap.total_seconds() // 60)
    return (
        f"slots of {schedule!r} come {minutes} minute(s) apart, but Compute Engine snapshots a disk at most once "
        f"every 10 minutes (6 per hour; 'About disk snapshots'); space the slots at least 10 minutes apart, "
        f"e.g. '*/10 * * * *' or '0 * * * *'"
    )


@dataclass(frozen=True)
class Window:
    """A daily maintenance window in the policy's time zone: [start, start + length)."""

    start: time
    minutes: int

    def contains(self, local: datetime) -> bool:
        at = local.hour * 60 + local.minute + local.second / 60
        begin = self.start.hour * 60 + self.start.minute
        return (at - begin) % _DAY < self.minutes

    def holds_a_slot_of(self, slots: CronSlots) -> bool:
        begin = self.start.hour * 60 + self.start.minute
        return any((t - begin) % _DAY < self.minutes for t in slots.times_of_day())

    def __str__(self) -> str:
        return f"{self.start:%H:%M} for {self.minutes} min"


def parse_clock(text: str) -> time | None:
    """'HH:MM' (24 h) or None when malformed."""
    hours, sep, minutes = text.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        return None
    if int(hours) > 23 or int(minutes) > 59:
        return None
    return time(int(hours), int(minutes))
