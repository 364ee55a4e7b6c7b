"""The screenshot's DOM conditions, evaluated by Node.js against a page stand-in (no browser in the suite)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.airflow_graph import chromium_command, click_expression, graph_drawn_expression

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


def evaluate(expression: str, node_ids: list[str], buttons: list[str] | None = None) -> dict[str, object]:
    """The expression's value on a page whose graph has these React Flow nodes and buttons (aria-labels)."""
    page = f"""
    const clicked = [];
    const nodes = {json.dumps(node_ids)}.map(id => ({{ dataset: {{ id }} }}));
    const buttons = {json.dumps(buttons or [])};
    globalThis.document = {{
      querySelectorAll: selector => selector === '.react-flow__node' ? nodes : [],
      querySelector: selector => {{
        const label = buttons.find(b => selector === `button[aria-label=${{JSON.stringify(b)}}]`);
        return label === undefined ? null : {{ click: () => clicked.push(label) }};
      }},
    }};
    const value = {expression};
    console.log(JSON.stringify({{ value, clicked }}));
    """
    assert NODE is not None
    out = subprocess.run([NODE, "-e", page], capture_output=True, text=True, check=True, timeout=60).stdout
    result: dict[str, object] = json.loads(out)
    return result


@needs_node
def test_the_graph_is_drawn_once_every_task_has_a_node() -> None:
    tasks = ["resolve_instances", "instances.stop", "instances.snapshot"]
    drawn = ["resolve_instances", "instances", "instances.stop", "instances.snapshot"]
    assert evaluate(graph_drawn_expression(tasks), drawn)["value"] is True


@needs_node
def test_a_collapsed_task_group_is_not_drawn_yet() -> None:
    tasks = ["resolve_instances", "instances.stop", "instances.snapshot"]
    assert evaluate(graph_drawn_expression(tasks), ["resolve_instances", "instances"])["value"] is False


@needs_node
def test_a_button_is_clicked_by_its_label_and_a_missing_one_is_reported() -> None:
    assert evaluate(click_expression("Fit View"), [], ["Zoom In", "Fit View"]) == {
        "value": True,
        "clicked": ["Fit View"],
    }
    assert evaluate(click_expression("Fit View"), [], ["Zoom In"]) == {"value": False, "clicked": []}


def test_chromium_runs_headless_in_a_new_profile_with_devtools_on_loopback(tmp_path: Path) -> None:
    command = chromium_command("/usr/bin/chromium", tmp_path, 9333)
    assert {"--headless", "--no-sandbox", "--disable-background-networking"} <= set(command)
    assert f"--user-data-dir={tmp_path}" in command
    assert {"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=9333"} <= set(command)
