"""Coverage: the granted projects' VMs, listed from the simulator with the real client, against the policies."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.compute_inventory import ComputeInstanceLister
from controller.coverage import Protector, Scope, granted_scopes
from controller.coverage_scan import CoverageScan
from controller.metrics import UNPROTECTED_VMS, ControllerMetrics
from controller.tenancy import Tenancy
from devstack.gce_simulator import ComputeSimulator
from tests.controller.conftest import COVERAGE_TENANCY, DEV_PROJECT, UNGRANTED_PROJECT, ConfiguredStarter, create_policy
from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.kube import eventually, offline_config
from vmbackup.compute.rate_budget import ProcessLedger, RateBudget
from vmbackup.model.policy import parse_policy

# demo-project (seeded): wordpress-1-vm (us-central1-c), web-1, app-1, db-1 (us-central1-a), web-2 (us-central1-b)
WORDPRESS: dict[str, Any] = {"project": GCE_PROJECT, "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}]}
SHOP_WEB: dict[str, Any] = {  # label-selected: web-1 and web-2, not app-1 (tier app) nor db-1
    "project": GCE_PROJECT,
    "selector": {"zones": ["us-central1-a", "us-central1-b"], "matchLabels": {"app": "shop", "tier": "web"}},
}
DB_SUSPENDED: dict[str, Any] = {"project": GCE_PROJECT, "instances": [{"name": "db-1", "zone": "us-central1-a"}]}


def protector(name: str, spec: dict[str, Any], reason: str = "") -> Protector:
    return Protector("shop", name, parse_policy("shop", name, spec).spec, reason)


POLICIES = [protector("wordpress", WORDPRESS), protector("web", SHOP_WEB), protector("db", DB_SUSPENDED, "suspended")]


def scan(world: ComputeSimulator, metrics: ControllerMetrics, policies: list[Protector] = POLICIES) -> CoverageScan:
    lister = ComputeInstanceLister(world.base_url, page_size=2)
    return CoverageScan(
        Tenancy.load(text=json.dumps(COVERAGE_TENANCY)), lister, metrics, lambda: policies, interval_seconds=0
    )


async def test_every_granted_vm_is_listed_with_the_policies_that_protect_it(coverage_world: ComputeSimulator) -> None:
    found = await scan(coverage_world, ControllerMetrics()).scan_once()
    assert found is not None
    listed = {(r.vm.project, r.vm.zone, r.vm.name): sorted(p.ref for p in r.protectors) for r in found.rows}
    assert listed == {
        (GCE_PROJECT, "us-central1-a", "app-1"): [],
        (GCE_PROJECT, "us-central1-a", "db-1"): ["shop/db"],
        (GCE_PROJECT, "us-central1-a", "web-1"): ["shop/web"],
        (GCE_PROJECT, "us-central1-b", "web-2"): ["shop/web"],
        (GCE_PROJECT, "us-central1-c", "wordpress-1-vm"): ["shop/wordpress"],
        (DEV_PROJECT, "us-east1-b", "dev-web"): [],  # the selector searches demo-project only
    }


async def test_a_vm_only_a_suspended_policy_selects_is_unprotected(coverage_world: ComputeSimulator) -> None:
    found = await scan(coverage_world, ControllerMetrics()).scan_once()
    assert found is not None
    assert sorted(r.vm.name for r in found.unprotected()) == ["app-1", "db-1", "dev-web"]


async def test_the_metric_counts_unprotected_vms_per_granted_project(coverage_world: ComputeSimulator) -> None:
    metrics = ControllerMetrics()
    await scan(coverage_world, metrics).scan_once()
    assert metrics.value(UNPROTECTED_VMS, {"project": GCE_PROJECT}) == 2
    assert metrics.value(UNPROTECTED_VMS, {"project": DEV_PROJECT}) == 1
    assert metrics.registry.get_sample_value(UNPROTECTED_VMS, {"project": UNGRANTED_PROJECT}) is None
    assert metrics.value("vmbackup_coverage_scan_timestamp_seconds", {"project": DEV_PROJECT}) > 0


async def test_ungranted_projects_and_zones_are_never_listed(coverage_world: ComputeSimulator) -> None:
    found = await scan(coverage_world, ControllerMetrics()).scan_once()
    assert found is not None
    assert UNGRANTED_PROJECT not in {r.vm.project for r in found.rows}
    assert "dev-outside-grant" not in {r.vm.name for r in found.rows}
    listed = {c["path"].split("/")[4] for c in coverage_world.calls if c["method"] == "instances.aggregatedList"}
    assert listed == {GCE_PROJECT, DEV_PROJECT}


async def test_each_page_is_one_call_paid_from_the_list_budget(coverage_world: ComputeSimulator) -> None:
    budget = RateBudget(ProcessLedger(), {"list_requests": 2}, 0.2)
    lister = ComputeInstanceLister(coverage_world.base_url, budget, page_size=1)
    vms = lister.list_instances(GCE_PROJECT)
    pages = sum(1 for c in coverage_world.calls if c["method"] == "instances.aggregatedList")
    assert len(vms) == 5
    assert pages == 5
    assert sum(budget.taken.values()) == pages
    assert max(budget.taken.values()) <= 2  # never more calls in a window than the budget holds


def test_allow_all_projects_scans_the_projects_the_policies_name() -> None:
    tenancy = Tenancy.load(text="allowAllProjects: true")
    assert tenancy.map is not None
    assert granted_scopes(tenancy.map, None, POLICIES) == [Scope(GCE_PROJECT)]


def test_a_project_granted_to_two_namespaces_is_one_scope_with_both_zone_sets() -> None:
    tenancy = Tenancy.load(
        text="namespaces: {a: {projects: [{project: p-one-1, zones: [us-east1-b]}]}, "
        "b: {projects: [{project: p-one-1, zones: [us-east1-c]}]}}"
    )
    assert tenancy.map is not None
    assert granted_scopes(tenancy.map, None) == [Scope("p-one-1", frozenset({"us-east1-b", "us-east1-c"}))]
    assert granted_scopes(tenancy.map, ["a"]) == [Scope("p-one-1", frozenset({"us-east1-b"}))]


async def test_a_failed_listing_keeps_the_projects_last_count(coverage_world: ComputeSimulator) -> None:
    metrics = ControllerMetrics()
    covered = scan(coverage_world, metrics)
    await covered.scan_once()
    covered.lister = ComputeInstanceLister("http://127.0.0.1:9", page_size=2)  # nothing listens there
    await covered.scan_once()
    assert metrics.value(UNPROTECTED_VMS, {"project": GCE_PROJECT}) == 2


@pytest.mark.usefixtures("kubeconfig")
async def test_the_running_controller_publishes_coverage_on_its_timer(
    kube: kmock.KubernetesEmulator, start_controller: ConfiguredStarter, gcs_bucket: storage.Bucket, coverage_world: Any
) -> None:
    config = dataclasses.replace(
        offline_config(gcs_bucket.name, COVERAGE_TENANCY),
        coverage_interval_seconds=0.5,
        compute_endpoint=coverage_world.base_url,
    )
    async with start_controller(config) as controller:
        await create_policy(kube, "wordpress", WORDPRESS)
        await create_policy(kube, "web", SHOP_WEB)
        await create_policy(kube, "db", {**DB_SUSPENDED, "suspend": True})

        def counts() -> tuple[float, float]:
            metrics = controller.metrics
            return (
                metrics.value(UNPROTECTED_VMS, {"project": GCE_PROJECT}),
                metrics.value(UNPROTECTED_VMS, {"project": DEV_PROJECT}),
            )

        await eventually(lambda: counts() == (2, 1), what="2 unprotected VMs in demo-project, 1 in shop-dev-1")
