"""The base of every step that calls Compute Engine: a hook built in execute(), failures recorded for the report.

Every step records its failure under the XCom key `vmbackup_error` before failing, so the run report (and the
restore report) can quote each failed step's own message.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from vmbackup.airflow_compat import CONTROL_FLOW_EXCEPTIONS, BaseOperator, xcom_values
from vmbackup.compute.hook import ComputeEngineHook

log = logging.getLogger(__name__)

ERROR_KEY = "vmbackup_error"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def record_error(context: Any, exc: BaseException, subject: Any = None, disk: str | None = None) -> None:
    """Leave the failure's message where the report task finds it (pushing must never hide the failure).

    `subject` is what the step acted on: a dict with "instance" and "zone" (a backup target, a planned disk).
    """
    try:
        context["ti"].xcom_push(
            key=ERROR_KEY,
            value={
                "step": context["ti"].task_id,
                "instance": subject["instance"] if subject else None,
                "zone": subject["zone"] if subject else None,
                "disk": disk,
                "message": str(exc) or type(exc).__name__,
            },
        )
    except Exception:  # pragma: no cover - best effort
        log.exception("could not record the error of %s", context["ti"].task_id)


def recorded_errors(ti: Any, task_id: str, map_indexes: list[int]) -> list[dict[str, Any]]:
    """The failures record_error left for one task's instances."""
    return xcom_values(ti, task_id, map_indexes, key=ERROR_KEY)


class ComputeStepOperator(BaseOperator):
    """A step of a workflow: a hook per task execution (never at parse time), and failures recorded."""

    ui_color = "#e8f0fe"

    def __init__(self, *, target: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.target = target

    def execute(self, context: Any) -> Any:
        hook = ComputeEngineHook()
        try:
            return self.run_step(context, hook)
        except CONTROL_FLOW_EXCEPTIONS:
            raise
        except Exception as exc:
            record_error(context, exc, self.target if isinstance(self.target, dict) else None)
            raise

    def run_step(self, context: Any, hook: ComputeEngineHook) -> Any:
        raise NotImplementedError
