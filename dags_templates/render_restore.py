"""Renders a VMRestore's DAG file: a fixed template with the restore's canonical JSON as one string literal.

The same discipline as render.py for policies: the only thing that varies between rendered files is the
value of one string constant, and render_restore_dag proves it by comparing the output's syntax tree with
the template's before returning it. Configuration is data, code is code.
"""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

from dags_templates.render import RenderError
from vmbackup.restore import Restore

TEMPLATE_PATH = Path(__file__).with_name("vmrestore_dag.py.tmpl")
PLACEHOLDER = "__VMBACKUP_RESTORE_JSON__"
VARIABLE = "RESTORE_JSON"
_PLACEHOLDER_LITERAL = repr(PLACEHOLDER)

__all__ = ["RenderError", "render_restore_dag", "restore_dag_file_name", "template_text", "verify_rendered"]


@cache
def template_text() -> str:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    if text.count(_PLACEHOLDER_LITERAL) != 1:
        raise RenderError(f"{TEMPLATE_PATH.name} must contain the placeholder {_PLACEHOLDER_LITERAL} exactly once")
    return text


def render_restore_dag(restore: Restore) -> str:
    """The restore DAG file for a validated restore; pure (same restore, same bytes)."""
    restore_json = restore.to_json()
    if not restore_json.isascii():
        raise RenderError("the restore JSON must be ASCII-only (to_json uses ensure_ascii)")
    rendered = template_text().replace(_PLACEHOLDER_LITERAL, repr(restore_json), 1)
    verify_rendered(rendered, restore_json)
    return rendered


def _dump_with_placeholder(tree: ast.Module, value: str) -> str:
    """The tree's dump with the one data constant replaced by the placeholder (checking there is exactly one)."""
    matches = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value == value
    ]
    if len(matches) != 1:
        raise RenderError(f"expected exactly one restore string constant, found {len(matches)}")
    matches[0].value = PLACEHOLDER
    return ast.dump(tree, include_attributes=False)


def verify_rendered(rendered: str, restore_json: str) -> None:
    """Raise RenderError unless `rendered` is the template with the restore JSON as its one string constant."""
    try:
        tree = ast.parse(rendered)
    except SyntaxError as exc:
        raise RenderError(f"rendered restore DAG does not parse: {exc}") from None
    expected = _dump_with_placeholder(ast.parse(template_text()), PLACEHOLDER)
    if _dump_with_placeholder(tree, restore_json) != expected:
        raise RenderError("rendered restore DAG differs from the template beyond the restore string")
    assigns = [
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == VARIABLE for t in n.targets)
    ]
    if len(assigns) != 1:
        raise RenderError(f"rendered restore DAG must assign {VARIABLE} exactly once")
    segment = ast.get_source_segment(rendered, assigns[0].value)
    if segment is None or ast.literal_eval(segment) != restore_json:
        raise RenderError(f"{VARIABLE} does not evaluate back to the restore JSON")
    Restore.from_json(json.dumps(json.loads(restore_json)))


def restore_dag_file_name(restore: Restore) -> str:
    """Object name under the bucket's dags/ folder."""
    return f"{restore.dag_id}.py"
