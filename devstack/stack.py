"""Composer-in-a-box: the whole product loop on one machine, on loopback.

Each part is the real thing or the project's stand-in for a Google service, started in data-flow
order: the bucket (gcp-storage-emulator), Compute Engine (the simulator, seeded like the tutorial),
a real Airflow whose dags/ and plugins/ follow the bucket as Composer's do (BucketMirror; as late as Composer's
when ``timing`` models its sync delay and DAG listing interval, devstack/composer_timing.py), a
Kubernetes API (the cluster in KUBECONFIG when one is configured, else kmock with our CRDs), and
the controller as its own process, configured exactly as the Helm chart configures it in GKE.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gcp_storage_emulator.server import Server as StorageServer
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from devstack.airflow_local import LocalAirflow, free_port
from devstack.bucket_mirror import BucketMirror
from devstack.cluster import (
    TLS_OFF_NOTE,
    api_client,
    apply_crds,
    ensure_namespaces,
    example_namespaces,
    namespaces_note,
    tls_verification_off,
)
from devstack.cluster import example_policies as example_policies  # re-exported: bench/restore.py imports it here
from devstack.composer_timing import ComposerTiming
from devstack.gce_simulator import ComputeSimulator, Profile
from devstack.kube_local import LocalKubernetes
from devstack.kube_namespaces import NEW_CLUSTER_NAMESPACES
from vmbackup.model.run_signature import SIGNING_KEY_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT = "demo-project"
BACKUP_PROJECT = "demo-backups"  # where crds/examples/backup-project.yaml writes its snapshots
BUCKET = "local-composer-bucket"


class PortInUseError(RuntimeError):
    """A port asked for on the command line is taken; the message says which and what to do."""


@dataclass(frozen=True)
class StackPorts:
    """0 means: pick a free port."""

    bucket: int = 0
    compute: int = 0
    airflow: int = 0
    kubernetes: int = 0

    def check(self) -> None:
        for name, port in vars(self).items():
            if port and not port_is_free(port):
                raise PortInUseError(
                    f"port {port} (--{name}-port) is already in use; stop what uses it "
                    f"(`ss -ltnp 'sport = :{port}'`) or pick another port, or leave it out to choose a free one"
                )


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# VMs the shipped examples name, beyond the tutorial's wordpress-1-vm and the simulator's classic seed.
EXAMPLE_VMS: tuple[tuple[str, str, dict[str, str], list[dict[str, Any]] | None], ...] = (
    ("api-1", "us-central1-a", {"backup": "nightly", "env": "prod"}, None),
    ("api-2", "us-central1-b", {"backup": "nightly", "env": "prod"}, None),
    ("shop-web-1", "europe-west1-b", {"app": "shop", "tier": "web"}, None),
    ("shop-web-2", "europe-west1-c", {"app": "shop", "tier": "web"}, None),
    (
        "shop-app-1",
        "europe-west1-b",
        {"app": "shop", "tier": "app"},
        [{"name": "shop-app-1", "size_gb": 20}, {"name": "shop-app-1-data", "size_gb": 50, "device_name": "data"}],
    ),
    ("billing-db-1", "europe-west4-a", {"app": "billing"}, None),
    (
        "shop-db-1",
        "us-central1-a",
        {"app": "shop-db"},
        [{"name": "shop-db-1", "size_gb": 20}, {"name": "shop-db-data", "size_gb": 100, "region": "us-central1"}],
    ),
)


def seed_demo_world(compute: ComputeSimulator) -> None:
    """The tutorial's WordPress VM, the simulator's classic set, and every VM the shipped examples name."""
    compute.seed_classic(PROJECT)
    for name, zone, labels, disks in EXAMPLE_VMS:
        compute.add_instance(PROJECT, zone, name, labels=labels, disks=disks)


@dataclass
class LocalStack:
    """Start with start(), stop with stop() (also on any start-up failure: nothing is left behind)."""

    state_dir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    time_scale: float = 0.2
    poll_interval: float = 3.0
    use_kubeconfig: bool = True
    timing: ComposerTiming = field(default_factory=ComposerTiming.fast)
    airflow_startup_timeout: float = 600.0  # a bound for a loaded machine (minutes there), not an expectation
    echo: Callable[[str], None] = print
    # What start() brings up; the CLI, tests and the demo read these.
    storage_url: str = ""
    compute: ComputeSimulator | None = None
    airflow: LocalAirflow | None = None
    kube_url: str = ""
    kubeconfig: Path | None = None
    controller_log: Path | None = None
    # The key the controller signs restore runs with and the Airflow workers check (fresh for each stack)
    run_signing_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    _storage: StorageServer | None = None
    _mirror: BucketMirror | None = None
    _kube: LocalKubernetes | None = None
    _controller: subprocess.Popen[bytes] | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        self.ports.check()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_bucket()
            self._start_compute()
            self._start_airflow()
            self.start_kubernetes()
            self._start_controller()
        except BaseException:
            self.stop()
            raise
        self.write_env_file()
        return self

    def stop(self) -> None:
        """Stop everything in reverse order; safe to call twice and after a failed start."""
        if self._controller is not None and self._controller.poll() is None:
            self.echo("stopping the controller")
            self._controller.terminate()
            try:
                self._controller.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._controller.kill()
                self._controller.wait()
        self._controller = None
        self._stack.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- components ------------------------------------------------------------------------------------

    def _start_bucket(self) -> None:
        port = self.ports.bucket or free_port()
        # The emulator logs every 404 as an error in this process's terminal; a missing object is an answer.
        logging.getLogger("gcp_storage_emulator.storage").addFilter(_not_a_missing_object)
        self._storage = create_server("127.0.0.1", port, in_memory=True)
        self._storage.start()
        self._stack.callback(self._storage.stop)
        self.storage_url = f"http://127.0.0.1:{port}"
        # This process's clients (mirror, CLI) reach the emulator through the variable; put back what was there.
        previous = os.environ.get("STORAGE_EMULATOR_HOST")
        self._stack.callback(_restore_env, "STORAGE_EMULATOR_HOST", previous)
        os.environ["STORAGE_EMULATOR_HOST"] = self.storage_url
        self.storage_client().create_bucket(BUCKET)
        self.echo(f"[1/5] bucket        gs://{BUCKET} (gcp-storage-emulator at {self.storage_url})")

    def _start_compute(self) -> None:
        self.compute = ComputeSimulator(Profile.realistic(time_scale=self.time_scale), port=self.ports.compute)
        self.compute.start()
        self._stack.callback(self.compute.stop)
        seed_demo_world(self.compute)
        self.echo(
            f"[2/5] compute       Compute Engine simulator at {self.compute.base_url} "
            f"(realistic profile x{self.time_scale}; project {PROJECT}, wordpress-1-vm in us-central1-c "
            f"and {len(EXAMPLE_VMS) + 4} more VMs)"
        )

    def _start_airflow(self) -> None:
        composer_dir = self.state_dir / "composer"
        shutil.rmtree(composer_dir, ignore_errors=True)  # a mirror of this run's bucket, not of a previous one
        (composer_dir / "dags").mkdir(parents=True, exist_ok=True)
        (composer_dir / "plugins").mkdir(parents=True, exist_ok=True)
        self._mirror = BucketMirror(
            self.storage_client().bucket(BUCKET), composer_dir, sync_delay_seconds=self.timing.sync_delay_seconds
        )
        self._mirror.sync_once()
        self._mirror.start(interval_seconds=1.0)
        self._stack.callback(self._mirror.stop)
        assert self.compute is not None
        self.airflow = LocalAirflow(
            dags_folder=composer_dir / "dags",
            plugins_folder=composer_dir / "plugins",
            env={
                "VMBACKUP_COMPUTE_ENDPOINT": self.compute.base_url,
                **self.compute.profile.quota_window_env(),
                "GCS_BUCKET": BUCKET,  # what Composer sets on its workers
                "STORAGE_EMULATOR_HOST": self.storage_url,
                "VMBACKUP_POKE_INTERVAL_SECONDS": "2",
                "VMBACKUP_RETRY_DELAY_SECONDS": "5",
                SIGNING_KEY_ENV: self.run_signing_key,
            },
            home=self.state_dir / "airflow",
            venv=Path(sys.prefix),
            port=self.ports.airflow or None,
            startup_timeout=self.airflow_startup_timeout,
            min_file_process_interval=self.timing.min_file_process_interval_seconds,
            dag_list_interval=self.timing.dag_list_interval_seconds,
            echo=lambda line: self.echo(f"        airflow: {line}"),
        )
        self.echo("[3/5] airflow       starting a real Airflow (first start migrates its database)...")
        self.airflow.start()
        self._stack.callback(self.airflow.stop)
        self.echo(
            f"[3/5] airflow       {self.airflow.version} at {self.airflow.url} "
            f"(user {self.airflow.username}, password {self.airflow.password}); dags/ and plugins/ follow the bucket"
        )
        self.echo(f"        timing: {self.timing.describe()}")

    def start_kubernetes(self) -> None:
        """Step 4: the cluster in KUBECONFIG when it answers, else kmock; then the namespaces the examples use."""
        configured = os.environ.get("KUBECONFIG") if self.use_kubeconfig else None
        if configured and _cluster_answers(configured):
            self.kubeconfig = Path(configured)
            tls_off = tls_verification_off(self.kubeconfig)
            apply_crds(api_client(self.kubeconfig))
            self.kube_url = "the cluster in KUBECONFIG"
            self.echo(f"[4/5] kubernetes    {configured} (CRDs applied from crds/)")
            if tls_off:
                self.echo(f"                    {TLS_OFF_NOTE}")
        else:
            # A new cluster's namespaces only: the demo creates what the examples need, as it must on a real one.
            self._kube = LocalKubernetes(port=self.ports.kubernetes, namespaces=NEW_CLUSTER_NAMESPACES)
            self.kube_url = self._kube.start()
            self._stack.callback(self._kube.stop)
            self.kubeconfig = self.state_dir / "kubeconfig"
            self.kubeconfig.write_text(self._kube.kubeconfig())
            self.echo(
                f"[4/5] kubernetes    kmock at {self.kube_url} (no cluster configured); KUBECONFIG={self.kubeconfig}"
            )
        note = namespaces_note(ensure_namespaces(api_client(self.kubeconfig), example_namespaces()))
        if note:
            self.echo(f"                    {note}")

    def _start_controller(self) -> None:
        assert self.airflow is not None
        assert self.kubeconfig is not None
        grant = {"projects": [PROJECT], "backupProjects": [BACKUP_PROJECT]}
        tenancy = {"namespaces": {ns: grant for ns in example_namespaces()}}
        env = {
            **self.controller_env(),
            "VMBACKUP_TENANCY": json.dumps(tenancy),
            "VMBACKUP_POLL_INTERVAL": str(self.poll_interval),
            "VMBACKUP_METRICS_PORT": str(free_port()),
            "VMBACKUP_LIVENESS": f"http://127.0.0.1:{free_port()}/healthz",
            "VMBACKUP_LOG_FORMAT": "plain",
        }
        self.controller_log = self.state_dir / "controller.log"
        log = self.controller_log.open("wb")
        self._stack.callback(log.close)
        self._controller = subprocess.Popen(
            [sys.executable, "-m", "controller"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.echo(f"[5/5] controller    pid {self._controller.pid}, log {self.controller_log}")

    # -- what users and tests use ----------------------------------------------------------------------

    def as_created(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The object to create: as it is. The local API assigns uid, resourceVersion and the rest itself now, as
        a real API server does; kept for bench/restore.py, which calls it."""
        return doc

    def kube_requests(self) -> list[Any]:
        """The requests the local Kubernetes API served (empty on a real cluster): kmock keeps them."""
        return self._kube.served() if self._kube is not None else []

    def storage_client(self) -> storage.Client:
        return storage.Client(project=PROJECT, credentials=AnonymousCredentials())

    def controller_env(self) -> dict[str, str]:
        """The configuration the controller and vmbackupctl share (what Helm sets in GKE)."""
        assert self.airflow is not None
        assert self.kubeconfig is not None
        assert self.compute is not None
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "STORAGE_EMULATOR_HOST": self.storage_url,
            "VMBACKUP_BUCKET": BUCKET,
            "VMBACKUP_AIRFLOW_URL": self.airflow.url,
            "VMBACKUP_AIRFLOW_AUTH": "jwt" if self.airflow.major >= 3 else "basic",
            "VMBACKUP_AIRFLOW_USERNAME": self.airflow.username,
            "VMBACKUP_AIRFLOW_PASSWORD": self.airflow.password,
            "VMBACKUP_COMPUTE_ENDPOINT": self.compute.base_url,
            SIGNING_KEY_ENV: self.run_signing_key,
        }

    def write_env_file(self) -> Path:
        """`source .devstack-state/env` in another shell to point vmbackupctl and kubectl at this stack."""
        path = self.state_dir / "env"
        lines = [f"export {k}={_shell_quote(v)}" for k, v in self.controller_env().items()]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    def controller_running(self) -> bool:
        return self._controller is not None and self._controller.poll() is None

    def controller_log_tail(self, lines: int = 30) -> str:
        if self.controller_log is None or not self.controller_log.exists():
            return ""
        return "\n".join(self.controller_log.read_text(errors="replace").splitlines()[-lines:])

    @contextlib.contextmanager
    def cli_environment(self) -> Iterator[None]:
        """Run vmbackupctl in this process against the stack (it reads the same variables as the controller)."""
        saved = {k: os.environ.get(k) for k in self.controller_env()}
        os.environ.update(self.controller_env())
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _not_a_missing_object(record: logging.LogRecord) -> bool:
    """False for the two lines gcp-storage-emulator logs when asked for an object that does not exist."""
    return record.funcName != "get_file"


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _cluster_answers(kubeconfig: str) -> bool:
    """True when KUBECONFIG names a cluster that answers; the demo falls back to kmock otherwise."""
    kubectl = REPO_ROOT / ".tools" / "bin" / "kubectl"
    if not kubectl.exists() or not Path(kubeconfig).exists():
        return False
    result = subprocess.run(
        [str(kubectl), "--kubeconfig", kubeconfig, "version", "--request-timeout=5s", "-o", "json"],
        capture_output=True,
        timeout=30,
    )
    return result.returncode == 0 and b"serverVersion" in result.stdout


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def default_state_dir() -> Path:
    return REPO_ROOT / ".devstack-state"


def wait_until(check: Callable[[], Any], *, within: float, what: str, interval: float = 0.5) -> Any:
    """Poll a condition with a deadline (the stack's parts are other processes: there is no event to await)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {within:.0f}s")
        time.sleep(interval)


def temporary_state_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="vmbackup-devstack-"))
