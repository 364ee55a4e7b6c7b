"""The HTTP front of the simulator: Compute Engine REST v1 routes (routes.py) and the ``/_sim/...`` control plane.

A stdlib ``ThreadingHTTPServer`` (one thread per connection, HTTP/1.1 keep-alive) so that many
``operations.wait`` long-polls can be parked at once while other calls are served. ``ComputeSimulator`` (simulator.py)
owns the server; the control plane's routes are its ``control`` method.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .errors import ApiError
from .faults import Fault
from .routes import OPERATION_METHODS, ROUTES, Handler, admit, fault_error
from .state import World


class Served(Protocol):
    """What the HTTP server needs of the simulator it fronts."""

    world: World

    def control(self, verb: str, parts: list[str], body: dict[str, Any]) -> tuple[int, Any]: ...


def _call_record(
    verb: str,
    method: str,
    path: str,
    params: dict[str, str],
    query: dict[str, str],
    body: Any,
    status: int,
    started: float,
    fault: str | None,
) -> dict[str, Any]:
    return {
        "time": started,
        "method": method,
        "http_method": verb,
        "path": path,
        "params": params,
        "query": query,
        "body": body or None,  # what was asked for (e.g. an inserted VM's network interfaces)
        "status": status,
        "fault": fault,
        "duration": time.time() - started,
    }


def _call(
    world: World,
    handler: Handler,
    method: str,
    params: dict[str, str],
    query: dict[str, str],
    body: dict[str, Any],
    faults: list[Fault],
) -> tuple[int, Any, str | None]:
    """(status, payload, fault note) of an admitted call, its faults applied."""
    if faults and faults[0].action == "http_error":
        error = fault_error(faults[0], method, params["project"])
        return error.code, error.body(), f"http_error:{faults[0].status}"
    for fault in faults:
        if fault.action == "slow" and method not in OPERATION_METHODS:
            time.sleep(world.profile.scaled(fault.extra_seconds))
    op_faults = faults if method in OPERATION_METHODS else []
    note = ",".join(f.action for f in faults) if faults else None
    try:
        return 200, handler(world, params, query, body, op_faults), note
    except ApiError as exc:
        return exc.code, exc.body(), note


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], simulator: Served) -> None:
        self.simulator = simulator
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        raw = self.rfile.read(length)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ApiError(400, "parseError", f"Invalid JSON payload received. {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "parseError", "Invalid JSON payload received: expected an object")
        return data

    def _handle(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            body = self._body()
        except ApiError as exc:
            self._send(exc.code, exc.body())
            return
        if split.path.startswith("/_sim/") or split.path == "/_sim":
            parts = [p for p in split.path.split("/") if p][1:]  # drop "_sim"
            self._send(*self.server.simulator.control(self.command, parts, body))
            return
        self._api(split.path, query, body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle  # noqa: N815

    def _api(self, path: str, query: dict[str, str], body: dict[str, Any]) -> None:
        world = self.server.simulator.world
        for verb, pattern, method, target_param, handler in ROUTES:
            match = pattern.match(path)
            if match is None or verb != self.command:
                continue
            params = match.groupdict()
            started = time.time()
            latency = world.profile.scaled(world.profile.api_latency)
            if latency:
                time.sleep(latency)
            try:
                admit(world, method, params)
            except ApiError as exc:
                world.record(_call_record(self.command, method, path, params, query, body, exc.code, started, "quota"))
                self._send(exc.code, exc.body())
                return
            faults = world.match_faults(method, params.get(target_param) if target_param else None)
            status, payload, note = _call(world, handler, method, params, query, body, faults)
            world.record(_call_record(self.command, method, path, params, query, body, status, started, note))
            self._send(status, payload)
            return
        self._unknown(world, path, query)

    def _unknown(self, world: World, path: str, query: dict[str, str]) -> None:
        if any(pattern.match(path) for _, pattern, _, _, _ in ROUTES):
            error = ApiError(405, "httpMethodNotAllowed", f"HTTP method {self.command} is not supported by {path}")
        else:
            error = ApiError(404, "notFound", f"The simulator does not serve {self.command} {path}")
        record = _call_record(self.command, "unknown", path, {}, query, None, error.code, time.time(), None)
        record.pop("body")
        record["duration"] = 0.0
        world.record(record)
        self._send(error.code, error.body())
