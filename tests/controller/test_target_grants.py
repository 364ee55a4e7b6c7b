"""The tenancy map's composerTargets: a policy may name only a target the admin granted, with that target's credentials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.config import AirflowCredentials, ConfigError, ControllerConfig
from controller.target_grants import TargetNotAllowedError
from controller.tenancy import Tenancy, TenancyConfigError
from vmbackup.model.policy import ComposerTarget, parse_policy

ENVIRONMENT = "projects/shop-prod-1/locations/us-central1/environments/backups"
BASIC_GRANT = {
    "bucket": "shop-composer-bucket",
    "airflowUri": "https://Airflow.Shop.example:443/",
    "auth": {"type": "basic", "existingSecret": "shop-airflow"},
}


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    secret = tmp_path / "shop-airflow"
    secret.mkdir()
    (secret / "username").write_text("shop\n")
    (secret / "password").write_text("s3cret\n")
    return tmp_path


def load(secrets_dir: Path, *grants: Any, **top: Any) -> Tenancy:
    data = {**top, "namespaces": {"shop": {"projects": ["shop-prod-1"], "composerTargets": list(grants)}}}
    return Tenancy.load(text=json.dumps(data), secrets_dir=secrets_dir)


def composer(**fields: str) -> ComposerTarget:
    return ComposerTarget.model_validate(fields)


def test_a_granted_bucket_and_url_come_with_the_credentials_read_from_its_secret(secrets_dir: Path) -> None:
    grant, auth = load(secrets_dir, BASIC_GRANT).grant(
        "shop", composer(bucket="shop-composer-bucket", airflowUri="https://airflow.shop.example")
    )

    assert grant.airflow_uri == "https://airflow.shop.example"
    assert auth == AirflowCredentials(mode="basic", username="shop", password="s3cret")


def test_the_granted_bucket_with_another_url_is_refused_naming_the_field_and_the_fix(secrets_dir: Path) -> None:
    with pytest.raises(TargetNotAllowedError) as refused:
        load(secrets_dir, BASIC_GRANT).grant(
            "shop", composer(bucket="shop-composer-bucket", airflowUri="http://127.0.0.1:9177")
        )

    message = str(refused.value)
    assert "spec.composer.airflowUri 'http://127.0.0.1:9177'" in message
    assert "granted with airflowUri https://airflow.shop.example" in message
    assert "namespaces.shop.composerTargets" in message


def test_another_namespace_may_not_use_the_grant(secrets_dir: Path) -> None:
    with pytest.raises(TargetNotAllowedError, match="namespace 'billing'"):
        load(secrets_dir, BASIC_GRANT).grant(
            "billing", composer(bucket="shop-composer-bucket", airflowUri="https://airflow.shop.example")
        )


def test_allow_all_projects_still_refuses_an_ungranted_airflow(secrets_dir: Path) -> None:
    tenancy = load(secrets_dir, allowAllProjects=True)
    policy = parse_policy(
        "anyone",
        "p",
        {
            "project": "any-project-1",
            "instances": [{"name": "vm-1", "zone": "us-central1-a"}],
            "composer": {"bucket": "shop-composer-bucket", "airflowUri": "http://127.0.0.1:9177"},
        },
    )

    refusal = tenancy.refusal(policy)

    assert refusal is not None
    assert "spec.composer.airflowUri" in refusal


def test_targets_granted_at_the_top_serve_every_namespace(secrets_dir: Path) -> None:
    tenancy = load(secrets_dir, allowAllProjects=True, composerTargets=[BASIC_GRANT])

    grant, _ = tenancy.grant(
        "anyone", composer(bucket="shop-composer-bucket", airflowUri="https://airflow.shop.example")
    )

    assert grant.bucket == "shop-composer-bucket"


def test_a_granted_environment_gets_the_controllers_google_identity(secrets_dir: Path) -> None:
    grant, auth = load(secrets_dir, ENVIRONMENT).grant("shop", composer(environment=ENVIRONMENT))

    assert grant.environment == ENVIRONMENT
    assert auth.mode == "google"


def test_the_old_bare_bucket_grant_is_refused_when_the_map_is_read_with_the_entry_to_write(secrets_dir: Path) -> None:
    with pytest.raises(TenancyConfigError) as refused:
        load(secrets_dir, "shop-composer-bucket")

    message = str(refused.value)
    assert "namespaces.shop.composerTargets.0" in message
    assert "{bucket: shop-composer-bucket, airflowUri: <its Airflow URL>" in message


@pytest.mark.parametrize(
    ("grant", "problem"),
    [
        ({"bucket": "b-1", "airflowUri": "https://u:p@airflow.example"}, "must not carry credentials"),
        ({"bucket": "b-1", "airflowUri": "https://airflow.example/?next=x"}, "must not have a query"),
        ({"bucket": "b-1"}, "bucket together with airflowUri"),
        ({"bucket": "b-1", "airflowUri": "http://airflow.example", "auth": {"type": "google"}}, "needs an https://"),
        ({"bucket": "b-1", "airflowUri": "https://airflow.example", "auth": {"type": "basic"}}, "existingSecret"),
        ({"environment": ENVIRONMENT, "auth": {"type": "basic", "existingSecret": "s"}}, "takes no bucket"),
    ],
    ids=["userinfo", "query", "no-url", "google-over-http", "basic-without-secret", "environment-with-auth"],
)
def test_a_grant_that_could_leak_credentials_stops_the_controller(secrets_dir: Path, grant: Any, problem: str) -> None:
    with pytest.raises(TenancyConfigError, match=problem):
        load(secrets_dir, grant)


def test_a_missing_secret_key_names_the_file_and_the_mount(secrets_dir: Path) -> None:
    grant = {**BASIC_GRANT, "auth": {"type": "basic", "existingSecret": "not-mounted"}}

    with pytest.raises(TenancyConfigError, match=r"Secret 'not-mounted' at .*not-mounted/username"):
        load(secrets_dir, grant)


def test_one_target_granted_twice_with_different_credentials_stops_the_controller(secrets_dir: Path) -> None:
    other = {**BASIC_GRANT, "auth": {"type": "none"}}

    with pytest.raises(TenancyConfigError, match="twice with different auth"):
        load(secrets_dir, BASIC_GRANT, other)


def test_the_default_airflow_url_may_not_carry_credentials_either() -> None:
    with pytest.raises(ConfigError, match=r"VMBACKUP_AIRFLOW_URL=.*must not carry credentials"):
        ControllerConfig(bucket="b-1", airflow_url="http://admin:pw@airflow:8080")
