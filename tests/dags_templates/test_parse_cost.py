"""Parsing a DAG file, as Airflow's DAG processor does again and again, does not import the Compute Engine library.

Each DAG kind the controller writes is imported in a fresh interpreter (the processor's own fresh process); the
library is loaded only once a task calls Compute Engine (vmbackup.compute.compute_library).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dags_templates.render import render_dag
from dags_templates.render_drill import shared_drill_dag_source
from dags_templates.render_keeper import render_keeper_dag
from dags_templates.render_restore import shared_restore_dag_source
from vmbackup.compute.compute_library import COMPUTE_LIBRARY
from vmbackup.model.policy import parse_policy

REPO = Path(__file__).resolve().parents[2]
SPEC = {
    "project": "demo-project",
    "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
    "schedule": "0 2 * * *",
    "verification": {"schedule": "0 3 * * 0", "network": "default"},
}
PROBE = """
import json, runpy, sys
loaded = {}
for path in sys.argv[1:]:
    runpy.run_path(path)
    loaded[path] = sorted(m for m in sys.modules if m.startswith(%r))
print(json.dumps(loaded))
"""


def dag_files(folder: Path) -> list[Path]:
    policy = parse_policy("team-a", "wordpress", SPEC)
    sources = {
        "backup": render_dag(policy),
        "drill": shared_drill_dag_source(),
        "keeper": render_keeper_dag(["demo-project"], "*/10 * * * *"),
        "restore": shared_restore_dag_source(),
    }
    for kind, source in sources.items():
        (folder / f"{kind}.py").write_text(source)
    return [folder / f"{kind}.py" for kind in sources]


def test_no_dag_file_imports_the_compute_engine_library_when_parsed(tmp_path: Path) -> None:
    files = dag_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE % COMPUTE_LIBRARY, *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    loaded = json.loads(probe.stdout.strip().splitlines()[-1])

    assert loaded == {str(path): [] for path in files}
