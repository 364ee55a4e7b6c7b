"""spec.retention: which rules keep a policy's snapshots, and the checks that name the field and the fix.

The rules (docs/retention.md has the worked example): ``count`` (the newest N per disk), ``maxAgeDays`` (younger than
N days), the GFS rungs ``hourly``/``daily``/``weekly``/``monthly``/``yearly`` (the newest snapshot of each of the
newest N calendar periods, in the policy's time zone) and ``keepLastSuccessful`` (the newest N complete runs of each
VM, whatever their age). A snapshot is kept when any rule keeps it. The selection itself is model/retention.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, field_validator, model_validator

from vmbackup.model.crd_base import CrdModel

DEFAULT_COUNT = 7  # a policy without spec.retention keeps the newest 7 per disk
DEFAULT_KEEP_LAST_SUCCESSFUL = 1  # the newest complete run of each VM always stays
MAX_KEEP_LAST_SUCCESSFUL = 100


@dataclass(frozen=True)
class Rung:
    """One GFS rung: its field, the calendar period it buckets by, and the most periods it may keep."""

    field: str  # the CRD's name (camelCase) and the model's (they coincide for rungs)
    period: str  # "hour", "day", ... for messages and docs
    longest: timedelta  # the longest such period can last (a DST day is 25 hours): schedule check
    most: int  # about ten years of periods (the limit of maxAgeDays)
    bucket: Callable[[datetime], tuple[Any, ...]]  # a local (aware) time -> the period it falls in
    shown: str  # strftime format of a period, for the preview


def _hour(t: datetime) -> tuple[Any, ...]:
    # The UTC offset is part of the hour: the hour repeated when DST ends (02:00-03:00 twice in Europe/Berlin) is
    # two hours that both happened, so two periods.
    return (t.year, t.month, t.day, t.hour, t.utcoffset())


def _iso_week(t: datetime) -> tuple[Any, ...]:
    year, week, _ = t.isocalendar()
    return (year, week)


RUNGS: tuple[Rung, ...] = (
    Rung("hourly", "hour", timedelta(hours=1), 87600, _hour, "%Y-%m-%d %H:00%z"),
    Rung("daily", "day", timedelta(hours=25), 3650, lambda t: (t.year, t.month, t.day), "%Y-%m-%d"),
    Rung("weekly", "ISO week", timedelta(days=7, hours=1), 520, _iso_week, "%G-W%V"),
    Rung("monthly", "month", timedelta(days=31, hours=1), 120, lambda t: (t.year, t.month), "%Y-%m"),
    Rung("yearly", "year", timedelta(days=366, hours=1), 100, lambda t: (t.year,), "%Y"),
)
RUNG_NAMES = tuple(r.field for r in RUNGS)
RULE_FIELDS = ("count", "maxAgeDays", *RUNG_NAMES)  # the rules that say what to keep (keepLastSuccessful guards)
FIELDS = (*RULE_FIELDS, "keepLastSuccessful")


def _rung_field(rung: Rung) -> Any:
    return Field(
        default=None,
        ge=1,
        le=rung.most,
        description=f"GFS: keep the newest snapshot of each of the newest N {rung.period}s (calendar "
        f"{rung.period}s in spec.timezone) that hold a READY snapshot of the disk; at most {rung.most}.",
    )


class Retention(CrdModel):
    """Which of this policy's snapshots to keep, per disk; a snapshot any rule keeps stays. The newest READY snapshot
    of a disk and the newest keepLastSuccessful complete runs of a VM always stay."""

    count: int | None = Field(default=None, ge=1, le=1000, description="Keep at least the newest N snapshots per disk.")
    max_age_days: int | None = Field(
        default=None, ge=1, le=3650, description="Keep snapshots younger than this many days."
    )
    hourly: int | None = _rung_field(RUNGS[0])
    daily: int | None = _rung_field(RUNGS[1])
    weekly: int | None = _rung_field(RUNGS[2])
    monthly: int | None = _rung_field(RUNGS[3])
    yearly: int | None = _rung_field(RUNGS[4])
    keep_last_successful: int | None = Field(
        default=None,
        ge=1,
        le=MAX_KEEP_LAST_SUCCESSFUL,
        description="Never delete a snapshot of the newest N complete runs of each VM (every snapshot of the run "
        f"READY, every disk there), whatever their age, so failing runs cannot expire the last good backup. "
        f"Default {DEFAULT_KEEP_LAST_SUCCESSFUL}; at least 1.",
    )

    @model_validator(mode="before")
    @classmethod
    def _known_rules(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(k for k in data if k not in FIELDS and k not in cls.model_fields)
            if unknown:
                raise ValueError(
                    f"unknown retention rule {', '.join(repr(k) for k in unknown)}: use {', '.join(FIELDS)}"
                )
        return data

    @field_validator(*RUNG_NAMES, "count", "max_age_days", "keep_last_successful", mode="before")
    @classmethod
    def _at_least_one_period(cls, value: Any, info: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            name = _camel(info.field_name)
            raise ValueError(
                f"{name}: {value} would keep nothing by this rule; set {name} to 1 or more, or remove {name}"
            )
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> Retention:
        if all(getattr(self, _snake(f)) is None for f in RULE_FIELDS):
            raise ValueError(f"set at least one of {', '.join(RULE_FIELDS)} (e.g. count: 7, or daily: 7)")
        return self

    @property
    def last_successful(self) -> int:
        return self.keep_last_successful or DEFAULT_KEEP_LAST_SUCCESSFUL

    def rungs(self) -> list[tuple[Rung, int]]:
        """The GFS rungs this retention sets, finest first, with their counts."""
        return [(r, n) for r in RUNGS if (n := getattr(self, r.field)) is not None]

    def phrases(self) -> list[str]:
        """What each rule keeps, for people (vmbackupctl describe, the DAG's documentation)."""
        parts = []
        if self.count is not None:
            parts.append(f"the newest {self.count} per disk")
        if self.max_age_days is not None:
            parts.append(f"all younger than {self.max_age_days} days")
        parts += [f"the newest of each of the last {n} {r.period}s" for r, n in self.rungs()]
        return parts


def rung_schedule_problem(retention: Retention, schedule: str, shortest_gap: timedelta) -> str | None:
    """A rung finer than the schedule: `hourly: 24` on a daily schedule would keep 24 days, not 24 hours. Refused so
    that what the policy says is what it keeps; the fix names both ways out."""
    for rung, count in retention.rungs():
        if shortest_gap > rung.longest:
            return (
                f"{rung.field}: {count} keeps the newest snapshot of each {rung.period}, but schedule {schedule!r} "
                f"runs at most every {_human(shortest_gap)}, so it would keep {count} runs, not {count} "
                f"{rung.period}s; remove {rung.field} (use count for a number of runs) or schedule more often"
            )
    return None


def _human(gap: timedelta) -> str:
    hours = gap.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 24 else f"{hours:g} hours"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
