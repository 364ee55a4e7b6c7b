"""The controller image's Dockerfile (it cannot be built here: no container runtime), checked by what it says."""

from __future__ import annotations

import re
import tomllib

from tests.fixtures.tools import CHART_DIR, REPO_ROOT

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [line.strip() for line in DOCKERFILE.splitlines() if line.strip() and not line.startswith("#")]


def test_image_is_built_on_python_3_11_slim_in_two_stages():
    bases = [line.split()[1] for line in INSTRUCTIONS if line.startswith("FROM")]
    assert bases == ["python:3.11-slim", "python:3.11-slim"]


def test_image_runs_as_the_numeric_non_root_user_the_chart_expects():
    (user,) = [line.split()[1] for line in INSTRUCTIONS if line.startswith("USER")]
    uid, _, gid = user.partition(":")
    values = (CHART_DIR / "values.yaml").read_text()
    assert uid.isdigit()
    assert int(uid) > 0
    assert f"runAsUser: {uid}" in values
    assert f"runAsGroup: {gid}" in values


def test_entrypoint_is_the_controller_script():
    assert 'ENTRYPOINT ["vmbackup-controller"]' in INSTRUCTIONS
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "vmbackup-controller" in scripts


def test_image_installs_the_locked_main_dependencies_only():
    syncs = [line for line in INSTRUCTIONS if line.startswith("RUN uv sync")]
    assert syncs
    assert all("--frozen" in line and "--no-default-groups" in line for line in syncs)
    assert not re.search(r"--group|--all-groups|--extra", DOCKERFILE)


def test_main_dependencies_do_not_pull_in_airflow():
    """What `uv sync --frozen --no-default-groups` installs: the lock's closure of the project's main dependencies."""
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    packages: dict[str, list[dict]] = {}
    for package in lock["package"]:
        packages.setdefault(package["name"], []).append(package)
    (project,) = packages["vmbackup-operator"]
    installed: set[str] = set()
    pending = list(project["dependencies"])
    while pending:
        dependency = pending.pop()
        for package in packages[dependency["name"]]:
            for extra in dependency.get("extra", []):
                pending += package.get("optional-dependencies", {}).get(extra, [])
            if dependency["name"] not in installed:
                pending += package.get("dependencies", [])
        installed.add(dependency["name"])
    assert {"kopf", "pydantic", "google-cloud-storage"} <= installed
    assert not {name for name in installed if name.startswith("apache-airflow")}


def test_build_context_leaves_out_local_state():
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for path in (".venv*", ".tools", ".git", "tests"):
        assert path in ignored
