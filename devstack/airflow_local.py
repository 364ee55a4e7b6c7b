"""A real Airflow on loopback: the stand-in for Composer's Airflow in the bench, the local demo and API tests.

It runs what `airflow standalone` runs (scheduler, DAG processor, API server, triggerer; Airflow 2: scheduler,
webserver, triggerer) as separate processes of a given venv's `airflow` binary, with its own AIRFLOW_HOME and
sqlite DB, so several instances can run side by side. Airflow 3 allows LocalExecutor on sqlite (standalone forces
it), which gives real task parallelism without a DB server; Airflow 2.10 refuses LocalExecutor on sqlite, so there
the executor is SequentialExecutor (one task at a time) unless a `sql_alchemy_conn` to a server DB is passed in env.

Task supervisors move tasks into new process groups, so a process-group kill alone would miss them: `stop()` ends
every process of the instance (see `instance_processes`) and `leftover_processes()` lets tests prove nothing was
left behind.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import requests

# The REST client and the process helpers lived here before; importable from here still (bench, scripts, tests).
from devstack.airflow_processes import (
    MARKER_ENV,
    AirflowStartError,
    PortInUseError,
    airflow_version,
    ensure_port_free,
    free_port,
    instance_processes,
)
from devstack.airflow_rest import TERMINAL_RUN_STATES, AirflowApi, AirflowApiError, DagRun, parse_time
from devstack.airflow_sqlite import sqlite_conn, use_write_ahead_log
from devstack.composer_timing import AIRFLOW_MIN_FILE_PROCESS_INTERVAL_SECONDS, FAST_LIST_INTERVAL_SECONDS

__all__ = [
    "DEFAULT_USERNAME",
    "HEALTHY",
    "MARKER_ENV",
    "TERMINAL_RUN_STATES",
    "AirflowApi",
    "AirflowApiError",
    "AirflowStartError",
    "DagRun",
    "LocalAirflow",
    "PortInUseError",
    "airflow_version",
    "ensure_port_free",
    "free_port",
    "instance_processes",
    "parse_time",
]

DEFAULT_USERNAME = "admin"
HEALTHY = "healthy"


@dataclass
class _Component:
    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None


class LocalAirflow:
    """Airflow's components on loopback with their own home; use as a context manager or start()/stop()."""

    def __init__(
        self,
        dags_folder: str | os.PathLike[str],
        plugins_folder: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        venv: str | os.PathLike[str] | None = None,
        port: int | None = None,
        parallelism: int = 16,
        username: str = DEFAULT_USERNAME,
        password: str | None = None,
        startup_timeout: float = 240.0,
        stop_timeout: float = 20.0,
        min_file_process_interval: int = AIRFLOW_MIN_FILE_PROCESS_INTERVAL_SECONDS,
        dag_list_interval: int | None = None,
        reuse_migrated_db: bool = True,
        echo: Callable[[str], None] | None = None,
    ):
        self.dags_folder = Path(dags_folder).resolve()
        self.plugins_folder = Path(plugins_folder).resolve() if plugins_folder else None
        self.extra_env = dict(env or {})
        self._own_home = home is None
        self.home = Path(home).resolve() if home else Path(tempfile.mkdtemp(prefix="airflow-home-"))
        self.venv = Path(venv).resolve() if venv else Path(sys.prefix)
        self.bin_dir = self.venv / "bin"
        self.requested_port = port
        self.port = port or 0
        self.parallelism = parallelism
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.min_file_process_interval = min_file_process_interval
        # How often the DAG processor lists the dags folder for new files (devstack/composer_timing.py).
        self.dag_list_interval = dag_list_interval or FAST_LIST_INTERVAL_SECONDS
        self.reuse_migrated_db = reuse_migrated_db
        self.echo = echo or (lambda line: None)
        self.marker = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.version = ""
        self.executor = ""
        self._components: list[_Component] = []
        self._api: AirflowApi | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0]) if self.version else 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> AirflowApi:
        if self._api is None:
            raise RuntimeError("LocalAirflow is not started; call start() or use it as a context manager")
        return self._api

    @property
    def logs_dir(self) -> Path:
        return self.home / "component-logs"

    def start(self) -> LocalAirflow:
        """Migrate the DB, start every component and wait until /health says all are healthy."""
        airflow_bin = self.bin_dir / "airflow"
        if not airflow_bin.exists():
            raise AirflowStartError(f"no airflow binary at {airflow_bin}; pass venv= a venv with apache-airflow")
        if not self.dags_folder.is_dir():
            raise AirflowStartError(f"dags_folder {self.dags_folder} is not a directory; create it first")
        if self.plugins_folder is not None and not self.plugins_folder.is_dir():
            raise AirflowStartError(f"plugins_folder {self.plugins_folder} is not a directory")
        if self.requested_port is not None:
            ensure_port_free(self.requested_port)
        else:
            self.port = free_port()
        self.version = airflow_version(self.bin_dir / "python")
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        env = self.environment()
        self.echo(f"airflow {self.version} ({self.executor}) home={self.home} url={self.url}")
        try:
            self._prepare_database(env)
            if self.major < 3:
                self._run_once("create-user", self._airflow2_user_args(), env)
            for component in self._component_list():
                self._spawn(component, env)
            self._api = AirflowApi(self.url, self.username, self.password, self.major)
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.echo(f"airflow is healthy at {self.url} (user {self.username})")
        return self

    def stop(self) -> None:
        """Terminate every process this instance started, including task processes in other process groups.

        Ctrl-C is held back until stopping is done, so an impatient second Ctrl-C cannot orphan Airflow.
        """
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if in_main_thread else None
        try:
            self._stop()
        finally:
            if previous is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _stop(self) -> None:
        if self._api is not None:
            self._api.close()  # an open keep-alive connection holds the API server's graceful shutdown
        survivors = self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while survivors and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.2)
            survivors = self.leftover_processes()
        if survivors:
            self._signal_all(signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while self.leftover_processes() and time.monotonic() < kill_deadline:
                self._reap()
                time.sleep(0.1)
        self._reap()
        for component in self._components:
            if component.process is not None and component.process.poll() is None:
                component.process.wait(timeout=5)
        self._components = []
        self._api = None

    def cleanup(self) -> None:
        """Stop, and remove the home directory if this instance created it."""
        self.stop()
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def leftover_processes(self) -> list[int]:
        """Processes of this instance still alive (empty after stop())."""
        roots = [c.process.pid for c in self._components if c.process is not None and c.process.poll() is None]
        return instance_processes(self.marker, self.home, roots)

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    # -- logs -------------------------------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of each component's log, for error messages."""
        parts = []
        for path in sorted(self.logs_dir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no component logs)"

    # -- internals --------------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """Airflow's configuration as environment variables: the only place it is set (no airflow.cfg edits).

        Call it after start() (it depends on the Airflow version found then): tests ask Airflow what it makes of it.
        """
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != MARKER_ENV}
        self.executor = "LocalExecutor" if self.major >= 3 else "SequentialExecutor"
        config = self._core_config(inherited)
        if self.plugins_folder is not None:
            config["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(self.plugins_folder)
            # Composer puts plugins/ on sys.path for workers and parsing alike; do the same.
            config["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.plugins_folder), inherited.get("PYTHONPATH")) if p
            )
        config.update(self._api_config())
        env = {**inherited, **config, **self.extra_env}
        if "AIRFLOW__CORE__EXECUTOR" in self.extra_env:
            self.executor = self.extra_env["AIRFLOW__CORE__EXECUTOR"]
        return env

    def _core_config(self, inherited: Mapping[str, str]) -> dict[str, str]:
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(self.parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlite_conn(self.home / "airflow.db"),  # with its lock wait
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": str(self.min_file_process_interval),
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": str(self.dag_list_interval),  # Airflow 2.10's name
            # A rewritten file is parsed again at once, whatever min_file_process_interval says (Airflow's
            # default, pinned: devstack/composer_timing.py relies on it).
            "AIRFLOW__SCHEDULER__FILE_PARSING_SORT_MODE": "modified_time",  # Airflow 2.10's name
            "AIRFLOW__DAG_PROCESSOR__FILE_PARSING_SORT_MODE": "modified_time",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            # Patience on a busy machine: slow DAG imports and slow API answers must not fail tasks.
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS": "10",
            "NO_COLOR": "1",
            MARKER_ENV: self.marker,
            "PATH": f"{self.bin_dir}{os.pathsep}{inherited.get('PATH', os.defpath)}",
            "PYTHONUNBUFFERED": "1",
        }

    def _api_config(self) -> dict[str, str]:
        """The API server behind the simple auth manager (Airflow 3), or the webserver with basic auth (Airflow 2)."""
        if self.major < 3:
            return {
                "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(self.port),
                "AIRFLOW__WEBSERVER__BASE_URL": self.url,
                "AIRFLOW__WEBSERVER__WORKERS": "1",
                "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_urlsafe(24),
                "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.basic_auth",
            }
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}) + "\n")
        passwords.chmod(0o600)
        return {
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(self.dag_list_interval),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(self.min_file_process_interval),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(self.home / "bundles"),
        }

    def _prepare_database(self, env: Mapping[str, str]) -> None:
        """Copy a migrated DB of this Airflow version when one is cached (saves ~15 s a start), else migrate."""
        database = self.home / "airflow.db"
        cached = Path(tempfile.gettempdir()) / "vmbackup-airflow-db" / f"airflow-{self.version}.db"
        if database.exists() or not self.reuse_migrated_db:
            self._run_once("db-migrate", ["db", "migrate"], env)
        elif cached.exists():
            shutil.copyfile(cached, database)
        else:
            self._run_once("db-migrate", ["db", "migrate"], env)
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
            shutil.copyfile(database, partial)
            partial.replace(cached)
        use_write_ahead_log(database)  # readers no longer block the scheduler's writes

    def _airflow2_user_args(self) -> list[str]:
        names = ["--firstname", "Local", "--lastname", "Admin", "--email", f"{self.username}@localhost"]
        return ["users", "create", "--username", self.username, "--password", self.password, "--role", "Admin", *names]

    def _component_list(self) -> list[_Component]:
        if self.major >= 3:
            return [
                _Component("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)]),
                _Component("scheduler", ["scheduler"]),
                _Component("dag-processor", ["dag-processor"]),
                _Component("triggerer", ["triggerer"]),
            ]
        return [
            _Component("webserver", ["webserver", "--hostname", "127.0.0.1", "--port", str(self.port)]),
            _Component("scheduler", ["scheduler"]),
            _Component("triggerer", ["triggerer"]),
        ]

    def _run_once(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        log_path = self.logs_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.run(
                [str(self.bin_dir / "airflow"), *args],
                env=env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=self.startup_timeout,
                check=False,
            )
        if proc.returncode != 0:
            raise AirflowStartError(f"`airflow {' '.join(args[:2])}` failed ({proc.returncode}):\n{self.log_tail()}")

    def _spawn(self, component: _Component, env: Mapping[str, str]) -> None:
        log = (self.logs_dir / f"{component.name}.log").open("wb")
        group = self._components[0].process.pid if self._components and self._components[0].process else 0
        try:
            component.process = subprocess.Popen(
                [str(self.bin_dir / "airflow"), *component.args],
                env=env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=group,
            )
        finally:
            log.close()
        self._components.append(component)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last: object = "no answer yet"
        while time.monotonic() < deadline:
            for component in self._components:
                if component.process is not None and component.process.poll() is not None:
                    raise AirflowStartError(
                        f"airflow {component.name} exited with {component.process.returncode} during start-up:\n"
                        f"{self.log_tail()}"
                    )
            try:
                health = self.api.health()
            except (requests.RequestException, ValueError) as exc:
                last = exc
            else:
                last = health
                if all((health.get(part) or {}).get("status") == HEALTHY for part in self._health_parts()):
                    return
            time.sleep(0.5)
        raise AirflowStartError(
            f"airflow at {self.url} not healthy within {self.startup_timeout:.0f}s (last: {last}):\n{self.log_tail()}"
        )

    def _health_parts(self) -> tuple[str, ...]:
        if self.major >= 3:
            return ("metadatabase", "scheduler", "dag_processor", "triggerer")
        return ("metadatabase", "scheduler", "triggerer")

    def _signal_all(self, sig: signal.Signals) -> list[int]:
        if self._components and self._components[0].process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._components[0].process.pid, sig)
        pids = self.leftover_processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        return pids

    def _reap(self) -> None:
        for component in self._components:
            if component.process is not None:
                component.process.poll()
