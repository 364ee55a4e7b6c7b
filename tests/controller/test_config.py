"""Controller settings from the environment the Helm chart sets; bad values name the variable and the fix."""

from pathlib import Path

import pytest

from controller.config import ConfigError, ControllerConfig


def test_a_self_managed_airflow_target_is_read_from_the_environment() -> None:
    config = ControllerConfig.from_env(
        {
            "VMBACKUP_BUCKET": "composer-bucket",
            "VMBACKUP_AIRFLOW_URL": "http://airflow:8080",
            "VMBACKUP_AIRFLOW_AUTH": "basic",
            "VMBACKUP_AIRFLOW_USERNAME": "admin",
            "VMBACKUP_AIRFLOW_PASSWORD": "secret",
            "VMBACKUP_NAMESPACES": "shop, billing",
            "VMBACKUP_POLL_INTERVAL": "15",
            "VMBACKUP_LEASE_NAME": "vmbackup",
            "VMBACKUP_LEASE_NAMESPACE": "vmbackup-system",
        }
    )
    assert (config.bucket, config.airflow_url) == ("composer-bucket", "http://airflow:8080")
    assert config.airflow_auth.mode == "basic"
    assert config.airflow_auth.password == "secret"
    assert config.namespaces == ("shop", "billing")
    assert config.poll_interval_seconds == 15
    assert (config.lease_name, config.lease_namespace) == ("vmbackup", "vmbackup-system")


def test_secrets_can_come_from_mounted_files(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc.def.ghi\n")
    config = ControllerConfig.from_env({"VMBACKUP_AIRFLOW_AUTH": "jwt", "VMBACKUP_AIRFLOW_TOKEN_FILE": str(token)})
    assert config.airflow_auth.token == "abc.def.ghi"


def test_the_restore_signing_key_comes_from_a_mounted_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k" * 64 + "\n")
    config = ControllerConfig.from_env({"VMBACKUP_RUN_SIGNING_KEY_FILE": str(key)})
    assert config.run_signing_key == "k" * 64
    assert "k" * 64 not in repr(config)


def test_flags_override_the_environment() -> None:
    config = ControllerConfig.from_env({"VMBACKUP_POLL_INTERVAL": "15"}, poll_interval_seconds=5.0, lease_name=None)
    assert config.poll_interval_seconds == 5.0


def test_defaults_are_standalone_json_logs_all_namespaces() -> None:
    config = ControllerConfig.from_env({})
    assert config.lease_name is None
    assert config.log_format == "json"
    assert config.namespaces == ()
    assert not config.has_default_target


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"VMBACKUP_BUCKET": "b"}, "VMBACKUP_AIRFLOW_URL"),
        (
            {"VMBACKUP_COMPOSER_ENVIRONMENT": "projects/p/locations/l/environments/e", "VMBACKUP_BUCKET": "b"},
            "not both",
        ),
        ({"VMBACKUP_AIRFLOW_AUTH": "kerberos"}, "VMBACKUP_AIRFLOW_AUTH"),
        ({"VMBACKUP_LEASE_DURATION": "10"}, "greater than VMBACKUP_LEASE_RENEW_DEADLINE"),
        ({"VMBACKUP_LEASE_RETRY_PERIOD": "9"}, "VMBACKUP_LEASE_RETRY_PERIOD"),
        ({"VMBACKUP_LEASE_DURATION": "15.5"}, "whole number"),
        ({"VMBACKUP_AIRFLOW_AUTH": "basic"}, "VMBACKUP_AIRFLOW_PASSWORD"),
        ({"VMBACKUP_POLL_INTERVAL": "soon"}, "VMBACKUP_POLL_INTERVAL"),
        ({"VMBACKUP_POLL_INTERVAL": "0"}, "VMBACKUP_POLL_INTERVAL"),
        ({"VMBACKUP_AIRFLOW_PASSWORD_FILE": "/nonexistent/password"}, "VMBACKUP_AIRFLOW_PASSWORD_FILE"),
        ({"VMBACKUP_RUN_SIGNING_KEY": "short"}, "VMBACKUP_RUN_SIGNING_KEY must have at least 32"),
        ({"VMBACKUP_RUN_SIGNATURE_TTL": "5"}, "VMBACKUP_RUN_SIGNATURE_TTL"),
    ],
)
def test_a_bad_setting_names_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        ControllerConfig.from_env(environ)
