"""No import circle anywhere in the tree: controller, plugins (vmbackup), devstack and bench."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_graph import ROOT, cycles, import_graph

PACKAGES = [(ROOT, "controller"), (ROOT / "plugins", "vmbackup"), (ROOT, "devstack"), (ROOT, "bench")]


def test_the_checker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_and_type_checking_imports() -> None:
    graph = import_graph("devstack")
    assert "devstack.gce_simulator.state" in graph["devstack.gce_simulator.power"]  # `from .state import World`
    assert "devstack.gce_simulator.resources" in graph["devstack.backup_invariants"]  # under TYPE_CHECKING


@pytest.mark.parametrize(("root", "package"), PACKAGES, ids=[p for _, p in PACKAGES])
def test_a_package_has_no_import_circle(root: Path, package: str) -> None:
    assert cycles(import_graph(package, root)) == []
