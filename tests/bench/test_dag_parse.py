"""The DAG-parse benchmark's plumbing, so `python -m bench dag-parse` cannot rot. No timing is asserted here."""

from __future__ import annotations

from pathlib import Path

from bench.dag_parse import EAGER, NOW, dag_sources, parse_once, render_table


def test_the_table_has_a_row_per_dag_kind_with_both_columns() -> None:
    sample = {"cpu": 0.2, "wall": 0.3}
    table = render_table({"keeper": {NOW: [sample], EAGER: [{"cpu": 2.0, "wall": 2.5}]}})

    assert "| keeper | 0.20 (0.20-0.20) | 2.00 (2.00-2.00) | 10.0x |" in table


def test_every_dag_kind_the_controller_writes_is_measured() -> None:
    assert list(dag_sources()) == ["backup (one policy)", "keeper", "shared restore", "shared drill"]


def test_a_sample_is_one_fresh_parse_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dag.py"
    path.write_text(dag_sources()["keeper"])

    sample = parse_once(path, eager=False)

    assert set(sample) == {"cpu", "wall"}
    assert sample["cpu"] > 0
