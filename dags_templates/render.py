"""Renders a policy's DAG file: a fixed template with the policy's canonical JSON as one string literal.

The controller uploads the result as dags/<dag_id>.py. Configuration is data, code is code: the only
thing that varies between rendered files is the value of one string constant, and render_dag proves it
by comparing the output's syntax tree with the template's before returning it.
"""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

from vmbackup.policy import BackupPolicy

TEMPLATE_PATH = Path(__file__).with_name("vmbackup_dag.py.tmpl")
PLACEHOLDER = "__VMBACKUP_POLICY_JSON__"
_PLACEHOLDER_LITERAL = repr(PLACEHOLDER)


class RenderError(RuntimeError):
    """The rendered file is not the template with the policy as data; nothing may be uploaded."""


@cache
def template_text() -> str:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    if text.count(_PLACEHOLDER_LITERAL) != 1:
        raise RenderError(f"{TEMPLATE_PATH.name} must contain the placeholder {_PLACEHOLDER_LITERAL} exactly once")
    return text


def render_dag(policy: BackupPolicy) -> str:
    """The DAG file for a validated policy; pure (same policy, same bytes)."""
    policy_json = policy.to_json()
    if not policy_json.isascii():
        raise RenderError("the policy JSON must be ASCII-only (to_json uses ensure_ascii)")
    literal = repr(policy_json)
    rendered = template_text().replace(_PLACEHOLDER_LITERAL, literal, 1)
    verify_rendered(rendered, policy_json)
    return rendered


def _placeholder_dump(tree: ast.Module, policy_json: str | None) -> str:
    """The tree's dump with the one policy constant replaced by the placeholder (checking it is where expected)."""
    matches = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value == (policy_json or PLACEHOLDER)
    ]
    if len(matches) != 1:
        raise RenderError(f"expected exactly one policy string constant, found {len(matches)}")
    matches[0].value = PLACEHOLDER
    return ast.dump(tree, include_attributes=False)


def verify_rendered(rendered: str, policy_json: str) -> None:
    """Raise RenderError unless `rendered` is the template with the policy JSON as its one string constant."""
    try:
        tree = ast.parse(rendered)
    except SyntaxError as exc:
        raise RenderError(f"rendered DAG does not parse: {exc}") from None
    expected = _placeholder_dump(ast.parse(template_text()), None)
    if _placeholder_dump(tree, policy_json) != expected:
        raise RenderError("rendered DAG differs from the template beyond the policy string")
    # The literal, read back as a value, must be the policy JSON itself, and valid JSON.
    assigns = [
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "POLICY_JSON" for t in n.targets)
    ]
    if len(assigns) != 1:
        raise RenderError("rendered DAG must assign POLICY_JSON exactly once")
    segment = ast.get_source_segment(rendered, assigns[0].value)
    if segment is None or ast.literal_eval(segment) != policy_json:
        raise RenderError("POLICY_JSON does not evaluate back to the policy JSON")
    json.loads(policy_json)


def dag_file_name(policy: BackupPolicy) -> str:
    """Object name under the bucket's dags/ folder."""
    return f"{policy.dag_id}.py"
