"""Signed run configurations: only the controller can start a restore run of the shared restore DAGs.

The shared DAGs (one file shipped with the plugins) take the validated restore as their run's `conf`. Anyone who
may trigger a DAG in the Airflow UI could otherwise hand them any VM to restore; so the controller signs the
conf with HMAC-SHA256 under a key it shares with the Airflow environment (VMBACKUP_RUN_SIGNING_KEY on both
sides, docs/operations/restore-signing.md), binding the payload to the DAG id, the run id and an expiry, and
every task verifies it before it does anything. Defined once here: the controller signs with `sign_run_conf`,
the worker checks with `verify_run_conf`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

SIGNING_KEY_ENV = "VMBACKUP_RUN_SIGNING_KEY"
MIN_KEY_LENGTH = 32  # characters; e.g. `openssl rand -hex 32` gives 64
CONF_VERSION = 1
PAYLOAD_FIELD = "payload"  # the restore's canonical JSON, as one string (signed byte for byte)
EXPIRES_FIELD = "expiresAt"  # Unix seconds; a run must start before then
SIGNATURE_FIELD = "signature"
VERSION_FIELD = "version"
HOW_TO_START = "start restores by creating a VMRestore (kubectl apply or vmbackupctl restore), not from the Airflow UI"


class RunSignatureError(ValueError):
    """The conf was not signed by the controller for this run (or its key is not set up); nothing was touched."""


def signing_key_from_env(env: Mapping[str, str] | None = None) -> bytes:
    """The shared key as bytes; a missing or short key is an error that names the variable."""
    value = (os.environ if env is None else env).get(SIGNING_KEY_ENV, "")
    if len(value) < MIN_KEY_LENGTH:
        problem = "is not set" if not value else f"has {len(value)} characters, fewer than {MIN_KEY_LENGTH}"
        raise RunSignatureError(
            f"{SIGNING_KEY_ENV} {problem}: set the same random value (e.g. `openssl rand -hex 32`) in the "
            "controller's Secret and in the Airflow environment (docs/operations/restore-signing.md)"
        )
    return value.encode("utf-8")


def _message(dag_id: str, run_id: str, payload: str, expires_at: int) -> bytes:
    """What is signed: every field that decides what a run does or when it may start, in canonical JSON."""
    fields = {"dagId": dag_id, "expiresAt": expires_at, "payload": payload, "runId": run_id, "version": CONF_VERSION}
    return json.dumps(fields, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _signature(key: bytes, dag_id: str, run_id: str, payload: str, expires_at: int) -> str:
    return hmac.new(key, _message(dag_id, run_id, payload, expires_at), hashlib.sha256).hexdigest()


def sign_run_conf(key: bytes, *, dag_id: str, run_id: str, payload: str, expires_at: int) -> dict[str, Any]:
    """The `conf` of one run: the payload (data, never code) with its signature."""
    return {
        VERSION_FIELD: CONF_VERSION,
        PAYLOAD_FIELD: payload,
        EXPIRES_FIELD: expires_at,
        SIGNATURE_FIELD: _signature(key, dag_id, run_id, payload, expires_at),
    }


def verify_run_conf(key: bytes, conf: Mapping[str, Any] | None, *, dag_id: str, run_id: str, now: float) -> str:
    """The signed payload of this run's conf; RunSignatureError unless the controller signed exactly it, and `now`
    (when the run started) is not past its expiry."""
    conf = conf or {}
    signature, payload, expires_at = conf.get(SIGNATURE_FIELD), conf.get(PAYLOAD_FIELD), conf.get(EXPIRES_FIELD)
    if not isinstance(signature, str) or not isinstance(payload, str) or not isinstance(expires_at, int):
        raise RunSignatureError(f"run {run_id} of {dag_id} has no signed configuration: {HOW_TO_START}")
    if conf.get(VERSION_FIELD) != CONF_VERSION:
        raise RunSignatureError(f"run {run_id} of {dag_id}: unknown conf version {conf.get(VERSION_FIELD)!r}")
    expected = _signature(key, dag_id, run_id, payload, expires_at)
    if not hmac.compare_digest(expected, signature):
        raise RunSignatureError(
            f"run {run_id} of {dag_id}: the configuration's signature does not match (changed, signed for another "
            f"run, or signed with another key); {HOW_TO_START}"
        )
    if now > expires_at:
        raise RunSignatureError(
            f"run {run_id} of {dag_id}: its signed configuration expired at {expires_at} (Unix time) before the run "
            "started; delete and re-create the VMRestore to start it again"
        )
    return payload
