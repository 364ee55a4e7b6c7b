"""`python -m bench dag-parse`: what Airflow's DAG processor pays to import each kind of DAG file we write.

The processor imports every DAG file again, in a fresh process forked from one that has Airflow loaded, every
``[dag_processor] min_file_process_interval`` (30 s by default), and Composer fails an import that takes longer
than ``[core] dagbag_import_timeout``. Each sample here is that: a fresh interpreter imports ``airflow.sdk``
(untimed, as the processor's parent has), then one DAG file is run (timed: CPU and wall). Two columns:

- **now**: the file as the controller writes it;
- **with compute_v1 at parse**: the same file with ``google.cloud.compute_v1`` imported first, inside the timed
  part: what every parse cost before the operators took that library lazily (vmbackup.compute.compute_library).

Samples of one kind alternate between the columns, so a busy machine slows both alike; the table gives the
median and the spread of ``--repeat`` samples and the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vmbackup.compute.compute_library import COMPUTE_LIBRARY

REPO = Path(__file__).resolve().parents[1]
NOW, EAGER = "now", "with compute_v1 at parse"
PROBE = """
import json, runpy, sys, time
import airflow.sdk  # the DAG processor's parent has Airflow loaded: not part of a parse
path, eager = sys.argv[1], sys.argv[2] == "1"
cpu, wall = time.process_time(), time.perf_counter()
if eager:
    import importlib; importlib.import_module(%r)
runpy.run_path(path)
print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}))
"""


def dag_sources() -> dict[str, str]:
    """One file of each kind the controller writes, for the example policy."""
    from dags_templates.render import render_dag
    from dags_templates.render_drill import shared_drill_dag_source
    from dags_templates.render_keeper import render_keeper_dag
    from dags_templates.render_restore import shared_restore_dag_source
    from vmbackup.model.policy import parse_policy

    policy = parse_policy(
        "default",
        "wordpress",
        {
            "project": "demo-project",
            "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
            "schedule": "0 2 * * *",
        },
    )
    return {
        "backup (one policy)": render_dag(policy),
        "keeper": render_keeper_dag(["demo-project"], "*/10 * * * *"),
        "shared restore": shared_restore_dag_source(),
        "shared drill": shared_drill_dag_source(),
    }


def parse_once(path: Path, eager: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    done = subprocess.run(
        [sys.executable, "-c", PROBE % COMPUTE_LIBRARY, str(path), "1" if eager else "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    sample: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return sample


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def measure(repeat: int) -> dict[str, dict[str, list[dict[str, float]]]]:
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dag-parse-") as folder:
        for kind, source in dag_sources().items():
            path = Path(folder) / "dag.py"
            path.write_text(source, encoding="utf-8")
            samples: dict[str, list[dict[str, float]]] = {NOW: [], EAGER: []}
            for _ in range(repeat):
                samples[NOW].append(parse_once(path, eager=False))
                samples[EAGER].append(parse_once(path, eager=True))
            results[kind] = samples
    return results


def render_table(results: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    lines = [
        f"| DAG file | {NOW}: CPU s | {EAGER}: CPU s | ratio (CPU) | {NOW}: wall s | {EAGER}: wall s |",
        "|---|---|---|---|---|---|",
    ]
    for kind, samples in results.items():
        cpu = {column: [s["cpu"] for s in samples[column]] for column in (NOW, EAGER)}
        wall = {column: [s["wall"] for s in samples[column]] for column in (NOW, EAGER)}
        ratio = statistics.median(cpu[EAGER]) / max(statistics.median(cpu[NOW]), 1e-6)
        lines.append(
            f"| {kind} | {spread(cpu[NOW])} | {spread(cpu[EAGER])} | {ratio:.1f}x | "
            f"{spread(wall[NOW])} | {spread(wall[EAGER])} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dag-parse", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="samples per DAG kind and column (default 5)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    load = os.getloadavg()[0]
    print(render_table(measure(args.repeat)))
    print(f"\n{args.repeat} samples each; median (min-max); load average at the start {load:.1f}")
    return 0
