"""The HTTP front of the simulator: Compute Engine REST v1 routes and the ``/_sim/...`` control plane.

A stdlib ``ThreadingHTTPServer`` (one thread per connection, HTTP/1.1 keep-alive) so that many
``operations.wait`` long-polls can be parked at once while other calls are served.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import devices, instant_snapshots, power, presets, quotas
from .errors import rate_limit_exceeded
from .faults import Fault
from .profile import Profile
from .state import ApiError, World

Handler = Callable[[World, dict[str, str], dict[str, str], dict[str, Any], list[Fault]], Any]

_P = r"(?P<project>[^/]+)"
_Z = r"(?P<zone>[^/]+)"
_R = r"(?P<region>[^/]+)"
_BASE = r"/compute/v1/projects/" + _P


def _page(items: list[dict[str, Any]], query: dict[str, str], kind: str, self_link: str) -> dict[str, Any]:
    start = int(query.get("pageToken") or 0)
    size = int(query.get("maxResults") or 500)
    page = items[start : start + size]
    body: dict[str, Any] = {"kind": kind, "id": self_link, "items": page, "selfLink": self_link}
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return body


def _list_instances(w: World, p: dict[str, str], q: dict[str, str], b: dict[str, Any], f: list[Fault]) -> Any:
    items = w.list_instances(p["project"], p["zone"], q.get("filter"))
    return _page(items, q, "compute#instanceList", f"projects/{p['project']}/zones/{p['zone']}/instances")


def _aggregated_instances(w: World, p: dict[str, str], q: dict[str, str], b: dict[str, Any], f: list[Fault]) -> Any:
    scoped = w.aggregated_instances(p["project"], q.get("filter"))
    items: dict[str, Any] = {}
    for scope, instances in scoped.items():
        if instances:
            items[scope] = {"instances": instances}
        else:
            items[scope] = {
                "warning": {
                    "code": "NO_RESULTS_ON_PAGE",
                    "message": "There are no results for scope 'zones/{}' on this page.".format(scope.split("/")[1]),
                    "data": [{"key": "scope", "value": scope}],
                }
            }
    return {
        "kind": "compute#instanceAggregatedList",
        "id": f"projects/{p['project']}/aggregated/instances",
        "items": items,
        "selfLink": f"projects/{p['project']}/aggregated/instances",
    }


def _list_disks(w: World, p: dict[str, str], q: dict[str, str], b: dict[str, Any], f: list[Fault]) -> Any:
    items = w.list_disks(p["project"], p["zone"], q.get("filter"))
    return _page(items, q, "compute#diskList", f"projects/{p['project']}/zones/{p['zone']}/disks")


def _list_snapshots(w: World, p: dict[str, str], q: dict[str, str], b: dict[str, Any], f: list[Fault]) -> Any:
    items = w.list_snapshots(p["project"], q.get("filter"))
    return _page(items, q, "compute#snapshotList", f"projects/{p['project']}/global/snapshots")


def _scope(p: dict[str, str]) -> str:
    return f"zones/{p['zone']}" if "zone" in p else f"regions/{p['region']}"


def _list_instant_snapshots(w: World, p: dict[str, str], q: dict[str, str], b: dict[str, Any], f: list[Fault]) -> Any:
    items = instant_snapshots.list_items(w, p["project"], _scope(p), q.get("filter"))
    return _page(items, q, "compute#instantSnapshotList", f"projects/{p['project']}/{_scope(p)}/instantSnapshots")


def _instant_snapshot_routes(where: str) -> list[tuple[str, str, str, str | None, Handler]]:
    """The four instantSnapshots methods, zonal (``where`` = zones) or regional (regions)."""
    collection = "instantSnapshots" if where == "zones" else "regionInstantSnapshots"
    base = _BASE + f"/{where}/" + (_Z if where == "zones" else _R) + "/instantSnapshots"
    one = base + r"/(?P<instant_snapshot>[^/]+)"
    return [
        ("GET", base, f"{collection}.list", None, _list_instant_snapshots),
        (
            "POST",
            base,
            f"{collection}.insert",
            None,
            lambda w, p, q, b, f: instant_snapshots.insert(w, p["project"], _scope(p), b, f),
        ),
        (
            "GET",
            one,
            f"{collection}.get",
            "instant_snapshot",
            lambda w, p, q, b, f: instant_snapshots.get(w, p["project"], _scope(p), p["instant_snapshot"]),
        ),
        (
            "DELETE",
            one,
            f"{collection}.delete",
            "instant_snapshot",
            lambda w, p, q, b, f: instant_snapshots.delete(w, p["project"], _scope(p), p["instant_snapshot"], f),
        ),
    ]


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _optional_bool(value: str | None) -> bool | None:
    """A query flag that may be left out (``discardLocalSsd``: required with Local SSDs, power.py)."""
    return None if value is None else _truthy(value)


def _power_route(verb: str, handler: Handler) -> tuple[str, str, str, str | None, Handler]:
    return (
        "POST",
        _BASE + r"/zones/" + _Z + rf"/instances/(?P<instance>[^/]+)/{verb}",
        f"instances.{verb}",
        "instance",
        handler,
    )


# (HTTP verb, path regex, API method name, the path parameter naming the target resource, handler)
ROUTES: list[tuple[str, re.Pattern[str], str, str | None, Handler]] = [
    (verb, re.compile(f"^{pattern}$"), method, target, handler)
    for verb, pattern, method, target, handler in [
        ("GET", _BASE + r"/aggregated/instances", "instances.aggregatedList", None, _aggregated_instances),
        ("GET", _BASE + r"/zones/" + _Z + r"/instances", "instances.list", None, _list_instances),
        (
            "POST",
            _BASE + r"/zones/" + _Z + r"/instances",
            "instances.insert",
            None,
            lambda w, p, q, b, f: w.insert_instance(p["project"], p["zone"], b, f),
        ),
        (
            "GET",
            _BASE + r"/zones/" + _Z + r"/instances/(?P<instance>[^/]+)",
            "instances.get",
            "instance",
            lambda w, p, q, b, f: w.instance(p["project"], p["zone"], p["instance"]),
        ),
        (
            "DELETE",
            _BASE + r"/zones/" + _Z + r"/instances/(?P<instance>[^/]+)",
            "instances.delete",
            "instance",
            lambda w, p, q, b, f: w.delete_instance(p["project"], p["zone"], p["instance"], f),
        ),
        (
            "DELETE",
            _BASE + r"/zones/" + _Z + r"/disks/(?P<disk>[^/]+)",
            "disks.delete",
            "disk",
            lambda w, p, q, b, f: w.delete_disk(p["project"], p["zone"], p["disk"], f),
        ),
        _power_route(
            "stop",
            lambda w, p, q, b, f: power.stop_instance(
                w,
                p["project"],
                p["zone"],
                p["instance"],
                f,
                discard_local_ssd=_optional_bool(q.get("discardLocalSsd")),
                no_graceful_shutdown=_truthy(q.get("noGracefulShutdown")),
            ),
        ),
        _power_route("start", lambda w, p, q, b, f: power.start_instance(w, p["project"], p["zone"], p["instance"], f)),
        _power_route(
            "suspend",
            lambda w, p, q, b, f: power.suspend_instance(
                w, p["project"], p["zone"], p["instance"], f, discard_local_ssd=_optional_bool(q.get("discardLocalSsd"))
            ),
        ),
        _power_route(
            "resume", lambda w, p, q, b, f: power.resume_instance(w, p["project"], p["zone"], p["instance"], f)
        ),
        (
            "POST",
            _BASE + r"/zones/" + _Z + r"/instances/(?P<instance>[^/]+)/setLabels",
            "instances.setLabels",
            "instance",
            lambda w, p, q, b, f: w.set_instance_labels(p["project"], p["zone"], p["instance"], b, f),
        ),
        (
            "POST",
            _BASE + r"/zones/" + _Z + r"/instances/(?P<instance>[^/]+)/attachDisk",
            "instances.attachDisk",
            "instance",
            lambda w, p, q, b, f: devices.attach_disk(w, p["project"], p["zone"], p["instance"], b, f),
        ),
        (
            "POST",
            _BASE + r"/zones/" + _Z + r"/instances/(?P<instance>[^/]+)/detachDisk",
            "instances.detachDisk",
            "instance",
            lambda w, p, q, b, f: devices.detach_disk(
                w, p["project"], p["zone"], p["instance"], q.get("deviceName"), f
            ),
        ),
        (
            "GET",
            _BASE + r"/zones/" + _Z + r"/instances/(?P<instance>[^/]+)/serialPort",
            "instances.getSerialPortOutput",
            "instance",
            lambda w, p, q, b, f: devices.serial_port_output(
                w, p["project"], p["zone"], p["instance"], q.get("port"), q.get("start")
            ),
        ),
        ("GET", _BASE + r"/zones/" + _Z + r"/disks", "disks.list", None, _list_disks),
        (
            "POST",
            _BASE + r"/zones/" + _Z + r"/disks/(?P<disk>[^/]+)/setLabels",
            "disks.setLabels",
            "disk",
            lambda w, p, q, b, f: devices.set_disk_labels(w, p["project"], p["zone"], p["disk"], b, f),
        ),
        (
            "POST",
            _BASE + r"/zones/" + _Z + r"/disks",
            "disks.insert",
            None,
            lambda w, p, q, b, f: w.insert_disk(p["project"], p["zone"], b, f),
        ),
        (
            "GET",
            _BASE + r"/zones/" + _Z + r"/disks/(?P<disk>[^/]+)",
            "disks.get",
            "disk",
            lambda w, p, q, b, f: w.disk(p["project"], p["zone"], p["disk"]),
        ),
        (
            "POST",
            _BASE + r"/zones/" + _Z + r"/disks/(?P<disk>[^/]+)/createSnapshot",
            "disks.createSnapshot",
            "disk",
            lambda w, p, q, b, f: w.create_snapshot(
                p["project"], p["zone"], p["disk"], b, _truthy(q.get("guestFlush")), f
            ),
        ),
        ("GET", _BASE + r"/global/snapshots", "snapshots.list", None, _list_snapshots),
        (
            "POST",
            _BASE + r"/global/snapshots",
            "snapshots.insert",
            None,
            lambda w, p, q, b, f: w.insert_snapshot(p["project"], b, f),
        ),
        (
            "GET",
            _BASE + r"/regions/" + _R + r"/disks/(?P<disk>[^/]+)",
            "regionDisks.get",
            "disk",
            lambda w, p, q, b, f: w.region_disk(p["project"], p["region"], p["disk"]),
        ),
        *_instant_snapshot_routes("zones"),
        *_instant_snapshot_routes("regions"),
        (
            "GET",
            _BASE + r"/regions/" + _R + r"/operations/(?P<operation>[^/]+)",
            "regionOperations.get",
            "operation",
            lambda w, p, q, b, f: w.get_operation(p["project"], f"regions/{p['region']}", p["operation"]),
        ),
        (
            "POST",
            _BASE + r"/regions/" + _R + r"/operations/(?P<operation>[^/]+)/wait",
            "regionOperations.wait",
            "operation",
            lambda w, p, q, b, f: w.wait_operation(p["project"], f"regions/{p['region']}", p["operation"]),
        ),
        (
            "GET",
            _BASE + r"/global/snapshots/(?P<snapshot>[^/]+)",
            "snapshots.get",
            "snapshot",
            lambda w, p, q, b, f: w.get_snapshot(p["project"], p["snapshot"]),
        ),
        (
            "DELETE",
            _BASE + r"/global/snapshots/(?P<snapshot>[^/]+)",
            "snapshots.delete",
            "snapshot",
            lambda w, p, q, b, f: w.delete_snapshot(p["project"], p["snapshot"], f),
        ),
        (
            "GET",
            _BASE + r"/zones/" + _Z + r"/operations/(?P<operation>[^/]+)",
            "zoneOperations.get",
            "operation",
            lambda w, p, q, b, f: w.get_operation(p["project"], p["zone"], p["operation"]),
        ),
        (
            "POST",
            _BASE + r"/zones/" + _Z + r"/operations/(?P<operation>[^/]+)/wait",
            "zoneOperations.wait",
            "operation",
            lambda w, p, q, b, f: w.wait_operation(p["project"], p["zone"], p["operation"]),
        ),
        (
            "GET",
            _BASE + r"/global/operations/(?P<operation>[^/]+)",
            "globalOperations.get",
            "operation",
            lambda w, p, q, b, f: w.get_operation(p["project"], None, p["operation"]),
        ),
        (
            "POST",
            _BASE + r"/global/operations/(?P<operation>[^/]+)/wait",
            "globalOperations.wait",
            "operation",
            lambda w, p, q, b, f: w.wait_operation(p["project"], None, p["operation"]),
        ),
    ]
]

# Methods whose response is an Operation (a slow fault lengthens the operation instead of the response).
OPERATION_METHODS = {
    "instances.stop",
    "instances.start",
    "instances.suspend",
    "instances.resume",
    "instances.setLabels",
    "instances.attachDisk",
    "instances.detachDisk",
    "instances.insert",
    "instances.delete",
    "disks.createSnapshot",
    "disks.delete",
    "disks.insert",
    "disks.setLabels",
    "snapshots.delete",
    "snapshots.insert",
    "instantSnapshots.insert",
    "instantSnapshots.delete",
    "regionInstantSnapshots.insert",
    "regionInstantSnapshots.delete",
}


def _admit(world: World, method: str, params: dict[str, str]) -> None:
    """Rate quota of the method's group, then (for mutations) the concurrent operations quota (quotas.py)."""
    project = params["project"]
    world.rate_quotas.charge(world.profile, project, method)
    if method in OPERATION_METHODS:
        with world.cond:
            in_flight = sum(1 for op in world.operations.values() if op.project == project and op.status != "DONE")
            location = params.get("region") or (params["zone"].rsplit("-", 1)[0] if "zone" in params else "global")
            quotas.check_concurrent(world.profile, project, in_flight, method, location)


