"""What a LocalAirflow needs from the machine: its Airflow's version, free ports, and every process it started."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

MARKER_ENV = "VMBACKUP_LOCAL_AIRFLOW"


class AirflowStartError(RuntimeError):
    """Airflow did not come up; the message carries the tail of each component's log."""


class PortInUseError(AirflowStartError):
    """The requested API port is taken by another process."""


def airflow_version(python: Path) -> str:
    """The apache-airflow version installed for an interpreter, read without importing Airflow (fast)."""
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('apache-airflow'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise AirflowStartError(
            f"apache-airflow is not installed for {python}; sync that venv (scripts/bootstrap.sh) or pass venv=..."
        )
    return out.stdout.strip()


def configured_value(bin_dir: Path, env: Mapping[str, str], section: str, key: str) -> str:
    """What Airflow itself resolves an option to under ``env`` (`airflow config get-value`), not what we meant."""
    out = subprocess.run(
        [str(bin_dir / "airflow"), "config", "get-value", section, key],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if out.returncode != 0:
        raise AirflowStartError(f"`airflow config get-value {section} {key}` failed: {out.stderr.strip()[-500:]}")
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUseError(
                f"port {port} on 127.0.0.1 is in use: stop what listens there or pass port=None to pick a free one"
            ) from None


def instance_processes(marker: str, home: Path, roots: Iterable[int] = ()) -> list[int]:
    """Live (non-zombie) processes of one LocalAirflow, found three ways because each alone can miss some.

    The marker variable is inherited by every descendant, but setproctitle (API server, executor workers, task
    runners) overwrites the memory /proc/PID/environ shows; the working directory (every component starts in
    AIRFLOW_HOME and Airflow never chdirs) survives that; descendants of the given root pids cover the rest.
    """
    needle = f"{MARKER_ENV}={marker}".encode()
    parents: dict[int, int] = {}
    ours: set[int] = set(roots)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            if fields[0] in ("Z", "X"):
                continue
            parents[pid] = int(fields[1])
            if needle in (entry / "environ").read_bytes().split(b"\0") or Path(os.readlink(entry / "cwd")) == home:
                ours.add(pid)
        except (OSError, IndexError, ValueError):
            continue
    changed = True
    while changed:
        children = {pid for pid, ppid in parents.items() if ppid in ours and pid not in ours}
        ours |= children
        changed = bool(children)
    return sorted(pid for pid in ours if pid in parents)
