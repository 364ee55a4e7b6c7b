"""AirflowSettings: the Airflow side's knobs from the Composer environment's variables, bad values named."""

from __future__ import annotations

import pytest

from vmbackup.settings import AirflowSettings, SettingsError


def test_unset_variables_give_the_documented_defaults() -> None:
    settings = AirflowSettings.from_env({})
    assert (settings.poke_interval_seconds, settings.vm_down_poke_seconds) == (30.0, 5.0)
    assert (settings.retry_delay_seconds, settings.task_retries) == (60.0, 2)
    assert (settings.compute_endpoint, settings.report_bucket) == (None, None)
    assert settings.max_vms_in_flight_per_project == 20


def test_variables_are_read_into_one_object() -> None:
    settings = AirflowSettings.from_env(
        {
            "VMBACKUP_POKE_INTERVAL_SECONDS": "2",
            "VMBACKUP_TASK_RETRIES": "0",
            "VMBACKUP_COMPUTE_ENDPOINT": "http://127.0.0.1:8085",
            "GCS_BUCKET": "composer-bucket",
            "VMBACKUP_MAX_VMS_IN_FLIGHT_PER_PROJECT": "50",
        }
    )
    assert settings.max_vms_in_flight_per_project == 50
    assert (settings.poke_interval_seconds, settings.task_retries) == (2.0, 0)
    assert (settings.compute_endpoint, settings.report_bucket) == ("http://127.0.0.1:8085", "composer-bucket")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VMBACKUP_TASK_RETRIES", "two"),
        ("VMBACKUP_RETRY_ATTEMPTS", "0"),
        ("VMBACKUP_POKE_INTERVAL_SECONDS", "-1"),
        ("VMBACKUP_MAX_VMS_IN_FLIGHT_PER_PROJECT", "0"),
        ("VMBACKUP_MAX_VMS_IN_FLIGHT_PER_PROJECT", "2.5"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_fix(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"{name}={value!r} is not .*; set it so, or unset it"):
        AirflowSettings.from_env({name: value})


def test_task_defaults_carry_the_retry_settings() -> None:
    defaults = AirflowSettings.from_env({"VMBACKUP_RETRY_DELAY_SECONDS": "5"}).task_defaults()
    assert defaults["retries"] == 2
    assert defaults["retry_delay"].total_seconds() == 5


def test_the_rate_budget_is_shared_through_the_composer_bucket_unless_told_otherwise() -> None:
    assert AirflowSettings.from_env({"GCS_BUCKET": "composer-bucket"}).rate_budget_bucket == "composer-bucket"
    alone = {"GCS_BUCKET": "composer-bucket", "VMBACKUP_RATE_BUDGET_BUCKET": "none"}
    assert AirflowSettings.from_env(alone).rate_budget_bucket is None


def test_rate_budgets_are_read_as_group_pairs() -> None:
    settings = AirflowSettings.from_env({"VMBACKUP_RATE_BUDGETS": "read_requests=1200, zonal_write_requests=600"})
    assert settings.rate_budgets == (("read_requests", 1200), ("zonal_write_requests", 600))
    with pytest.raises(SettingsError, match="VMBACKUP_RATE_BUDGETS: 'read_requests=0' is not group=N"):
        AirflowSettings.from_env({"VMBACKUP_RATE_BUDGETS": "read_requests=0"})
