"""Trigger for OperationStatusSensor(deferrable=True): waits in the triggerer, not on a worker.

The Compute Engine client is synchronous; each long-poll `wait` runs in a thread so the triggerer's
event loop stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from vmbackup.airflow_compat import BaseTrigger, TriggerEvent


class OperationStatusTrigger(BaseTrigger):
    def __init__(self, operation: dict[str, Any], endpoint: str | None = None, long_poll_seconds: float = 60.0):
        super().__init__()
        self.operation = operation
        self.endpoint = endpoint
        self.long_poll_seconds = long_poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "vmbackup.triggers.OperationStatusTrigger",
            {"operation": self.operation, "endpoint": self.endpoint, "long_poll_seconds": self.long_poll_seconds},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from vmbackup.compute_engine import ComputeEngineHook, OperationRef, is_done, operation_error

        hook = ComputeEngineHook(endpoint=self.endpoint)
        ref = OperationRef(
            name=self.operation["name"], project=self.operation["project"], zone=self.operation.get("zone")
        )
        while True:
            try:
                op = await asyncio.to_thread(hook.wait_operation, ref, self.long_poll_seconds)
            except Exception as exc:  # a trigger must report, not crash the triggerer's loop
                yield TriggerEvent({"status": "error", "operation_ref": self.operation, "message": str(exc)})
                return
            if is_done(op):
                yield TriggerEvent({"status": "done", "operation_ref": self.operation, "error": operation_error(op)})
                return
