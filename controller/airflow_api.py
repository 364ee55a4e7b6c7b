"""The Airflow REST API client: the only code in the controller that speaks HTTP to Airflow.

One small async client for both API generations Composer offers: Airflow 3 (``/api/v2``, FastAPI)
and Airflow 2 (``/api/v1``, connexion). It returns plain frozen dataclasses so nothing above it
depends on either wire format, and sorts every failure into two kinds the caller acts on
differently (controller/airflow_errors.py): :class:`AirflowUnavailable` (try again next cycle) and
:class:`AirflowError` (Airflow answered and refused; the message says why). How it authenticates
is controller/airflow_auth.py's.

Every HTTP request increments :attr:`AirflowClient.requests`, so a benchmark can report calls per
poll cycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import aiohttp

from controller.airflow_auth import AirflowAuth, NoAuth
from controller.airflow_errors import AirflowAuthError, AirflowError, AirflowRedirectError, AirflowUnavailable
from vmbackup.model.policy import DAG_ID_PREFIX

ApiVersion = Literal[1, 2]
FINISHED_RUN_STATES = ("success", "failed")  # a DAG run in one of these has ended
ACTIVE_RUN_STATES = ("queued", "running")  # a DAG run in one of these has not
PAGE_LIMIT = 100  # Airflow's default [api] maximum_page_limit; larger values are silently capped


# ---------------------------------------------------------------------------------------------
# What Airflow tells us, independent of the API generation.


@dataclasses.dataclass(frozen=True)
class DagInfo:
    dag_id: str
    is_paused: bool
    has_import_errors: bool
    fileloc: str | None
    next_run: datetime | None  # when the next scheduled run will start, not its logical date
    last_parsed_time: datetime | None


@dataclasses.dataclass(frozen=True)
class DagRunInfo:
    dag_id: str
    run_id: str
    state: str  # queued | running | success | failed
    run_type: str | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    conf: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_RUN_STATES

    @property
    def duration_seconds(self) -> float | None:
        if self.start_date is None or self.end_date is None:
            return None
        return round((self.end_date - self.start_date).total_seconds(), 3)


@dataclasses.dataclass(frozen=True)
class ImportErrorInfo:
    filename: str
    stack_trace: str
    timestamp: datetime | None


@dataclasses.dataclass(frozen=True)
class TaskInstanceInfo:
    task_id: str
    state: str | None
    try_number: int
    map_index: int
    start_date: datetime | None
    end_date: datetime | None


# ---------------------------------------------------------------------------------------------
# The client.


class AirflowClient:
    """Async client for one Airflow web server; use as ``async with AirflowClient(url, auth) as c``.

    ``api_version`` (1 or 2) skips detection when known, e.g. from a Composer image version.
    """

    def __init__(
        self,
        base_url: str,
        auth: AirflowAuth | None = None,
        *,
        api_version: ApiVersion | None = None,
        timeout_seconds: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth or NoAuth()
        self.requests = 0
        self._api_version = api_version
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session = session
        self._owns_session = session is None
        self._version_lock = asyncio.Lock()

    async def __aenter__(self) -> AirflowClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    # -- transport ----------------------------------------------------------------------------

    async def raw_request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
        accept: str = "application/json",
    ) -> Any:
        """One HTTP exchange (plus one retry after a credential refresh); the decoded JSON or text."""
        for attempt in (1, 2):
            headers = {"Accept": accept}
            if authenticated:
                headers.update(await self.auth.headers(self))
            status, body, location = await self._send(method, path, params=params, json_body=json_body, headers=headers)
            if 300 <= status < 400:
                raise AirflowRedirectError(status, location, base_url=self.base_url, method=method, path=path)
            # 401: expired; 403 on Airflow 3 can be a token signed by a rotated secret. Either way: renew once.
            if status in (401, 403) and authenticated and attempt == 1 and await self.auth.refresh(self):
                continue
            return self._decode(method, path, status, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        headers: dict[str, str],
    ) -> tuple[int, str, str]:
        """One request, redirects not followed: (status, body, Location header)."""
        url = self.base_url + path
        self.requests += 1
        try:
            async with self._get_session().request(
                method, url, params=_query(params), json=json_body, headers=headers, allow_redirects=False
            ) as response:
                return response.status, await response.text(), response.headers.get("Location", "")
        except TimeoutError as exc:
            raise AirflowUnavailable(f"Airflow at {self.base_url} did not answer {method} {path} in time") from exc
        except aiohttp.ClientError as exc:
            raise AirflowUnavailable(f"cannot reach Airflow at {self.base_url}: {exc}") from exc

    def _decode(self, method: str, path: str, status: int, body: str) -> Any:
        if status >= 500:
            raise AirflowUnavailable(
                f"Airflow at {self.base_url} failed on {method} {path} (HTTP {status}): {_error_message(body)}"
            )
        if status in (401, 403):
            raise AirflowAuthError(status, _error_message(body), method=method, path=path)
        if status >= 400:
            raise AirflowError(status, _error_message(body), method=method, path=path)
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return body

    async def api_version(self) -> ApiVersion:
        """2 for Airflow 3 (``/api/v2``), 1 for Airflow 2 (``/api/v1``); detected once."""
        if self._api_version is None:
            async with self._version_lock:
                if self._api_version is None:
                    self._api_version = await self._detect_version()
        return self._api_version

    async def _detect_version(self) -> ApiVersion:
        # /api/v2/version needs no credentials on Airflow 3; Airflow 2 answers 404 there.
        try:
            await self.raw_request("GET", "/api/v2/version", authenticated=False)
            return 2
        except AirflowAuthError:
            return 2
        except AirflowError as exc:
            if exc.status != 404:
                raise
        await self.raw_request("GET", "/api/v1/health", authenticated=False)
        return 1

    async def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        version = await self.api_version()
        return await self.raw_request(method, f"/api/v{version}{path}", **kwargs)

    # -- API ----------------------------------------------------------------------------------

    async def version(self) -> str:
        data = await self._api("GET", "/version")
        return str(data["version"])

    async def health(self) -> dict[str, Any]:
        """Health of the metadatabase, scheduler, triggerer (and DAG processor on 3.x); needs no credentials."""
        path = "/monitor/health" if await self.api_version() == 2 else "/health"
        data = await self._api("GET", path, authenticated=False)
        return dict(data) if isinstance(data, dict) else {}

    async def list_dags(self, dag_id_prefix: str = DAG_ID_PREFIX) -> list[DagInfo]:
        """Every DAG whose id starts with the prefix (pages followed)."""
        # dag_id_pattern is a SQL LIKE "contains" match in which '_' is a wildcard: filter exactly here.
        rows = await self._paged_get("/dags", "dags", {"dag_id_pattern": dag_id_prefix} if dag_id_prefix else {})
        return [_dag(row) for row in rows if str(row["dag_id"]).startswith(dag_id_prefix)]

    async def get_dag(self, dag_id: str) -> DagInfo:
        return _dag(await self._api("GET", f"/dags/{dag_id}"))

    async def latest_runs(self, dag_ids: Iterable[str]) -> dict[str, DagRunInfo]:
        """The most recently created run of each DAG, in one batched request (plus pages if needed).

        Runs come newest first across all the DAGs; pages are fetched only until every DAG has been
        seen or the runs end, so a cycle usually costs one request however many policies there are.
        """
        wanted = set(dag_ids)
        latest: dict[str, DagRunInfo] = {}
        if not wanted:
            return latest
        offset = 0
        while True:
            body = {"dag_ids": sorted(wanted), "order_by": "-id", "page_offset": offset, "page_limit": PAGE_LIMIT}
            data = await self._api("POST", "/dags/~/dagRuns/list", json_body=body)
            rows = data.get("dag_runs", [])
            for row in rows:
                run = _run(row)
                latest.setdefault(run.dag_id, run)
            offset += len(rows)
            if len(latest) == len(wanted) or not rows or offset >= int(data.get("total_entries", 0)):
                return latest

    async def active_runs(self, dag_ids: Iterable[str]) -> list[DagRunInfo]:
        """Every queued or running run of these DAGs, in one batched request (plus pages if needed); a DAG Airflow
        does not know has none."""
        wanted = sorted(set(dag_ids))
        runs: list[DagRunInfo] = []
        while wanted:
            body = {"dag_ids": wanted, "states": list(ACTIVE_RUN_STATES), "page_offset": len(runs)}
            data = await self._api("POST", "/dags/~/dagRuns/list", json_body={**body, "page_limit": PAGE_LIMIT})
            rows = data.get("dag_runs", [])
            runs.extend(_run(row) for row in rows)
            if not rows or len(runs) >= int(data.get("total_entries", 0)):
                break
        return runs

    async def get_run(self, dag_id: str, run_id: str) -> DagRunInfo:
        return _run(await self._api("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    async def import_errors(self) -> list[ImportErrorInfo]:
        rows = await self._paged_get("/importErrors", "import_errors", {})
        return [
            ImportErrorInfo(
                filename=str(row.get("filename", "")),
                stack_trace=str(row.get("stack_trace", "")),
                timestamp=_time(row.get("timestamp")),
            )
            for row in rows
        ]

    async def set_paused(self, dag_id: str, paused: bool) -> DagInfo:
        version = await self.api_version()
        params = {"update_mask": "is_paused"} if version == 1 else None
        return _dag(await self._api("PATCH", f"/dags/{dag_id}", params=params, json_body={"is_paused": paused}))

    async def trigger_run(
        self, dag_id: str, run_id: str | None = None, conf: Mapping[str, Any] | None = None
    ) -> DagRunInfo:
        """Start a run now; Airflow names it unless ``run_id`` is given (a duplicate id is a 409)."""
        version = await self.api_version()
        body: dict[str, Any] = {"conf": dict(conf or {})}
        if run_id is not None:
            body["dag_run_id"] = run_id
        if version == 2:
            body["logical_date"] = None  # required by Airflow 3; null means "no data interval, run now"
        return _run(await self._api("POST", f"/dags/{dag_id}/dagRuns", json_body=body))

    async def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceInfo]:
        rows = await self._paged_get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances", {})
        return [
            TaskInstanceInfo(
                task_id=str(row["task_id"]),
                state=row.get("state"),
                try_number=int(row.get("try_number") or 0),
                map_index=int(row.get("map_index", -1)),
                start_date=_time(row.get("start_date")),
                end_date=_time(row.get("end_date")),
            )
            for row in rows
        ]

    async def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """A task try's whole log as text (Airflow 3's structured events are flattened to lines)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        data = await self._api("GET", path, params={"full_content": "true", "map_index": map_index})
        content = data.get("content", "") if isinstance(data, dict) else data
        if isinstance(content, str):
            return content
        return "\n".join(_log_line(event) for event in content)

    async def _paged_get(self, path: str, key: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            data = await self._api("GET", path, params={**params, "limit": PAGE_LIMIT, "offset": len(rows)})
            page = data.get(key, [])
            rows.extend(page)
            if not page or len(rows) >= int(data.get("total_entries", 0)):
                return rows


# ---------------------------------------------------------------------------------------------
# Wire format -> dataclasses.


def _query(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in params.items() if v is not None}


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))


