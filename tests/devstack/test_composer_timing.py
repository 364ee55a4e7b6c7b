"""The modelled Composer waits: one settings object, flags that choose it, and errors that name the flag."""

from __future__ import annotations

import pytest

from devstack.__main__ import parse_args, timing_from
from devstack.composer_timing import (
    AIRFLOW_DAG_LIST_INTERVAL_SECONDS,
    COMPOSER_SYNC_DELAY_SECONDS,
    ComposerTiming,
)


def test_the_demo_models_no_delay_unless_asked() -> None:
    assert timing_from(parse_args([])) == ComposerTiming.fast()
    assert ComposerTiming.fast().sync_delay_seconds == 0


def test_composer_timing_uses_composers_defaults() -> None:
    timing = timing_from(parse_args(["--composer-timing"]))

    assert timing.sync_delay_seconds == COMPOSER_SYNC_DELAY_SECONDS
    assert timing.dag_list_interval_seconds == AIRFLOW_DAG_LIST_INTERVAL_SECONDS == 300


def test_each_wait_can_be_set_on_its_own() -> None:
    timing = timing_from(parse_args(["--composer-timing", "--sync-delay", "20", "--dag-list-interval", "30"]))

    assert (timing.sync_delay_seconds, timing.dag_list_interval_seconds) == (20, 30)
    assert timing.worst_case_seconds == 50


def test_a_negative_delay_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--sync-delay", "-1"])
    assert "--sync-delay" in capsys.readouterr().err