def _fault_error(fault: Fault, method: str, project: str) -> ApiError:
    """An http_error fault's answer; a rate limit one in the documented 403 shape (errors.py)."""
    if fault.error_reason() == "rateLimitExceeded" and fault.message is None:
        metric, limit_name, _ = quotas.RATE_GROUPS[quotas.quota_group(method)]
        error = rate_limit_exceeded(project, metric, limit_name)
        error.code = fault.status
        return error
    return ApiError(fault.status, fault.error_reason(), fault.error_message())


def _call_record(
    verb: str,
    method: str,
    path: str,
    params: dict[str, str],
    query: dict[str, str],
    body: Any,
    status: int,
    started: float,
) -> dict[str, Any]:
    return {
        "time": started,
        "method": method,
        "http_method": verb,
        "path": path,
        "params": params,
        "query": query,
        "body": body or None,
        "status": status,
        "fault": "quota",
        "duration": time.time() - started,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], simulator: ComputeSimulator) -> None:
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
            self._control(split.path, query, body)
            return
        self._api(split.path, query, body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle  # noqa: N815

    # ------------------------------------------------------------------------------------------ REST API --
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
            status, payload, fault_note = 200, None, None
            try:
                _admit(world, method, params)
            except ApiError as exc:
                world.record(_call_record(self.command, method, path, params, query, body, exc.code, started))
                self._send(exc.code, exc.body())
                return
            faults = world.match_faults(method, params.get(target_param) if target_param else None)
            if faults and faults[0].action == "http_error":
                error = _fault_error(faults[0], method, params["project"])
                status, payload, fault_note = error.code, error.body(), f"http_error:{faults[0].status}"
            else:
                for fault in faults:
                    if fault.action == "slow" and method not in OPERATION_METHODS:
                        time.sleep(world.profile.scaled(fault.extra_seconds))
                op_faults = faults if method in OPERATION_METHODS else []
                if faults:
                    fault_note = ",".join(f.action for f in faults)
                try:
                    payload = handler(world, params, query, body, op_faults)
                except ApiError as exc:
                    status, payload = exc.code, exc.body()
            world.record(
                {
                    "time": started,
                    "method": method,
                    "http_method": self.command,
                    "path": path,
                    "params": params,
                    "query": query,
                    "body": body or None,  # what was asked for (e.g. an inserted VM's network interfaces)
                    "status": status,
                    "fault": fault_note,
                    "duration": time.time() - started,
                }
            )
            self._send(status, payload)
            return
        known_path = any(pattern.match(path) for _, pattern, _, _, _ in ROUTES)
        if known_path:
            error = ApiError(405, "httpMethodNotAllowed", f"HTTP method {self.command} is not supported by {path}")
        else:
            error = ApiError(404, "notFound", f"The simulator does not serve {self.command} {path}")
        world.record(
            {
                "time": time.time(),
                "method": "unknown",
                "http_method": self.command,
                "path": path,
                "params": {},
                "query": query,
                "status": error.code,
                "fault": None,
                "duration": 0.0,
            }
        )
        self._send(error.code, error.body())

    # ------------------------------------------------------------------------------------- control plane --
    def _control(self, path: str, query: dict[str, str], body: dict[str, Any]) -> None:
        sim = self.server.simulator
        parts = [p for p in path.split("/") if p][1:]  # drop "_sim"
        verb = self.command
        try:
            result: Any
            match parts, verb:
                case ["health"], "GET":
                    result = {"ok": True, "base_url": sim.base_url}
                case ["reset"], "POST":
                    profile = Profile.from_dict(body["profile"]) if body.get("profile") else None
                    sim.reset(profile=profile)
                    result = {"ok": True}
                case ["profile"], "GET":
                    result = sim.profile.to_dict()
                case ["profile"], "PUT" | "POST":
                    sim.set_profile(Profile.from_dict(body))
                    result = sim.profile.to_dict()
                case ["seed", "classic"], "POST":
                    sim.seed_classic(body.get("project", "demo-project"))
                    result = {"ok": True}
                case ["instances"], "POST":
                    result = sim.add_instance(**body)
                case ["instances", project, zone, name], "GET":
                    result = sim.instance(project, zone, name)
                case ["disks"], "POST":
                    result = sim.add_disk(**body)
                case ["disks", project, zone, name], "GET":
                    result = sim.disk(project, zone, name)
                case ["guest_console", project, zone, disk], "PUT" | "POST":
                    result = sim.set_guest_console(project, zone, disk, str(body["text"]))
                case ["serial", project, zone, name], "POST":
                    result = sim.append_serial(project, zone, name, str(body["text"]), int(body.get("port", 1)))
                case ["snapshots", project], "GET":
                    result = sim.snapshots(project)
                case ["instant_snapshots", project], "GET":
                    result = sim.instant_snapshots(project)
                case ["operations"], "GET":
                    result = sim.operations()
                case ["calls"], "GET":
                    result = sim.calls
                case ["calls"], "DELETE":
                    sim.clear_calls()
                    result = {"ok": True}
                case ["call_counts"], "GET":
                    result = sim.call_counts()
                case ["violations"], "GET":
                    result = sim.violations
                case ["check_left_stopped"], "POST":
                    result = sim.check_left_stopped()
                case ["faults"], "GET":
                    result = [f.to_dict() for f in sim.faults]
                case ["faults"], "POST":
                    result = sim.inject(Fault.from_dict(body)).to_dict()
                case ["faults"], "DELETE":
                    sim.clear_faults()
                    result = {"ok": True}
                case ["quota_usage"], "GET":
                    result = sim.quota_usage()
                case ["rate_quotas"], "PUT" | "POST":
                    sim.set_rate_quota(str(body["group"]), int(body["per_minute"]))
                    result = {"ok": True}
                case ["stockouts"], "POST":
                    result = {"seconds": sim.stockout(str(body["zone"]), float(body["seconds"]))}
                case ["preempt", project, zone, name], "POST":
                    result = sim.preempt(project, zone, name)
                case ["presets"], "GET":
                    result = sorted(presets.PRESETS)
                case ["presets", name], "POST":
                    sim.apply_preset(name, **body)
                    result = {"ok": True}
                case ["wait_idle"], "POST":
                    result = {"idle": sim.wait_idle(float(body.get("timeout", 10.0)))}
                case _:
                    self._send(404, {"error": {"code": 404, "message": f"no control route {verb} {path}"}})
                    return
        except ApiError as exc:
            self._send(exc.code, exc.body())
            return
        except (TypeError, ValueError, KeyError) as exc:
            self._send(400, {"error": {"code": 400, "message": f"{type(exc).__name__}: {exc}"}})
            return
        self._send(200, result)


class ComputeSimulator:
    """A running Compute Engine API simulator. Use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(self, profile: Profile | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.world = World(profile or Profile.fast())
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> ComputeSimulator:
        if self._server is not None:
            return self
        self._server = _Server((self._host, self._port), self)
        self._port = int(self._server.server_address[1])
        self.world.start()
        self._thread = threading.Thread(target=self._server.serve_forever, name="gce-sim-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.world.stop()  # wakes parked long-polls
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ComputeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    # profile ---------------------------------------------------------------------------------------------
    @property
    def profile(self) -> Profile:
        return self.world.profile

    def set_profile(self, profile: Profile) -> None:
        self.world.set_profile(profile)

    # seeding ---------------------------------------------------------------------------------------------
    def add_instance(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        disks: list[Any] | None = None,
        status: str = "RUNNING",
        machine_type: str = "e2-medium",
        tags: list[str] | None = None,
        network: str = "default",
        graceful_shutdown_seconds: float | None = None,
        local_ssds: int = 0,
        guest_flush_supported: bool = True,
        provisioning_model: str = "STANDARD",
    ) -> dict[str, Any]:
        """Seed an instance (``World.add_instance``); the stricter features are power.py's ``configure``:
        ``graceful_shutdown_seconds`` (0 = the 10-minute default), Local SSDs, guest flush support, Spot."""
        self.world.add_instance(
            project,
            zone,
            name,
            labels=labels,
            disks=disks,
            status=status,
            machine_type=machine_type,
            tags=tags,
            network=network,
        )
        with self.world.cond:
            instance = self.world._instance(project, zone, name)
            power.configure(
                instance,
                graceful_shutdown_seconds=graceful_shutdown_seconds,
                local_ssds=local_ssds,
                guest_flush_supported=guest_flush_supported,
                provisioning_model=provisioning_model,
            )
            return instance.to_json()

    def add_disk(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        size_gb: int = 10,
        disk_type: str = "pd-balanced",
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return self.world.add_disk(project, zone, name, size_gb=size_gb, disk_type=disk_type, labels=labels)

    def seed_classic(self, project: str = "demo-project") -> None:
        self.world.seed_classic(project)

    def set_guest_console(self, project: str, zone: str, disk: str, text: str) -> dict[str, Any]:
        return devices.set_guest_console(self.world, project, zone, disk, text)

    def append_serial(self, project: str, zone: str, instance: str, text: str, port: int = 1) -> dict[str, Any]:
        return devices.append_serial(self.world, project, zone, instance, text, port)

    def wait_for_serial(self, project: str, zone: str, instance: str, text: str, timeout: float = 10.0) -> bool:
        return devices.wait_for_serial(self.world, project, zone, instance, text, timeout)

    def reset(self, profile: Profile | None = None) -> None:
        self.world.reset(profile)

    # inspection ------------------------------------------------------------------------------------------
    def instance(self, project: str, zone: str, name: str) -> dict[str, Any]:
        return self.world.instance(project, zone, name)

    def disk(self, project: str, zone: str, name: str) -> dict[str, Any]:
        return self.world.disk(project, zone, name)

    def snapshots(self, project: str) -> list[dict[str, Any]]:
        return self.world.snapshot_list(project)

    def instant_snapshots(self, project: str) -> list[dict[str, Any]]:
        """Every instant snapshot of the project, zonal and regional."""
        return instant_snapshots.instant_snapshot_list(self.world, project)

    def operations(self) -> list[dict[str, Any]]:
        return self.world.operation_list()

    @property
    def calls(self) -> list[dict[str, Any]]:
        with self.world.cond:
            return [dict(call) for call in self.world.calls]

    def clear_calls(self) -> None:
        with self.world.cond:
            self.world.calls.clear()

    def call_counts(self) -> dict[str, int]:
        return self.world.call_counts()

    @property
    def violations(self) -> list[dict[str, Any]]:
        with self.world.cond:
            return [dict(v) for v in self.world.violations]

    def check_left_stopped(self) -> list[dict[str, Any]]:
        return self.world.check_left_stopped()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self.world.wait_idle(timeout)

    # faults ----------------------------------------------------------------------------------------------
    @property
    def faults(self) -> list[Fault]:
        with self.world.cond:
            return list(self.world.faults)

    def inject(self, fault: Fault) -> Fault:
        return self.world.inject(fault)

    def clear_faults(self) -> None:
        self.world.clear_faults()

    # stricter behaviours ---------------------------------------------------------------------------------
    def quota_usage(self) -> dict[str, dict[str, int]]:
        """project -> rate quota group -> the highest number of calls admitted in one window (quotas.py)."""
        return self.world.rate_quotas.usage()

    def set_rate_quota(self, group: str, per_minute: int) -> None:
        if group not in quotas.RATE_GROUPS:
            raise ValueError(f"unknown rate quota group {group!r} ({' | '.join(quotas.RATE_GROUPS)})")
        with self.world.cond:
            self.world.rate_quotas.overrides[group] = per_minute

    def stockout(self, zone: str, seconds: float) -> float:
        """No capacity in ``zone`` for ``seconds`` of Compute Engine time; returns the scaled length (power.py)."""
        return power.set_stockout(self.world, zone, seconds)

    def preempt(self, project: str, zone: str, name: str) -> dict[str, Any]:
        """Reclaim a RUNNING Spot VM; returns its ``compute.instances.preempted`` operation (power.py)."""
        return power.preempt(self.world, project, zone, name)

    def apply_preset(self, name: str, **params: Any) -> None:
        presets.apply(self.world, name, **params)
