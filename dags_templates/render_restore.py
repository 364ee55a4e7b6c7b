"""The shared restore DAGs' file; and a VMRestore's own DAG file, as earlier versions rendered it (render.py's
DataTemplate discipline), kept for tests and for files already in buckets."""

from __future__ import annotations

import json
from pathlib import Path

from dags_templates.render import DataTemplate, RenderError
from vmbackup.model.restore import SHARED_RESTORE_DAG_ID, Restore

RESTORE_TEMPLATE = DataTemplate(
    path=Path(__file__).with_name("vmrestore_dag.py.tmpl"),
    placeholder="__VMBACKUP_RESTORE_JSON__",
    variable="RESTORE_JSON",
    what="restore",
)

SHARED_TEMPLATE = Path(__file__).with_name("vmrestore_shared_dag.py.tmpl")
SHARED_DAG_FILE_ID = SHARED_RESTORE_DAG_ID  # the bucket object dags/<id>.py holding both shared restore DAGs

__all__ = [
    "SHARED_DAG_FILE_ID",
    "RenderError",
    "render_restore_dag",
    "shared_restore_dag_source",
    "template_text",
    "verify_rendered",
]


def shared_restore_dag_source() -> str:
    """The file of the shared restore DAGs (no data in it: each run's restore is its signed conf)."""
    return SHARED_TEMPLATE.read_text(encoding="utf-8")


def template_text() -> str:
    return RESTORE_TEMPLATE.text()


def render_restore_dag(restore: Restore) -> str:
    """The restore DAG file for a validated restore; pure (same restore, same bytes)."""
    return RESTORE_TEMPLATE.render(restore.to_json())


def verify_rendered(rendered: str, restore_json: str) -> None:
    """Raise RenderError unless `rendered` is the restore template with the restore JSON as its one string."""
    RESTORE_TEMPLATE.verify(rendered, restore_json)
    Restore.from_json(json.dumps(json.loads(restore_json)))  # and the data is a restore the DAG can build
