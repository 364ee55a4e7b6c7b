"""The signed run conf both sides share: what verifies, and what is refused with a message saying why."""

from __future__ import annotations

import pytest

from vmbackup.model.run_signature import (
    SIGNING_KEY_ENV,
    RunSignatureError,
    sign_run_conf,
    signing_key_from_env,
    verify_run_conf,
)

KEY = b"k" * 64
PAYLOAD = '{"name":"db-back","namespace":"shop"}'
NOW = 1_800_000_000


def conf(**changes: object) -> dict[str, object]:
    signed = sign_run_conf(KEY, dag_id="vmbackup_restore", run_id="vmrestore__u1", payload=PAYLOAD, expires_at=NOW)
    return {**signed, **changes}


def verify(value: dict[str, object], *, dag_id: str = "vmbackup_restore", run_id: str = "vmrestore__u1") -> str:
    return verify_run_conf(KEY, value, dag_id=dag_id, run_id=run_id, now=NOW - 1)


def test_a_signed_conf_gives_back_its_payload() -> None:
    assert verify(conf()) == PAYLOAD


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({}, "no signed configuration"),
        (conf(payload=PAYLOAD.replace("db-back", "db-other")), "does not match"),
        (conf(expiresAt=NOW + 3600), "does not match"),
        (conf(version=2), "unknown conf version"),
    ],
)
def test_a_conf_not_signed_as_it_is_is_refused(value: dict[str, object], why: str) -> None:
    with pytest.raises(RunSignatureError, match=why):
        verify(value)


def test_a_conf_signed_for_another_run_or_dag_is_refused() -> None:
    with pytest.raises(RunSignatureError, match="does not match"):
        verify(conf(), run_id="vmrestore__u2")
    with pytest.raises(RunSignatureError, match="does not match"):
        verify(conf(), dag_id="vmbackup_restore_in_place")


def test_a_conf_is_refused_once_it_expired() -> None:
    with pytest.raises(RunSignatureError, match="expired"):
        verify_run_conf(KEY, conf(), dag_id="vmbackup_restore", run_id="vmrestore__u1", now=NOW + 1)


@pytest.mark.parametrize(("value", "why"), [("", "is not set"), ("short", "has 5 characters, fewer than 32")])
def test_a_missing_or_short_key_names_the_variable(value: str, why: str) -> None:
    with pytest.raises(RunSignatureError, match=f"{SIGNING_KEY_ENV} {why}"):
        signing_key_from_env({SIGNING_KEY_ENV: value})
