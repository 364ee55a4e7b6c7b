"""A screenshot of Airflow 3's graph view of one DAG run, taken with Debian's headless Chromium.

Chromium is driven over the Chrome DevTools Protocol with aiohttp's websocket client (no browser download, no
Node.js). Airflow 3's UI is a single-page app: no load event says the graph is drawn, so every step waits on a
DOM condition instead: the graph's React Flow nodes carry each task's id in ``data-id``, and the picture is taken
once every task of the DAG has a node and the view has stopped moving after "Fit View".

Logging in: Airflow 3's API server takes the UI's JWT from the ``_token`` cookie, where a login puts it
(COOKIE_NAME_JWT_TOKEN in airflow/api_fastapi/auth/managers/base_auth_manager.py, read in
airflow/api_fastapi/core_api/security.py). A token from the simple auth manager's ``POST /auth/token`` with the
local stack's user, set as that cookie, is that login without the form.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import aiohttp
import requests

from devstack.airflow_local import LocalAirflow, free_port

WINDOW = (1500, 560)
SCALE = 2  # device pixels per CSS pixel: a sharp picture when the docs page scales it down
# The minimap would cover the graph's right end in a window this short; nothing else of the page is changed.
HIDE_MINIMAP = "document.head.insertAdjacentHTML('beforeend', '<style>.react-flow__minimap{display:none}</style>')"
# The UI remembers the chosen view in localStorage under this key (useLocalStorage("default_dag_view", "grid") in
# airflow-core/src/airflow/ui/src/layouts/Details/DetailsLayout.tsx); "graph" opens the graph without a click.
DAG_VIEW_KEY = "default_dag_view"
# The flags the machine notes give for headless Chromium as root on a closed network: without the background
# networking ones it keeps trying (and failing) to reach Google's hosts.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium_command(chromium: str, profile: Path, port: int, window: tuple[int, int] = WINDOW) -> list[str]:
    """Chromium headless with a new empty profile and the DevTools port open on loopback."""
    return [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        f"--remote-debugging-port={port}",
        f"--window-size={window[0]},{window[1]}",
        "about:blank",
    ]


def graph_drawn_expression(task_ids: Iterable[str]) -> str:
    """A JS expression true once the graph has a node for every one of these tasks (task groups expanded)."""
    wanted = json.dumps(sorted(set(task_ids)))
    return (
        f"(() => {{ const drawn = new Set([...document.querySelectorAll('.react-flow__node')]"
        f".map(n => n.dataset.id)); return {wanted}.every(id => drawn.has(id)); }})()"
    )


def click_expression(label: str) -> str:
    """A JS expression that clicks the button with this aria-label, true when there was one."""
    return (
        f"(() => {{ const b = document.querySelector('button[aria-label={json.dumps(label)}]');"
        " if (b) b.click(); return !!b; })()"
    )


VIEWPORT_EXPRESSION = "document.querySelector('.react-flow__viewport')?.style.transform || ''"


def login_token(url: str, username: str, password: str) -> str:
    """A JWT for the UI from the simple auth manager's token endpoint."""
    response = requests.post(f"{url}/auth/token", json={"username": username, "password": password}, timeout=60)
    response.raise_for_status()
    return str(response.json()["access_token"])


