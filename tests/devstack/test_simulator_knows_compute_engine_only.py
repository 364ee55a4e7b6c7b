"""The Compute Engine simulator knows Compute Engine, not this product (its invariants are devstack's observer)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR = "devstack/gce_simulator"


def test_the_simulator_knows_nothing_of_vmbackup() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / SIMULATOR).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "vmbackup" in line.lower()
    ]
    assert offenders == []
