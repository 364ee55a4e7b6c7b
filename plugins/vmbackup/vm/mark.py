"""The stopped-by mark (labels.STOPPED_BY, STOPPED_AT): this product stopped the instance and owes it a start.

Set with the lock, in one setLabels call, before the stop request (vm/lock.acquire_lock); removed only once the
instance is RUNNING again. Pure functions on labels, shared by the lock, the power steps and the keeper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vmbackup.model import labels as vmlabels

MARK_LABELS = (*vmlabels.STOPPED_BY_LABELS, vmlabels.KEEPER_TRIES)


@dataclass(frozen=True)
class Mark:
    run: str  # the run hash of the run that stopped the instance
    at: int | None  # epoch seconds of the stop request (None when unreadable)
    tries: int = 0  # the keeper's start tries since
    last_try: int | None = None  # epoch seconds of the keeper's last try


def mark_labels(run: str, now: float) -> dict[str, str]:
    return {vmlabels.STOPPED_BY: run, vmlabels.STOPPED_AT: str(int(now))}


def read_mark(labels: Mapping[str, str] | None) -> Mark | None:
    """The mark an instance's labels carry, or None."""
    labels = labels or {}
    run = labels.get(vmlabels.STOPPED_BY)
    if not run:
        return None
    at = labels.get(vmlabels.STOPPED_AT, "")
    tries, _, last = labels.get(vmlabels.KEEPER_TRIES, "").partition("-")
    return Mark(
        run=run,
        at=int(at) if at.isdigit() else None,
        tries=int(tries) if tries.isdigit() else 0,
        last_try=int(last) if last.isdigit() else None,
    )


def without_mark(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in MARK_LABELS}


def keeper_tries_label(tries: int, now: float) -> dict[str, str]:
    return {vmlabels.KEEPER_TRIES: f"{tries}-{int(now)}"}
