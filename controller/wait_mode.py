"""How the DAGs' sensors wait in one Airflow environment: deferrable where it runs a triggerer.

A deferrable sensor hands its wait to the triggerer and frees its worker slot (docs/benchmarks.md, "Workflow", has
the slot-seconds measured); in an environment without a triggerer a deferred task never resumes. Airflow's health endpoint reports the triggerer's heartbeat on Airflow 2.10 and 3.x alike, and in
Composer whether one is configured (workloadsConfig.triggerer). So the controller asks it, and renders each DAG
with the answer as data (BackupPolicy.wait_mode). The answer is cached per environment and asked again every
`refresh_seconds`; a policy whose DAG was rendered for another answer is rendered again by the status timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from vmbackup.model.policy import WaitMode

WaitModeSetting = Literal["auto", "reschedule", "deferrable"]
WAIT_MODE_SETTINGS: tuple[WaitModeSetting, ...] = ("auto", "reschedule", "deferrable")

logger = logging.getLogger(__name__)


class HealthSource(Protocol):
    async def health(self) -> Mapping[str, Any]: ...


def wait_mode_from_health(health: Mapping[str, Any]) -> WaitMode:
    """deferrable only for a live triggerer: "unhealthy" (a stale heartbeat) and null (never ran) both mean no."""
    triggerer = health.get("triggerer")
    status = triggerer.get("status") if isinstance(triggerer, Mapping) else None
    return "deferrable" if status == "healthy" else "reschedule"


@dataclass(frozen=True)
class _Seen:
    mode: WaitMode
    at: float


class WaitModeResolver:
    """The wait mode per environment: the configured one, or (auto) what its health endpoint says."""

    def __init__(
        self,
        setting: WaitModeSetting = "auto",
        refresh_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.setting = setting
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def mode(self, key: tuple[str, str], airflow: HealthSource) -> WaitMode:
        """Ask at most once per refresh interval per environment; unreachable: the last answer, else reschedule.

        reschedule is the safe guess: it works with or without a triggerer, it only holds slots longer.
        """
        if self.setting != "auto":
            return self.setting
        async with self._locks.setdefault(key, asyncio.Lock()):
            seen = self._seen.get(key)
            if seen is not None and self._clock() - seen.at < self.refresh_seconds:
                return seen.mode
            try:
                health = await airflow.health()
            except Exception as exc:
                logger.info("Cannot read Airflow's health at %s (sensors: %s): %s", key[1], self._fallback(seen), exc)
                return self._fallback(seen)
            mode = wait_mode_from_health(health)
            if seen is None or seen.mode != mode:
                logger.info(
                    "Airflow at %s %s a triggerer: DAGs get %s sensors",
                    key[1],
                    "has" if mode == "deferrable" else "has no live",
                    mode,
                )
            self._seen[key] = _Seen(mode, self._clock())
            return mode

    @staticmethod
    def _fallback(seen: _Seen | None) -> WaitMode:
        return seen.mode if seen is not None else "reschedule"
