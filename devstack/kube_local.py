"""A Kubernetes API for the local stack when no cluster is configured: kmock's emulator on loopback.

kmock (by kopf's author) keeps objects, serves list/watch/patch and the status subresource, which is
all the controller and vmbackupctl need. It runs in a background thread with its own event loop, so
the controller (a separate process) and the CLI reach it over HTTP through a kubeconfig, exactly as
they would reach a real cluster. The resources it serves are read from the CRD files the project
ships, so a new CRD needs no change here.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import kmock
import yaml

from devstack.kube_apiserver import ApiServerEmulator
from devstack.kube_tables import printer_columns

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CRDS = tuple(sorted((REPO_ROOT / "crds").glob("*.yaml")))


class LongLivedApiServer(ApiServerEmulator):
    """The local API of a stack that runs for hours: each request, once answered, leaves kmock's request history.

    kmock finds a request's reaction by filtering every request it has served so far (its views are filters over
    that history), so each request cost more the longer the stack ran: a profile of the demo found most of its
    test process's CPU there. Answered requests are kept in ``answered`` for served() (the RBAC checks) instead.
    """

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.answered: list[kmock.Request] = []

    async def _handle(self, request: Any) -> Any:
        try:
            return await super()._handle(request)
        finally:
            in_flight = self._requests
            for index in range(len(in_flight) - 1, -1, -1):
                if in_flight[index] is request:  # by identity: two identical GETs are two requests
                    del in_flight[index]
                    break
            self.answered.append(request)

    def served(self) -> list[kmock.Request]:
        return [*self.answered, *self]


def resources_from_crds(paths: Iterable[Path]) -> dict[str, kmock.ResourceInfo]:
    """`group/version/plural` -> what kmock must know to serve it, from CustomResourceDefinition files."""
    resources: dict[str, kmock.ResourceInfo] = {}
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            names = spec["names"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                resources[f"{spec['group']}/{version['name']}/{names['plural']}"] = kmock.ResourceInfo(
                    kind=names["kind"],
                    singular=names.get("singular", names["kind"].lower()),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    verbs={"list", "watch", "get", "create", "patch", "update", "delete"},
                    subresources=set(version.get("subresources") or {}),
                )
    return resources


class LocalKubernetes:
    """kmock serving the built-in resources plus our CRDs, on 127.0.0.1, until stop()."""

    def __init__(
        self,
        crd_paths: Iterable[Path] = DEFAULT_CRDS,
        host: str = "127.0.0.1",
        port: int = 0,
        emulator: type[LongLivedApiServer] = LongLivedApiServer,
        namespaces: Iterable[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.crd_paths = tuple(crd_paths)
        self.emulator_class = emulator
        # None: objects may be created in any namespace (kmock's way); else only in these and those created since.
        self.namespaces = None if namespaces is None else tuple(namespaces)
        self.ssl_context = ssl_context  # HTTPS, as a real cluster serves (None: plain HTTP on loopback)
        self.host = host
        self.port = port
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._emulator: LongLivedApiServer | None = None

    def start(self, timeout: float = 30) -> str:
        self._thread = threading.Thread(target=self._serve, name="local-kubernetes", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"the local Kubernetes API did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"the local Kubernetes API could not start: {self._error}") from self._error
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> LocalKubernetes:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def served(self) -> list[kmock.Request]:
        """Every request served so far (kmock keeps them), e.g. to check them against the chart's RBAC."""
        return self._emulator.served() if self._emulator is not None else []

    def kubeconfig(self, namespace: str = "default") -> str:
        """A kubeconfig for this server: what KUBECONFIG points the controller and the CLI at."""
        cluster: dict[str, Any] = {"server": self.url}
        user: dict[str, Any] = {}
        if self.ssl_context is not None:  # a self-signed certificate, as many test clusters have
            cluster["insecure-skip-tls-verify"] = True
            user["token"] = "local"  # over TLS with no credentials, kubectl prompts for a user name
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "vmbackup-local",
            "clusters": [{"name": "vmbackup-local", "cluster": cluster}],
            "contexts": [
                {
                    "name": "vmbackup-local",
                    "context": {"cluster": "vmbackup-local", "user": "local", "namespace": namespace},
                }
            ],
            "users": [{"name": "local", "user": user}],
        }
        return yaml.safe_dump(config, sort_keys=False)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to start(); the thread must not die silently
            self._error = exc
            self._started.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        async with self.emulator_class() as emulator:
            self._emulator = emulator
            emulator.resources.load_bundled()
            for key, info in resources_from_crds(self.crd_paths).items():
                emulator.resources[key] = info
            emulator.printer_columns = printer_columns(self.crd_paths)
            if self.namespaces is not None:
                emulator.seed_namespaces(self.namespaces)
            server_class = _https_server(self.ssl_context) if self.ssl_context else aiohttp.test_utils.RawTestServer
            async with kmock.Server(
                emulator, host=self.host, port=self.port or None, server_cls=server_class
            ) as server:
                self.url = str(server.url).rstrip("/")
                self._started.set()
                await self._stopping.wait()


def _https_server(context: ssl.SSLContext) -> type[aiohttp.test_utils.RawTestServer]:
    """kmock's server class (aiohttp's RawTestServer) listening with TLS."""

    class HttpsServer(aiohttp.test_utils.RawTestServer):
        async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
            await super().start_server(loop=loop, ssl=context, **kwargs)

    return HttpsServer