def _dag(row: Mapping[str, Any]) -> DagInfo:
    # Airflow 3 says when the next run starts (next_dagrun_run_after); Airflow 2 calls it next_dagrun_create_after.
    next_run = row.get("next_dagrun_run_after") or row.get("next_dagrun_create_after")
    return DagInfo(
        dag_id=str(row["dag_id"]),
        is_paused=bool(row.get("is_paused")),
        has_import_errors=bool(row.get("has_import_errors")),
        fileloc=row.get("fileloc"),
        next_run=_time(next_run),
        last_parsed_time=_time(row.get("last_parsed_time")),
    )


def _run(row: Mapping[str, Any]) -> DagRunInfo:
    return DagRunInfo(
        dag_id=str(row["dag_id"]),
        run_id=str(row["dag_run_id"]),
        state=str(row.get("state")),
        run_type=row.get("run_type"),
        queued_at=_time(row.get("queued_at")),
        start_date=_time(row.get("start_date")),
        end_date=_time(row.get("end_date")),
        conf=row.get("conf") or {},
    )


def _error_message(body: str) -> str:
    """Airflow 3 says ``{"detail": ...}``; Airflow 2 says ``{"title", "detail"}``; proxies say HTML."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.strip()
        return text[:300] if text else "no details given"
    if not isinstance(data, dict):
        return str(data)[:300]
    detail = data.get("detail")
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail)
    if isinstance(detail, dict):
        return str(detail.get("reason") or detail.get("message") or detail)
    parts = [str(p) for p in (data.get("title"), detail) if p]
    return ": ".join(parts) if parts else json.dumps(data)[:300]


def _log_line(event: Any) -> str:
    if not isinstance(event, Mapping):
        return str(event)
    head = " ".join(str(event[k]) for k in ("timestamp", "level") if event.get(k))
    line = f"{head} {event.get('event', '')}".strip()
    if event.get("error_detail"):
        line += f"\n{json.dumps(event['error_detail'])}"
    return line
