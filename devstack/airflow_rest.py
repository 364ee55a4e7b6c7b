"""A small synchronous client for Airflow's stable REST API: what the bench, the demo and the API tests call."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowApiError(RuntimeError):
    """The REST API answered with an error (the message has the status, URL and body)."""


@dataclass(frozen=True)
class DagRun:
    """The part of a DAG run the bench and the demo look at."""

    dag_id: str
    run_id: str
    state: str
    start_date: datetime | None
    end_date: datetime | None

    @property
    def seconds(self) -> float | None:
        """Wall time from the run's start to its end, as the scheduler recorded them."""
        if self.start_date is None or self.end_date is None:
            return None
        return (self.end_date - self.start_date).total_seconds()

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> DagRun:
        return cls(
            dag_id=body["dag_id"],
            run_id=body["dag_run_id"],
            state=body["state"],
            start_date=parse_time(body.get("start_date")),
            end_date=parse_time(body.get("end_date")),
        )


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class AirflowApi:
    """A small synchronous client for the parts of the stable REST API the bench and the demo need.

    Airflow 3 serves /api/v2 behind a JWT from /auth/token; Airflow 2 serves /api/v1 with basic auth.
    """

    def __init__(self, base_url: str, username: str, password: str, major: int, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.major = major
        self.prefix = "/api/v2" if major >= 3 else "/api/v1"
        self._username = username
        self._password = password
        self._timeout = timeout
        self._session = requests.Session()
        if major < 3:
            self._session.auth = (username, password)
        self._token: str | None = None

    def _login(self) -> None:
        resp = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": self._username, "password": self._password},
            timeout=self._timeout,
        )
        if resp.status_code >= 300:
            raise AirflowApiError(f"login as {self._username!r} failed: {resp.status_code} {resp.text[:300]}")
        self._token = resp.json()["access_token"]
        self._session.headers["Authorization"] = f"Bearer {self._token}"

    def request(self, method: str, path: str, *, attempts: int = 4, **kwargs: Any) -> Any:
        """One call under the API's version prefix; raises AirflowApiError on a 4xx/5xx answer.

        A busy machine makes sqlite-backed Airflow answer slowly or with a transient 500 ("database is
        locked"), so timeouts and 5xx are retried; callers make their POSTs idempotent (trigger names its run).
        """
        url = f"{self.base_url}{self.prefix}{path}"
        for attempt in range(1, attempts + 1):
            if self.major >= 3 and self._token is None:
                self._login()
            try:
                resp = self._session.request(method, url, timeout=self._timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == attempts:
                    raise AirflowApiError(f"{method} {url}: no answer after {attempts} attempts ({exc})") from exc
                time.sleep(attempt)
                continue
            if resp.status_code == 401 and self.major >= 3:
                self._token = None
                continue
            if resp.status_code >= 500 and attempt < attempts:
                time.sleep(attempt)
                continue
            if resp.status_code >= 400:
                raise AirflowApiError(f"{method} {url} -> {resp.status_code}: {resp.text[:500]}")
            return resp.json() if resp.content else None
        raise AirflowApiError(f"{method} {url}: still unauthorized after {attempts} logins")

    def health(self) -> dict[str, Any]:
        path = f"{self.base_url}/api/v2/monitor/health" if self.major >= 3 else f"{self.base_url}/health"
        resp = self._session.get(path, timeout=self._timeout)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    def close(self) -> None:
        self._session.close()

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self.request("GET", f"/dags/{dag_id}")
        except AirflowApiError as exc:
            if "-> 404" in str(exc):
                return None
            raise
        return body

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/importErrors", params={"limit": 100})["import_errors"])

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the DAG processor has parsed the DAG; on timeout, name the import errors if any."""
        deadline = time.monotonic() + timeout
        while True:
            dag = self.dag(dag_id)
            if dag is not None:
                return dag
            if time.monotonic() > deadline:
                errors = [f"{e.get('filename')}: {e.get('stack_trace', '')[-800:]}" for e in self.import_errors()]
                detail = "\n".join(errors) if errors else "no import errors reported; is the file in the dags folder?"
                raise TimeoutError(f"DAG {dag_id!r} did not appear within {timeout:.0f}s.\n{detail}")
            time.sleep(0.5)

    def delete_dag(self, dag_id: str) -> None:
        """Forget a DAG and its runs, as a new metadata DB would; the DAG processor parses its file again."""
        self.request("DELETE", f"/dags/{dag_id}")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Start a run; named up front so that a retried POST finds its run instead of starting a second one."""
        run_id = run_id or f"manual__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}_{secrets.token_hex(3)}"
        body: dict[str, Any] = {"conf": dict(conf or {}), "dag_run_id": run_id}
        if self.major >= 3:
            body["logical_date"] = None
        try:
            self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
        except AirflowApiError as exc:
            if "-> 409" not in str(exc):
                raise
            self.dag_run(dag_id, run_id)  # the first attempt went through: the run exists
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> DagRun:
        return DagRun.from_api(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600.0) -> DagRun:
        """Poll the run until it is success or failed (the bench reads both; a failed run is not an error here)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run.state in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                states = {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}
                raise TimeoutError(f"run {run_id} of {dag_id} still {run.state} after {timeout:.0f}s; tasks: {states}")
            time.sleep(0.5)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self._paged(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances"))

    def event_logs(self, dag_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
        """The audit log of a DAG (optionally one run), oldest first."""
        params: dict[str, Any] = {"dag_id": dag_id, "order_by": "when"}
        if run_id is not None:
            params["run_id"] = run_id
        return list(self._paged("/eventLogs", "event_logs", params))

    def _paged(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.request("GET", path, params={**(params or {}), "limit": 100, "offset": offset})
            items = page[key]
            yield from items
            offset += len(items)
            if not items or offset >= page.get("total_entries", 0):
                return

    def start_run(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Unpause the DAG and return the id of exactly one run that then starts.

        A scheduled DAG whose next run is already due (catchup=False still runs the latest past slot) gets
        that run from the scheduler as soon as it is unpaused; triggering as well would make two runs. So
        the due run is used when there is one, and a run is triggered otherwise.
        """
        dag = self.wait_for_dag(dag_id)
        due = parse_time(dag.get("next_dagrun_run_after") or dag.get("next_dagrun_create_after"))
        existing = {r["dag_run_id"] for r in self.dag_runs(dag_id)}
        self.unpause(dag_id)
        if due is None or due > datetime.now(UTC) or conf:
            return self.trigger(dag_id, conf)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            new = [r for r in self.dag_runs(dag_id) if r["dag_run_id"] not in existing]
            if new:
                return str(new[0]["dag_run_id"])
            time.sleep(0.5)
        raise TimeoutError(f"the scheduler did not start the due run of {dag_id} within 120s of unpausing it")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self._paged(f"/dags/{dag_id}/dagRuns", "dag_runs"))

    def run_dag(self, dag_id: str, conf: Mapping[str, Any] | None = None, timeout: float = 600.0) -> DagRun:
        """Start one run (see start_run) and wait for it to finish."""
        return self.wait_for_run(dag_id, self.start_run(dag_id, conf), timeout=timeout)
