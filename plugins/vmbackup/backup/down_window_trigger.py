"""The down window's host where Airflow has a triggerer: run_window on threads of the triggerer's own.

The window blocks on Compute Engine (long-polls, one look a second at most) for as long as a VM is down, so it runs
on a pool of its own rather than on the event loop's shared default pool, where many windows would queue every
other trigger of the environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from vmbackup.airflow_compat import BaseTrigger, TriggerEvent
from vmbackup.backup.down_window import VmWindow, run_window
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.policy_task import PolicyTask

# Windows in flight at once in one process (a triggerer, a worker); each holds a thread while its VMs are down.
WINDOW_THREADS = 256
_windows = ThreadPoolExecutor(max_workers=WINDOW_THREADS, thread_name_prefix="vmbackup-window")


class DownWindowTrigger(PolicyTask, BaseTrigger):
    """Runs run_window in the triggerer (no worker slot held); a restarted triggerer runs it again from its kwargs,
    and it picks up where Compute Engine's state says."""

    def __init__(
        self,
        policy_json: str,
        targets: list[dict[str, Any]],
        slot: str | None,
        phase: str,
        max_unavailable: int,
        project_limit: int,
        poll_seconds: float,
        lock_ttl_seconds: int,
        endpoint: str | None = None,
        skips: dict[str, str] | None = None,
    ):
        super().__init__()
        self.skips = skips or {}
        self.policy_json = policy_json
        self.targets = targets
        self.slot = slot
        self.phase = phase
        self.max_unavailable = max_unavailable
        self.project_limit = project_limit
        self.poll_seconds = poll_seconds
        self.lock_ttl_seconds = lock_ttl_seconds
        self.endpoint = endpoint

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "vmbackup.backup.down_window_trigger.DownWindowTrigger",
            {
                "policy_json": self.policy_json,
                "targets": self.targets,
                "slot": self.slot,
                "phase": self.phase,
                "max_unavailable": self.max_unavailable,
                "project_limit": self.project_limit,
                "poll_seconds": self.poll_seconds,
                "lock_ttl_seconds": self.lock_ttl_seconds,
                "endpoint": self.endpoint,
                "skips": self.skips,
            },
        )

    def _run(self) -> list[VmWindow]:
        return run_window(
            ComputeEngineHook(endpoint=self.endpoint),
            self.policy,
            self.targets,  # type: ignore[arg-type]
            datetime.fromisoformat(self.slot) if self.slot else None,
            self.phase,  # type: ignore[arg-type]
            max_unavailable=self.max_unavailable,
            project_limit=self.project_limit,
            poll_seconds=self.poll_seconds,
            lock_ttl_seconds=self.lock_ttl_seconds,
            skips=self.skips,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            results = await asyncio.get_running_loop().run_in_executor(_windows, self._run)
        except Exception as exc:  # a trigger must report, not crash the triggerer's loop
            yield TriggerEvent({"status": "error", "message": str(exc) or type(exc).__name__})
            return
        yield TriggerEvent({"status": "done", "vms": results})
