"""Renders DAG files: a fixed template with canonical JSON as one string literal, proven by the syntax tree.

The controller uploads the results as dags/<dag_id>.py. Configuration is data, code is code: the only
thing that varies between files rendered from one template is the value of one string constant, and
DataTemplate.render proves it by comparing the output's syntax tree with the template's before returning
it. Policies (this module) and restores (render_restore.py) use the same DataTemplate.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vmbackup.model.policy import BackupPolicy


class RenderError(RuntimeError):
    """The rendered file is not the template with the data as its one string; nothing may be uploaded."""


@cache
def _read_template(path: Path, placeholder_literal: str) -> str:
    text = path.read_text(encoding="utf-8")
    if text.count(placeholder_literal) != 1:
        raise RenderError(f"{path.name} must contain the placeholder {placeholder_literal} exactly once")
    return text


@dataclass(frozen=True)
class DataTemplate:
    """A DAG file template whose one placeholder string constant receives ASCII-only canonical JSON."""

    path: Path
    placeholder: str  # the string constant the template holds where the JSON goes
    variable: str  # the module-level name it is assigned to
    what: str  # "policy", "restore": for error messages

    def text(self) -> str:
        return _read_template(self.path, repr(self.placeholder))

    def render(self, payload_json: str) -> str:
        """The template with payload_json as its one string literal; verified before it is returned."""
        if not payload_json.isascii():
            raise RenderError(f"the {self.what} JSON must be ASCII-only (to_json uses ensure_ascii)")
        rendered = self.text().replace(repr(self.placeholder), repr(payload_json), 1)
        self.verify(rendered, payload_json)
        return rendered

    def verify(self, rendered: str, payload_json: str) -> None:
        """Raise RenderError unless `rendered` is the template with payload_json as its one string constant."""
        try:
            tree = ast.parse(rendered)
        except SyntaxError as exc:
            raise RenderError(f"rendered {self.what} DAG does not parse: {exc}") from None
        expected = self._dump_with_placeholder(ast.parse(self.text()), self.placeholder)
        if self._dump_with_placeholder(tree, payload_json) != expected:
            raise RenderError(f"rendered {self.what} DAG differs from the template beyond the {self.what} string")
        # The literal, read back as a value, must be the JSON itself, and valid JSON.
        assigns = [
            n
            for n in tree.body
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == self.variable for t in n.targets)
        ]
        if len(assigns) != 1:
            raise RenderError(f"rendered {self.what} DAG must assign {self.variable} exactly once")
        segment = ast.get_source_segment(rendered, assigns[0].value)
        if segment is None or ast.literal_eval(segment) != payload_json:
            raise RenderError(f"{self.variable} does not evaluate back to the {self.what} JSON")
        json.loads(payload_json)

    def _dump_with_placeholder(self, tree: ast.Module, value: str) -> str:
        """The tree's dump with the one data constant replaced by the placeholder (checking there is exactly one)."""
        matches = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value == value
        ]
        if len(matches) != 1:
            raise RenderError(f"expected exactly one {self.what} string constant, found {len(matches)}")
        matches[0].value = self.placeholder
        return ast.dump(tree, include_attributes=False)


POLICY_TEMPLATE = DataTemplate(
    path=Path(__file__).with_name("vmbackup_dag.py.tmpl"),
    placeholder="__VMBACKUP_POLICY_JSON__",
    variable="POLICY_JSON",
    what="policy",
)


def template_text() -> str:
    return POLICY_TEMPLATE.text()


def render_dag(policy: BackupPolicy) -> str:
    """The DAG file for a validated policy; pure (same policy, same bytes)."""
    return POLICY_TEMPLATE.render(policy.to_json())


def verify_rendered(rendered: str, policy_json: str) -> None:
    """Raise RenderError unless `rendered` is the policy template with the policy JSON as its one string."""
    POLICY_TEMPLATE.verify(rendered, policy_json)
