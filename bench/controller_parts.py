"""The moving parts of the controller benchmark: a request-counting proxy, the controller process, kmock over HTTP.

Kept apart from bench/controller.py (the phases) and bench/controller_report.py (the table) so each piece can be
read on its own.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kmock._internal.apps
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.airflow_local import free_port
from vmbackup.model.policy import API_GROUP, API_VERSION, KIND, PLURAL

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"}
)


@dataclass(frozen=True)
class ProxiedRequest:
    at: float  # time.monotonic() when the answer was sent back
    method: str
    path: str  # without the query string

    @property
    def kind(self) -> str:
        """pause (PATCH of one DAG), trigger, auth, or poll (everything the batched status query sends)."""
        if self.path.endswith("/auth/token"):
            return "auth"
        if self.method == "PATCH" and "/dags/" in self.path:
            return "pause"
        if self.method == "POST" and self.path.endswith("/dagRuns") and "/dags/~/" not in self.path:
            return "trigger"
        return "poll"


class CountingProxy:
    """Forwards every request to Airflow and records it: calls are counted on the wire, whoever sends them."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> str:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the controller's aiohttp session expects

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    self.send_response(answer.status, answer.reason)
                    for key, value in answer.getheaders():
                        if key.lower() not in HOP_BY_HOP | {"content-length"}:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the controller gave up (timeout, shutdown); Airflow was asked
                finally:
                    upstream.close()
                with proxy._lock:
                    proxy.requests.append(ProxiedRequest(time.monotonic(), self.command, self.path.split("?")[0]))

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward  # noqa: N815 (http.server's names)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="counting-proxy", daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def between(self, start: float, end: float) -> list[ProxiedRequest]:
        with self._lock:
            return [r for r in self.requests if start < r.at <= end]

    def count_since(self, kind: str, start: float) -> int:
        """Requests of one kind answered after ``start``."""
        with self._lock:
            return sum(1 for r in self.requests if r.at > start and r.kind == kind)


class ControllerProcess:
    """``python -m controller`` as its own process, configured by VMBACKUP_* like the Helm chart does."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.env = {
            **os.environ,
            **env,
            "VMBACKUP_METRICS_PORT": str(self.metrics_port),
            "VMBACKUP_LIVENESS": f"http://127.0.0.1:{self.liveness_port}/healthz",
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()

    def start(self) -> ControllerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controller"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._http.close()

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"the controller exited; last lines of {self.log_path}:\n{tail}")

    def wait_live(self, timeout: float = 60) -> None:
        """Until kopf's liveness endpoint answers: the operator runs and its start-up handler is done."""

        def live() -> bool:
            try:
                return self._http.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(live, within=timeout, what="the controller's liveness endpoint", interval=0.1, alive=self)

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self._http.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples named ``name`` whose labels include ``labels`` (0 when none)."""
        wanted = set(labels.items())
        return sum(v for (n, sample_labels), v in self.samples().items() if n == name and wanted <= set(sample_labels))

    def peak_rss_mib(self) -> float:
        """VmHWM: the process's resident-set high-water mark, as the kernel keeps it."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")


class KubeApi:
    """What a user does with kubectl, as HTTP calls to kmock (create and patch VMBackupPolicies)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = requests.Session()

    def close(self) -> None:
        self._http.close()

    def _collection(self, namespace: str) -> str:
        return f"{self.url}/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{PLURAL}"

    def create_policy(self, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
        # kmock stores what it is given: add the metadata a real API server assigns (kopf relies on it).
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"bench-{namespace}-{name}",
                "generation": 1,
                "resourceVersion": "1",
                "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            "spec": dict(spec),
        }
        answer = self._http.post(self._collection(namespace), json=body, timeout=30)
        answer.raise_for_status()

    def patch_spec(self, namespace: str, name: str, spec: Mapping[str, Any], generation: int) -> None:
        """A spec change bumps metadata.generation, as the API server would."""
        body = json.dumps({"metadata": {"generation": generation}, "spec": dict(spec)})
        answer = self._http.patch(
            f"{self._collection(namespace)}/{name}",
            data=body,
            headers={"Content-Type": "application/merge-patch+json"},
            timeout=30,
        )
        answer.raise_for_status()


KMOCK_HISTORY = 100  # requests kmock keeps for assertions; more than are ever in flight at once here


def bound_kmock_history(limit: int = KMOCK_HISTORY) -> None:
    """Make kmock's cost per request constant, as a real API server's is.

    kmock records every request for test assertions and matches each new one against that whole
    history (to find its reaction), so each request costs time proportional to all requests so far:
    ~100 ms after a few thousand, which would make kmock, not the controller, the figure being
    measured. The bench asserts nothing on the history, so only the newest ``limit`` requests are
    kept (objects, watches and answers are untouched). Idempotent; affects this process only.
    """
    handler = kmock._internal.apps.RawHandler
    if getattr(handler, "_bench_bounded", False):
        return
    original = handler.__call__

    async def bounded_call(self: Any, raw_request: Any) -> Any:
        history: list[Any] = self._requests
        if len(history) > 2 * limit:
            del history[:-limit]
        return await original(self, raw_request)

    handler.__call__ = bounded_call  # type: ignore[method-assign]
    handler._bench_bounded = True  # type: ignore[attr-defined]


def wait_for(
    check: Callable[[], Any],
    *,
    within: float,
    what: str,
    interval: float = 0.2,
    alive: ControllerProcess | None = None,
) -> Any:
    """Poll a condition with a deadline (the parts are other processes: there is no event to await)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if alive is not None:
            alive.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {within:.0f}s")
        time.sleep(interval)
