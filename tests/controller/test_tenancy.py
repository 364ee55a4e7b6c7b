"""Tenancy: a namespace's policies may only target the projects (and zones) the cluster admin granted it."""

from pathlib import Path
from typing import Any

import pytest

from controller.tenancy import Tenancy, TenancyConfigError
from vmbackup.model.policy import BackupPolicy, parse_policy

TENANCY = """
namespaces:
  shop:
    projects:
      - shop-prod-1
      - {project: shop-dev-1, zones: [us-central1-a]}
    backupProjects: [shop-backups]
    composerTargets: [{bucket: shop-composer-bucket, airflowUri: "https://airflow.shop"}]
"""


def policy(
    namespace: str = "shop", project: str = "shop-prod-1", zone: str = "us-central1-a", **spec: Any
) -> BackupPolicy:
    return parse_policy(namespace, "web", {"project": project, "instances": [{"name": "vm-1", "zone": zone}], **spec})


@pytest.fixture
def tenancy() -> Tenancy:
    return Tenancy.load(text=TENANCY)


def test_a_granted_project_is_allowed_in_any_zone(tenancy: Tenancy) -> None:
    assert tenancy.refusal(policy(zone="europe-west1-b")) is None


def test_a_project_not_granted_to_the_namespace_is_refused_with_the_allowed_ones(tenancy: Tenancy) -> None:
    refusal = tenancy.refusal(policy(project="billing-prod-1"))
    assert refusal is not None
    assert "billing-prod-1" in refusal
    assert "shop-prod-1" in refusal


def test_a_namespace_without_a_grant_is_refused(tenancy: Tenancy) -> None:
    refusal = tenancy.refusal(policy(namespace="billing"))
    assert refusal is not None
    assert "namespaces.billing.projects" in refusal


def test_zones_outside_a_zone_restricted_grant_are_refused(tenancy: Tenancy) -> None:
    assert tenancy.refusal(policy(project="shop-dev-1", zone="us-central1-a")) is None
    refusal = tenancy.refusal(policy(project="shop-dev-1", zone="us-east1-b"))
    assert refusal is not None
    assert "us-east1-b" in refusal


def test_a_granted_backup_project_is_allowed(tenancy: Tenancy) -> None:
    assert tenancy.refusal(policy(snapshot={"project": "shop-backups"})) is None


def test_an_ungranted_backup_project_is_refused_naming_the_field_and_the_fix(tenancy: Tenancy) -> None:
    refusal = tenancy.refusal(policy(snapshot={"project": "billing-backups"}))
    assert refusal is not None
    assert refusal.startswith("spec.snapshot.project 'billing-backups' is not granted to namespace 'shop'")
    assert "namespaces.shop.backupProjects" in refusal
    assert "remove spec.snapshot.project" in refusal


def test_a_workload_project_is_no_backup_project_grant(tenancy: Tenancy) -> None:
    """Granting a project for VMs does not let snapshots of another project's VMs be written into it."""
    refusal = tenancy.refusal(policy(snapshot={"project": "shop-dev-1"}))
    assert refusal is not None
    assert "backupProjects" in refusal


def test_a_backup_project_granted_to_another_namespace_is_refused() -> None:
    tenancy = Tenancy.load(text="namespaces: {shop: {projects: [shop-prod-1]}, ops: {backupProjects: [shop-backups]}}")
    assert tenancy.refusal(policy(snapshot={"project": "shop-backups"})) is not None


def test_the_workload_project_itself_needs_no_backup_grant(tenancy: Tenancy) -> None:
    assert tenancy.refusal(policy(snapshot={"project": "shop-prod-1"})) is None


def test_selector_zones_are_checked_too(tenancy: Tenancy) -> None:
    selected = parse_policy(
        "shop", "web", {"project": "shop-dev-1", "selector": {"zones": ["us-east1-b"], "matchLabels": {"app": "web"}}}
    )
    assert tenancy.refusal(selected) is not None


def test_a_composer_override_must_be_granted(tenancy: Tenancy) -> None:
    mine = {"bucket": "shop-composer-bucket", "airflowUri": "https://airflow.shop"}
    theirs = {"bucket": "billing-composer-bucket", "airflowUri": "https://airflow.billing"}
    assert tenancy.refusal(policy(composer=mine)) is None
    refusal = tenancy.refusal(policy(composer=theirs))
    assert refusal is not None
    assert "spec.composer.airflowUri" in refusal
    assert "composerTargets" in refusal


def test_without_a_tenancy_map_everything_is_refused() -> None:
    refusal = Tenancy.load().refusal(policy())
    assert refusal is not None
    assert "allowAllProjects" in refusal


def test_allow_all_projects_trusts_every_namespace() -> None:
    assert (
        Tenancy.load(text='{"allowAllProjects": true}').refusal(policy(namespace="anyone", project="any-project"))
        is None
    )


def test_the_map_is_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tenancy.yaml"
    path.write_text(TENANCY)
    assert Tenancy.load(path=path).refusal(policy()) is None


def test_a_malformed_map_stops_the_controller_with_the_field(tmp_path: Path) -> None:
    with pytest.raises(TenancyConfigError, match=r"namespaces\.shop\.projekts"):
        Tenancy.load(text="namespaces: {shop: {projekts: [a]}}")