def screenshot_run_graph(airflow: LocalAirflow, dag_id: str, run_id: str, out: Path, timeout: float = 120) -> None:
    """Write a PNG of the graph of ``run_id`` (its task states coloured), every task group expanded."""
    if airflow.major < 3:
        raise SystemExit("the graph screenshot is of Airflow 3's UI; run it with the Airflow 3 venv")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is missing: apt-get install chromium (or run ./scripts/bootstrap.sh --pictures)")
    token = login_token(airflow.url, airflow.username, airflow.password)
    tasks = airflow.api.request("GET", f"/dags/{dag_id}/tasks")["tasks"]
    task_ids = [str(task["task_id"]) for task in tasks]
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="vmbackup-chromium-") as profile:
        # Its own process group: Chromium's helper processes end with it, before its profile is removed.
        browser = subprocess.Popen(
            chromium_command(chromium, Path(profile), port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            page = f"{airflow.url}/dags/{dag_id}/runs/{run_id}"
            png = asyncio.run(_capture(port, airflow.url, page, token, task_ids, timeout))
        finally:
            _stop_group(browser)
    out.write_bytes(png)


def _stop_group(browser: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the browser's own process group, SIGKILL after 30 s, then wait until every member is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(browser.pid, signal.SIGTERM)
    try:
        browser.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(browser.pid, signal.SIGKILL)
        browser.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(browser.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


async def _capture(port: int, origin: str, page: str, token: str, task_ids: list[str], wait_seconds: float) -> bytes:
    async with aiohttp.ClientSession() as http:
        target = await _first_page(http, port)
        async with http.ws_connect(target, max_msg_size=0) as ws:
            cdp = _Cdp(ws, wait_seconds)
            await cdp.call("Network.enable")
            await cdp.call("Network.setCookie", name="_token", value=token, url=origin)
            await cdp.call(
                "Emulation.setDeviceMetricsOverride",
                width=WINDOW[0],
                height=WINDOW[1],
                deviceScaleFactor=SCALE,
                mobile=False,
            )
            await cdp.call("Page.navigate", url=f"{origin}/")
            await cdp.wait_for("document.readyState === 'complete'", "the UI's first page to load")
            await cdp.evaluate(f"localStorage.setItem({json.dumps(DAG_VIEW_KEY)}, JSON.stringify('graph'))")
            await cdp.call("Page.navigate", url=page)
            await cdp.wait_for(click_expression("Collapse Details Panel"), "the run's details panel")
            await cdp.wait_for(click_expression("Expand all task groups"), "the graph's toolbar")
            await cdp.wait_for(graph_drawn_expression(task_ids), f"a graph node for each of {len(task_ids)} tasks")
            await cdp.evaluate(HIDE_MINIMAP)  # the graph's page, drawn: its head is the one the style must go in
            await cdp.wait_for(click_expression("Fit View"), "the graph's Fit View button")
            await cdp.wait_steady(VIEWPORT_EXPRESSION, "the graph's fit-view animation")
            shot = await cdp.call("Page.captureScreenshot", format="png")
            return base64.b64decode(str(shot["data"]))


async def _first_page(http: aiohttp.ClientSession, port: int) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                pages = [p for p in await response.json() if p.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("chromium did not open its DevTools port within 30 s")
        await asyncio.sleep(0.25)


class _Cdp:
    """One page's DevTools session: commands, and waits on a JS expression with a deadline naming what failed."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, timeout: float) -> None:
        self.ws, self.timeout, self.next_id = ws, timeout, 0

    async def call(self, method: str, **params: object) -> dict[str, object]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        async for message in self.ws:
            data = json.loads(message.data)
            if data.get("id") == self.next_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return dict(data.get("result") or {})
        raise RuntimeError(f"chromium closed the DevTools connection during {method}")

    async def evaluate(self, expression: str) -> object:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        value = result.get("result")
        return value.get("value") if isinstance(value, dict) else None

    async def wait_for(self, expression: str, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not await self.evaluate(expression):
            if time.monotonic() > deadline:
                raise SystemExit(f"gave up after {self.timeout:g} s waiting for {what} in Airflow's UI")
            await asyncio.sleep(0.25)

    async def wait_steady(self, expression: str, what: str, polls: int = 4) -> None:
        """Until the expression's value is the same for ``polls`` polls in a row (an animation has ended)."""
        deadline, seen, same = time.monotonic() + self.timeout, None, 0
        while same < polls:
            value = await self.evaluate(expression)
            same = same + 1 if value == seen else 0
            seen = value
            if time.monotonic() > deadline:
                raise SystemExit(f"gave up after {self.timeout:g} s waiting for {what} to end")
            await asyncio.sleep(0.1)
