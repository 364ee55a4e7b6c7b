"""A policy deleted while a status poll that asks about it is in flight: nothing of it comes back afterwards.

One batched poll per target asks Airflow about every policy of it. When a policy is deleted while such a poll is
in flight, the poll's answer must not bring back what the deletion removed:

- taken by another policy's refresh (the deleted one's timer idle): its metric series, which nothing would ever
  remove again (e.g. vmbackup_airflow_reachable at 0 for a policy long gone);
- taken by its own refresh (kopf stops a timer only once its tick has ended, and runs the deletion handler
  meanwhile): that refresh's status, series and DAG (a wait-mode change would render it again), or a drill.

The controller's own calls stand in for kopf's (a refresh timer's tick, the deletion handler), so the order is
the test's, not a scheduler's; the bucket is the Cloud Storage emulator and Airflow a real HTTP listener on
loopback (tests/controller/test_credentials.py's empty Airflow 3) that holds the poll until the test releases it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from aiohttp import web
from google.cloud import storage
from kopf._core.engines import posting  # kopf.event's operator settings, outside a running operator

from controller.app import build_controller
from controller.bucket import dag_object_name
from controller.reconciler import Controller
from tests.controller.conftest import NAMESPACE, series_of
from tests.controller.test_credentials import Listener, empty_airflow
from tests.fixtures.kube import eventually, offline_config, policy_object
from vmbackup.model.policy import dag_id_for

SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "web-1", "zone": "us-central1-a"}],
    "schedule": "0 2 * * *",
    "rpo": "26h",  # a refresh writes per-VM recovery-point series too
}
TENANCY = {"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}


class HeldPolls:
    """Answers as an empty Airflow 3; once holding, keeps the status poll's DAG listing until released; with
    ``triggerer``, its health reports a live triggerer (the controller's DAGs then get deferrable sensors)."""

    def __init__(self) -> None:
        self.holding = False
        self.held = 0
        self.released = asyncio.Event()
        self.triggerer = False

    async def answer(self, request: web.Request) -> web.StreamResponse:
        if self.holding and (request.method, request.path) == ("GET", "/api/v2/dags"):  # one of the poll's three
            self.held += 1
            await self.released.wait()
        if self.triggerer and request.path == "/api/v2/monitor/health":
            return web.json_response({"metadatabase": {"status": "healthy"}, "triggerer": {"status": "healthy"}})
        return await empty_airflow(request)


@pytest.fixture
async def airflow() -> AsyncIterator[tuple[HeldPolls, Listener]]:
    polls = HeldPolls()
    listener = await Listener(polls.answer).start()
    yield polls, listener
    polls.released.set()
    await listener.stop()


@pytest.fixture
async def controller(gcs_bucket: storage.Bucket, airflow: tuple[HeldPolls, Listener]) -> AsyncIterator[Controller]:
    config = dataclasses.replace(
        offline_config(gcs_bucket.name, TENANCY),
        airflow_url=airflow[1].url,
        wait_mode_refresh_seconds=1e-9,  # the wait mode is asked again at each refresh: a triggerer counts at once
    )
    built = build_controller(config, storage_client=gcs_bucket.client)
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # no Kubernetes here to post Events to
    token = posting.settings_var.set(settings)
    yield built
    posting.settings_var.reset(token)
    await built.close()


def body(name: str) -> kopf.Body:
    return kopf.Body(policy_object(NAMESPACE, name, SPEC))


async def test_a_policy_deleted_while_a_poll_asks_about_it_keeps_no_series(
    controller: Controller, airflow: tuple[HeldPolls, Listener]
) -> None:
    polls, _ = airflow
    for name in ("web", "db"):  # created: their DAGs uploaded
        await controller.reconcile(body(name), kopf.Patch())
    polls.holding = True

    # db's refresh timer ticks: the target's batched poll, about web too, waits for Airflow.
    refresh = asyncio.create_task(controller.refresh(body("db"), kopf.Patch()))
    await eventually(lambda: polls.held, what="the poll waiting for Airflow")
    tracked = series_of(controller, "web")
    await controller.remove(body("web"))  # web is deleted (its own timer idle: stopped at once, nothing waits)
    forgotten = series_of(controller, "web")
    polls.released.set()
    await refresh

    assert (bool(tracked), forgotten) == (True, [])
    assert series_of(controller, "web") == []
    assert series_of(controller, "db")  # the poll's answer still counts for the policy that stays


async def test_a_policy_deleted_while_its_own_refresh_asks_about_it_gets_nothing_from_that_refresh(
    controller: Controller, airflow: tuple[HeldPolls, Listener]
) -> None:
    polls, _ = airflow
    await controller.reconcile(body("web"), kopf.Patch())
    polls.holding = True

    patch = kopf.Patch()
    refresh = asyncio.create_task(controller.refresh(body("web"), patch))
    await eventually(lambda: polls.held, what="web's poll waiting for Airflow")
    await controller.remove(body("web"))
    polls.released.set()
    await refresh

    assert (dict(patch), series_of(controller, "web")) == ({}, [])


async def test_a_policy_deleted_while_its_refresh_asks_does_not_get_its_dag_back_from_a_new_wait_mode(
    controller: Controller, airflow: tuple[HeldPolls, Listener], gcs_bucket: storage.Bucket
) -> None:
    polls, _ = airflow
    await controller.reconcile(body("web"), kopf.Patch())  # reschedule sensors: Airflow has no triggerer
    dag = dag_object_name(dag_id_for(NAMESPACE, "web"))
    uploaded = gcs_bucket.get_blob(dag) is not None
    polls.holding = True

    refresh = asyncio.create_task(controller.refresh(body("web"), kopf.Patch()))
    await eventually(lambda: polls.held, what="web's poll waiting for Airflow")
    await controller.remove(body("web"))
    polls.triggerer = True  # a triggerer came: the refresh would render the DAG again, deferrable
    polls.released.set()
    await refresh

    assert uploaded
    assert gcs_bucket.get_blob(dag) is None
    assert (NAMESPACE, "web") not in controller.states
