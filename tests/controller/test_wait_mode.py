"""The wait mode the controller renders DAGs with: deferrable where Airflow reports a live triggerer.

Against real Airflow servers (3.x and 2.10), which run no triggerer until a test starts one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from controller.airflow_api import AirflowClient
from controller.airflow_auth import make_auth
from controller.airflow_link import AirflowControl
from controller.config import ConfigError, ControllerConfig
from controller.wait_mode import WaitModeResolver, wait_mode_from_health
from tests.fixtures.airflow_api import AirflowServer
from tests.fixtures.gcs import free_port
from tests.fixtures.waits import eventually


def control(server: AirflowServer) -> AirflowControl:
    return AirflowControl(server.client())


def nowhere() -> AirflowControl:
    """An Airflow address where nothing listens."""
    return AirflowControl(AirflowClient(f"http://127.0.0.1:{free_port()}", make_auth("none")))


def key(server: AirflowServer) -> tuple[str, str]:
    return ("bucket", server.base_url)


def deferrable(resolver: WaitModeResolver, server: AirflowServer, airflow: AirflowControl) -> Callable[[], Any]:
    """A check for `eventually`: a triggerer seen healthy once can miss its heartbeat threshold on a loaded
    machine (and be reported unhealthy for a while); what the resolver must do is answer deferrable for it."""

    async def check() -> bool:
        return await resolver.mode(key(server), airflow) == "deferrable"

    return check


# -- the health report, as both Airflow lines write it ----------------------------------------------------


@pytest.mark.parametrize(
    ("triggerer", "mode"),
    [
        ({"status": "healthy", "latest_triggerer_heartbeat": "2026-11-25T10:00:00+00:00"}, "deferrable"),
        ({"status": "unhealthy", "latest_triggerer_heartbeat": "2026-11-20T10:00:00+00:00"}, "reschedule"),
        ({"status": None, "latest_triggerer_heartbeat": None}, "reschedule"),
        (None, "reschedule"),
    ],
    ids=["live", "stale-heartbeat", "never-ran", "not-reported"],
)
def test_only_a_live_triggerer_makes_sensors_deferrable(triggerer: Any, mode: str) -> None:
    health = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}
    if triggerer is not None:
        health["triggerer"] = triggerer

    assert wait_mode_from_health(health) == mode


# -- over the wire ---------------------------------------------------------------------------------------------


async def test_an_airflow_without_a_triggerer_gets_reschedule_sensors(airflow_api: AirflowServer) -> None:
    airflow = control(airflow_api)
    try:
        assert await WaitModeResolver().mode(key(airflow_api), airflow) == "reschedule"
    finally:
        await airflow.close()


async def test_an_airflow_with_a_live_triggerer_gets_deferrable_sensors(airflow_api: AirflowServer) -> None:
    airflow = control(airflow_api)
    resolver = WaitModeResolver(refresh_seconds=0)  # asks every time
    try:
        with airflow_api.triggerer_running():
            with_triggerer = await eventually(deferrable(resolver, airflow_api, airflow))
        after_it_stopped = await resolver.mode(key(airflow_api), airflow)  # the block waited for it to be gone
    finally:
        await airflow.close()

    assert (with_triggerer, after_it_stopped) == (True, "reschedule")


async def test_the_health_endpoint_is_asked_once_per_refresh_interval(airflow_api: AirflowServer) -> None:
    client = airflow_api.client()
    resolver = WaitModeResolver(refresh_seconds=300)
    try:
        await resolver.mode(key(airflow_api), AirflowControl(client))
        asked = client.requests
        for _ in range(5):
            await resolver.mode(key(airflow_api), AirflowControl(client))
    finally:
        await client.close()

    assert client.requests == asked


async def test_an_unreachable_airflow_never_answered_gets_reschedule_sensors() -> None:
    airflow = nowhere()
    try:
        assert await WaitModeResolver().mode(("bucket", "http://nowhere"), airflow) == "reschedule"
    finally:
        await airflow.close()


async def test_an_unreachable_airflow_keeps_its_last_answer(airflow_api: AirflowServer) -> None:
    resolver = WaitModeResolver(refresh_seconds=0)  # asks every time
    airflow, gone = control(airflow_api), nowhere()
    try:
        with airflow_api.triggerer_running():
            await eventually(deferrable(resolver, airflow_api, airflow))
            while_down = await resolver.mode(key(airflow_api), gone)  # same environment, its API unreachable
    finally:
        await airflow.close()
        await gone.close()

    assert while_down == "deferrable"


async def test_a_configured_mode_is_used_without_asking_airflow() -> None:
    airflow = nowhere()
    try:
        forced = await WaitModeResolver(setting="deferrable").mode(("bucket", "http://nowhere"), airflow)
    finally:
        await airflow.close()

    assert forced == "deferrable"
    assert airflow.client.requests == 0


def test_an_unknown_wait_mode_setting_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="VMBACKUP_WAIT_MODE='sometimes' must be one of auto, reschedule, deferrable"):
        ControllerConfig.from_env({"VMBACKUP_WAIT_MODE": "sometimes"})
