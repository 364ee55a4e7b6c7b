"""Renders a VMRestore's DAG file with the same DataTemplate discipline as policies (render.py)."""

from __future__ import annotations

import json
from pathlib import Path

from dags_templates.render import DataTemplate, RenderError
from vmbackup.model.restore import Restore

RESTORE_TEMPLATE = DataTemplate(
    path=Path(__file__).with_name("vmrestore_dag.py.tmpl"),
    placeholder="__VMBACKUP_RESTORE_JSON__",
    variable="RESTORE_JSON",
    what="restore",
)

__all__ = ["RenderError", "render_restore_dag", "template_text", "verify_rendered"]


def template_text() -> str:
    return RESTORE_TEMPLATE.text()


def render_restore_dag(restore: Restore) -> str:
    """The restore DAG file for a validated restore; pure (same restore, same bytes)."""
    return RESTORE_TEMPLATE.render(restore.to_json())


def verify_rendered(rendered: str, restore_json: str) -> None:
    """Raise RenderError unless `rendered` is the restore template with the restore JSON as its one string."""
    RESTORE_TEMPLATE.verify(rendered, restore_json)
    Restore.from_json(json.dumps(json.loads(restore_json)))  # and the data is a restore the DAG can build
