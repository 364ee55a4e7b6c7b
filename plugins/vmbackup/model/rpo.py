"""spec.rpo, the recovery point objective: how old a VM's newest good backup may be before the policy is in breach.

Written as a Kubernetes duration in hours, minutes and seconds (``24h``, ``90m``, ``1h30m``), the form CEL's
``duration()`` reads, so the CRD can check it too (controller/crdgen.py). The model also checks what CEL cannot:
an objective no longer than the schedule's longest gap between slots would be breached by design.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import ValidationInfo

from vmbackup.model.crd_base import RPO_PATTERN
from vmbackup.model.cron import cron_of
from vmbackup.model.slots import CronSlots

MIN_RPO = timedelta(minutes=1)
RPO_DESCRIPTION = (
    "Recovery point objective: the oldest a VM's newest good backup may be (e.g. 26h for a nightly schedule); "
    "status.recoveryPoint says, per VM, whether it is met."
)
RPO_FIX = "write a duration in hours, minutes and seconds such as 24h, 90m or 1h30m"


def parse_duration(text: str) -> timedelta:
    """``1h30m`` -> 90 minutes; ValueError naming the fix for anything else (``abc``, ``-1h``, ``1d``)."""
    match = re.fullmatch(RPO_PATTERN, text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration: {RPO_FIX}")
    hours, minutes, seconds = (int(part[:-1]) if part else 0 for part in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def checked_rpo(value: str | None, info: ValidationInfo) -> str | None:
    """A positive duration (at least a minute), longer than the longest gap between the schedule's slots."""
    if value is None:
        return None
    rpo = parse_duration(value)
    if rpo < MIN_RPO:
        raise ValueError(f"{value!r} is shorter than 1m; {RPO_FIX} (at least 1m)")
    schedule = info.data.get("schedule")
    if schedule is not None:
        gap = CronSlots.parse(cron_of(schedule)).longest_gap()
        if rpo <= gap:
            raise ValueError(
                f"{value!r} is not longer than the {_shown(gap)} between slots of {schedule!r}: every backup would "
                f"age past it before the next one; set rpo above {_shown(gap)} (e.g. {_shown(gap * 1.5)}) or "
                "schedule runs more often"
            )
    return value


def _shown(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n) or "0s"
