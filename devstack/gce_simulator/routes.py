"""The Compute Engine REST v1 routes the simulator serves: (HTTP verb, path, API method, target, handler).

Paths, verbs and method names as the compute v1 reference gives them; a handler gets the world, the path
parameters, the query, the JSON body and the faults that apply to the call. ``admit`` charges the rate quota of
the method's group, then (for mutations) checks the concurrent operations quota (quotas.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from . import devices, disks, instances, instant_snapshots, machine_types, power, quotas, reservations, snapshots
from .accelerators import get as get_accelerator_type
from .errors import ApiError, rate_limit_exceeded
from .faults import Fault
from .state import World

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
    items = instances.list_instances(w, p["project"], p["zone"], q.get("filter"))
    return _page(items, q, "compute#instanceList", f"projects/{p['project']}/zones/{p['zone']}/instances")


def _aggregated_instances(w: World, p: dict[str, str], q: dict[str, str], b: dict[str, Any], f: list[Fault]) -> Any:
    """instances.aggregatedList, paged across zones: ``maxResults`` (0-500, default 500) counts instances, not
    zones; ``nextPageToken`` while more remain; a zone with nothing on this page carries NO_RESULTS_ON_PAGE
    (https://cloud.google.com/compute/docs/reference/rest/v1/instances/aggregatedList). The token is an offset
    here, opaque to the client as Google's is (ESTIMATE: Google's tokens are not offsets).
    """
    size = _max_results(q)
    start = int(q.get("pageToken") or 0)
    scoped = instances.aggregated_instances(w, p["project"], q.get("filter"))
    everything = [(scope, item) for scope, found in scoped.items() for item in found]
    on_page: dict[str, list[dict[str, Any]]] = {scope: [] for scope in scoped}
    for scope, item in everything[start : start + size]:
        on_page[scope].append(item)
    items: dict[str, Any] = {}
    for scope, found in on_page.items():
        if found:
            items[scope] = {"instances": found}
        else:
            items[scope] = {
                "warning": {
                    "code": "NO_RESULTS_ON_PAGE",
                    "message": "There are no results for scope 'zones/{}' on this page.".format(scope.split("/")[1]),
                    "data": [{"key": "scope", "value": scope}],
                }
            }
    body = {
        "kind": "compute#instanceAggregatedList",
        "id": f"projects/{p['project']}/aggregated/instances",
        "items": items,
        "selfLink": f"projects/{p['project']}/aggregated/instances",
    }
    if start + size < len(everything):
        body["nextPageToken"] = str(start + size)
    return body


def _max_results(q: dict[str, str]) -> int:
    """``maxResults``: "Acceptable values are 0 to 500, inclusive. (Default: 500)" (the list methods' reference).

    0 is read as the default, as the other lists here do (ESTIMATE: the reference does not say what 0 returns); a
    value outside 0-500 is refused with 400 invalid (ESTIMATE: the message's wording is not documented).
    """
    text = q.get("maxResults") or "0"
    value = int(text) if text.isdigit() else -1
    if not 0 <= value <= 500:
        raise ApiError(
            400, "invalid", f"Invalid value for field 'maxResults': '{text}'. Must be in the range [0, 500]."
        )
    return value or 500


def _list_disks(w: World, p: dict[str, str], q: dict[str, str], b: dict[str, Any], f: list[Fault]) -> Any:
    items = disks.list_disks(w, p["project"], p["zone"], q.get("filter"))
    return _page(items, q, "compute#diskList", f"projects/{p['project']}/zones/{p['zone']}/disks")


def _list_snapshots(w: World, p: dict[str, str], q: dict[str, str], b: dict[str, Any], f: list[Fault]) -> Any:
    items = snapshots.list_snapshots(w, p["project"], q.get("filter"))
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


def _list_reservations(w: World, p: dict[str, str], q: dict[str, str], b: dict[str, Any], f: list[Fault]) -> Any:
    items = reservations.list_items(w, p["project"], p["zone"], q.get("filter"))
    return _page(items, q, "compute#reservationList", f"projects/{p['project']}/zones/{p['zone']}/reservations")


def _reservation_routes() -> list[tuple[str, str, str, str | None, Handler]]:
    """reservations insert, get, list, delete (reservations.py)."""
    base = _BASE + r"/zones/" + _Z + r"/reservations"
    one = base + r"/(?P<reservation>[^/]+)"
    return [
        ("GET", base, "reservations.list", None, _list_reservations),
        (
            "POST",
            base,
            "reservations.insert",
            None,
            lambda w, p, q, b, f: reservations.insert(w, p["project"], p["zone"], b, f),
        ),
        (
            "GET",
            one,
            "reservations.get",
            "reservation",
            lambda w, p, q, b, f: reservations.get(w, p["project"], p["zone"], p["reservation"]),
        ),
        (
            "DELETE",
            one,
            "reservations.delete",
            "reservation",
            lambda w, p, q, b, f: reservations.delete(w, p["project"], p["zone"], p["reservation"], f),
        ),
    ]


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _optional_bool(value: str | None) -> bool | None:
    """A query flag that may be left out (``discardLocalSsd``: required with Local SSDs, power.py)."""
    return None if value is None else _truthy(value)


def _offered_in_zone(get: Callable[[World, str, str, str], dict[str, Any]]) -> Handler:
    """machineTypes.get or acceleratorTypes.get: what a zone offers (machine_types.py, accelerators.py)."""
    return lambda w, p, q, b, f: get(w, p["project"], p["zone"], p["type"])


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
            lambda w, p, q, b, f: instances.insert_instance(w, p["project"], p["zone"], b, f),
        ),
        (
            "GET",
            _BASE + r"/zones/" + _Z + r"/instances/(?P<instance>[^/]+)",
            "instances.get",
            "instance",
            lambda w, p, q, b, f: w.instance(p["project"], p["zone"], p["instance"]),
        ),
        *[
            ("GET", _BASE + r"/zones/" + _Z + rf"/{kind}/(?P<type>[^/]+)", f"{kind}.get", None, _offered_in_zone(get))
            for kind, get in (("machineTypes", machine_types.get), ("acceleratorTypes", get_accelerator_type))
        ],
        (
            "DELETE",
            _BASE + r"/zones/" + _Z + r"/instances/(?P<instance>[^/]+)",
            "instances.delete",
            "instance",
            lambda w, p, q, b, f: instances.delete_instance(w, p["project"], p["zone"], p["instance"], f),
        ),
        (
            "DELETE",
            _BASE + r"/zones/" + _Z + r"/disks/(?P<disk>[^/]+)",
            "disks.delete",
            "disk",
            lambda w, p, q, b, f: disks.delete_disk(w, p["project"], p["zone"], p["disk"], f),
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
            lambda w, p, q, b, f: instances.set_instance_labels(w, p["project"], p["zone"], p["instance"], b, f),
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
            lambda w, p, q, b, f: disks.insert_disk(w, p["project"], p["zone"], b, f),
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
            lambda w, p, q, b, f: snapshots.create_snapshot(
                w, p["project"], p["zone"], p["disk"], b, _truthy(q.get("guestFlush")), f
            ),
        ),
        ("GET", _BASE + r"/global/snapshots", "snapshots.list", None, _list_snapshots),
        (
            "POST",
            _BASE + r"/global/snapshots",
            "snapshots.insert",
            None,
            lambda w, p, q, b, f: snapshots.insert_snapshot(w, p["project"], b, f),
        ),
        (
            "GET",
            _BASE + r"/regions/" + _R + r"/disks/(?P<disk>[^/]+)",
            "regionDisks.get",
            "disk",
            lambda w, p, q, b, f: w.region_disk(p["project"], p["region"], p["disk"]),
        ),
        *_instant_snapshot_routes("zones"),
        *_reservation_routes(),
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
            lambda w, p, q, b, f: snapshots.get_snapshot(w, p["project"], p["snapshot"]),
        ),
        (
            "DELETE",
            _BASE + r"/global/snapshots/(?P<snapshot>[^/]+)",
            "snapshots.delete",
            "snapshot",
            lambda w, p, q, b, f: snapshots.delete_snapshot(w, p["project"], p["snapshot"], f),
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
    "reservations.insert",
    "reservations.delete",
}


def admit(world: World, method: str, params: dict[str, str]) -> None:
    """Rate quota of the method's group, then (for mutations) the concurrent operations quota (quotas.py)."""
    project = params["project"]
    world.rate_quotas.charge(world.profile, project, method, now=world.wall_clock())  # held: stands still
    if method in OPERATION_METHODS:
        location = params.get("region") or (params["zone"].rsplit("-", 1)[0] if "zone" in params else "global")
        in_flight = world.in_flight(project, location)  # per region, or global (quotas.py)
        quotas.check_concurrent(world.profile, project, in_flight, method, location)


def fault_error(fault: Fault, method: str, project: str) -> ApiError:
    """An http_error fault's answer; a rate limit one in the documented 403 shape (errors.py)."""
    if fault.error_reason() == "rateLimitExceeded" and fault.message is None:
        metric, limit_name, _ = quotas.RATE_GROUPS[quotas.quota_group(method)]
        error = rate_limit_exceeded(project, metric, limit_name)
        error.code = fault.status
        return error
    return ApiError(fault.status, fault.error_reason(), fault.error_message())
