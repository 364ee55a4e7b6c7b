"""Triggers for the deferrable sensors: the waits happen in the triggerer, not on a worker.

The Compute Engine client is synchronous, so each call runs in a thread and the triggerer's event loop stays
free. The threads are this module's own: the loop's default executor has min(32, cores + 4) threads shared
with every trigger of the environment, and a `wait` long-poll holds its thread until the operation ends, so a
fleet of VMs waiting at once would queue every other trigger behind that pool (docs/benchmarks.md, "The per-step layout of earlier releases").
Triggers depend on the hook only.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from vmbackup.airflow_compat import BaseTrigger, TriggerEvent

T = TypeVar("T")
LONG_POLL_SECONDS = 120.0  # the most one `operations.wait` holds (Compute Engine returns near 2 minutes)
CALL_THREADS = 64  # Compute Engine calls of vmbackup triggers in flight at once, per triggerer
_calls = ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="vmbackup-trigger")


async def in_call_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking Compute Engine call on the triggers' own threads."""
    return await asyncio.get_running_loop().run_in_executor(_calls, functools.partial(fn, *args))


class OperationStatusTrigger(BaseTrigger):
    def __init__(self, operation: dict[str, Any], endpoint: str | None = None, long_poll_seconds: float = 60.0):
        super().__init__()
        self.operation = operation
        self.endpoint = endpoint
        self.long_poll_seconds = long_poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "vmbackup.compute.triggers.OperationStatusTrigger",
            {"operation": self.operation, "endpoint": self.endpoint, "long_poll_seconds": self.long_poll_seconds},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from vmbackup.compute.hook import ComputeEngineHook, as_operation_ref, is_done, operation_error

        hook = ComputeEngineHook(endpoint=self.endpoint)
        ref = as_operation_ref(self.operation)
        while True:
            try:
                op = await in_call_thread(hook.wait_operation, ref, self.long_poll_seconds)
            except Exception as exc:  # a trigger must report, not crash the triggerer's loop
                yield TriggerEvent({"status": "error", "operation_ref": self.operation, "message": str(exc)})
                return
            if is_done(op):
                yield TriggerEvent({"status": "done", "operation_ref": self.operation, "error": operation_error(op)})
                return


class SnapshotStatusTrigger(BaseTrigger):
    """Looks at a run's snapshots every poll_seconds until all are taken (or READY); reports a failure as it is."""

    def __init__(
        self,
        snapshots: list[dict[str, Any]],
        project: str,
        until: str,
        endpoint: str | None = None,
        poll_seconds: float = 5.0,
    ):
        super().__init__()
        self.snapshots = snapshots
        self.project = project
        self.until = until
        self.endpoint = endpoint
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "vmbackup.compute.triggers.SnapshotStatusTrigger",
            {
                "snapshots": self.snapshots,
                "project": self.project,
                "until": self.until,
                "endpoint": self.endpoint,
                "poll_seconds": self.poll_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from vmbackup.compute.hook import READY, ComputeEngineHook, pending_snapshots

        hook = ComputeEngineHook(endpoint=self.endpoint)
        while True:
            try:
                if self.until == READY:  # an upload takes minutes: long-poll the creations, then read the snapshots
                    await in_call_thread(hook.await_creations, self.snapshots, LONG_POLL_SECONDS)
                states = await in_call_thread(hook.states_until, self.project, self.snapshots, self.until)
            except Exception as exc:  # e.g. a FAILED snapshot: the sensor looks once more and raises its message
                yield TriggerEvent({"status": "error", "message": str(exc)})
                return
            if not pending_snapshots(states, self.until):
                yield TriggerEvent({"status": "done", "states": states})
                return
            await asyncio.sleep(self.poll_seconds)
