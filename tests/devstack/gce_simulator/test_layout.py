"""The simulator stays split by resource (issue 22): no module over 450 lines, no function over 60."""

from __future__ import annotations

import ast
from pathlib import Path

SIMULATOR = Path(__file__).resolve().parents[3] / "devstack" / "gce_simulator"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def test_no_module_is_too_long() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in SIMULATOR.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_is_too_long() -> None:
    long = {}
    for path in SIMULATOR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.name}:{node.name}"] = length
    assert long == {}
