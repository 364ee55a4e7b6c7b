"""Cron expressions and presets as a policy's schedule may spell them: the check the model and the DAGs share.

Pure Python, no croniter (the controller image carries no Airflow); slots.py says when the slots fall.
"""

from __future__ import annotations

from vmbackup.model.slots import CRON_FIELD_RANGES, CRON_NAMES

# The schedule presets a policy may use, and the cron expression each stands for (Airflow's own meanings).
SCHEDULE_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}


def cron_of(schedule: str) -> str:
    """The 5-field cron expression of a validated schedule (presets expanded)."""
    return SCHEDULE_PRESETS.get(schedule, schedule)


def cron_problem(schedule: str) -> str | None:
    """Why a schedule is not a usable cron expression, or None when it is."""
    if schedule in SCHEDULE_PRESETS:
        return None
    if schedule.startswith("@"):
        return f"unknown preset {schedule!r}; use one of {', '.join(SCHEDULE_PRESETS)} or a 5-field cron expression"
    fields = schedule.split()
    if len(fields) != 5:
        return f"{schedule!r} must have 5 fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *'"
    for index, (text, (low, high)) in enumerate(zip(fields, CRON_FIELD_RANGES, strict=True)):
        for part in text.split(","):
            if not _cron_part_ok(part, low, high, CRON_NAMES.get(index, {})):
                names = ("minute", "hour", "day-of-month", "month", "day-of-week")
                return f"{names[index]} field {text!r} is not valid (allowed {low}-{high}, '*', ranges, steps, lists)"
    return None


def _cron_part_ok(part: str, low: int, high: int, names: dict[str, int]) -> bool:
    base, _, step = part.partition("/")
    if step and not (step.isdigit() and 1 <= int(step) <= high):
        return False
    if base == "*":
        return True
    bounds = base.split("-")
    if len(bounds) > 2 or not all(bounds):
        return False
    values = []
    for bound in bounds:
        if bound.isdigit():
            values.append(int(bound))
        elif bound.lower() in names:
            values.append(names[bound.lower()])
        else:
            return False
    return all(low <= v <= high for v in values) and values == sorted(values)


def checked_schedule(schedule: str) -> str:
    """The schedule, or a ValueError (pydantic reports it under the field) saying why it is not cron."""
    problem = cron_problem(schedule)
    if problem:
        raise ValueError(problem)
    return schedule
