"""Composer discovery: reading an Environment as the Composer API returns it (built here as data)."""

from __future__ import annotations

import pytest
from google.cloud.orchestration.airflow import service_v1

from controller.composer import ComposerError, discover, target_from_environment

NAME = "projects/demo-project/locations/us-central1/environments/backups"


def environment(
    prefix: str = "gs://us-central1-backups-1a2b3c4d-bucket/dags",
    image: str = "",
    state: int = service_v1.Environment.State.RUNNING,
) -> service_v1.Environment:
    return service_v1.Environment(
        name=NAME,
        state=state,
        config=service_v1.EnvironmentConfig(
            dag_gcs_prefix=prefix,
            airflow_uri="https://0123abcd-dot-us-central1.composer.googleusercontent.com/",
            software_config=service_v1.SoftwareConfig(image_version=image),
        ),
    )


def test_bucket_and_dags_prefix_come_from_the_dag_prefix() -> None:
    target = target_from_environment(environment())
    assert (target.bucket, target.dags_prefix) == ("us-central1-backups-1a2b3c4d-bucket", "dags")


def test_airflow_uri_is_kept_without_trailing_slash() -> None:
    assert target_from_environment(environment()).airflow_uri == (
        "https://0123abcd-dot-us-central1.composer.googleusercontent.com"
    )


@pytest.mark.parametrize(
    ("image", "airflow_version", "api_version"),
    [
        ("composer-3-airflow-2.10.5-build.7", "2.10.5", 1),
        ("composer-2.9.7-airflow-2.9.3", "2.9.3", 1),
        ("composer-3-airflow-3.1.0-build.2", "3.1.0", 2),
        ("", None, None),
    ],
)
def test_api_generation_follows_the_image_version(
    image: str, airflow_version: str | None, api_version: int | None
) -> None:
    target = target_from_environment(environment(image=image))
    assert (target.airflow_version, target.api_version) == (airflow_version, api_version)


def test_environment_still_being_created_is_refused_with_its_state() -> None:
    creating = environment(prefix="", state=service_v1.Environment.State.CREATING)
    with pytest.raises(ComposerError, match=r"no DAG bucket yet \(state CREATING\); wait until it is RUNNING"):
        target_from_environment(creating)


async def test_malformed_environment_name_is_refused_before_any_call() -> None:
    with pytest.raises(ComposerError, match="use projects/PROJECT/locations/REGION/environments/NAME"):
        await discover("backups")
