"""Two policies of a namespace that name the same VM: each one's Ready message says so (the controller on kmock)."""

from __future__ import annotations

from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.app import build_controller
from controller.conditions import find_condition
from controller.handlers import build_registry
from tests.fixtures.kube import eventually, offline_config, policy_object, policy_url, running_operator, stored

PROJECT = "shop-prod-1"
pytestmark = pytest.mark.usefixtures("kubeconfig")


def spec(*vms: str) -> dict[str, Any]:
    return {"project": PROJECT, "instances": [{"name": vm, "zone": "us-central1-a"} for vm in vms]}


def ready_message(kube: kmock.KubernetesEmulator, name: str) -> str:
    ready = find_condition((stored(kube, "shop", name).get("status") or {}).get("conditions"), "Ready")
    return str((ready or {}).get("message", ""))


async def test_each_policy_says_which_other_policy_names_its_vms(
    kube: kmock.KubernetesEmulator, gcs_bucket: storage.Bucket, gcs_client: storage.Client
) -> None:
    config = offline_config(gcs_bucket.name, {"namespaces": {"shop": {"projects": [PROJECT]}}})
    async with running_operator(build_registry(build_controller(config, storage_client=gcs_client))):
        for name, body in (("web", spec("web-1", "db-1")), ("db", spec("db-1")), ("cache", spec("cache-1"))):
            async with kube.post(policy_url("shop"), json=policy_object("shop", name, body)) as response:
                assert response.status in (200, 201)

        web = await eventually(lambda: "policy db also names db-1 (us-central1-a)" in ready_message(kube, "web"))
        db = await eventually(lambda: "policy web also names db-1 (us-central1-a)" in ready_message(kube, "db"))
        await eventually(lambda: ready_message(kube, "cache"))

    assert web
    assert db
    assert "also names" not in ready_message(kube, "cache")
