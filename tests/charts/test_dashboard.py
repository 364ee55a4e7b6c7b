"""The chart's Grafana dashboard: shipped in a ConfigMap Grafana's sidecar finds, over metrics the controller exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric

from controller.metrics import ControllerMetrics
from tests.fixtures.tools import Helm, TemplateResult

PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


@pytest.fixture(scope="module")
def render(helm: Helm) -> TemplateResult:
    return helm.template(values={"metrics": {"grafanaDashboard": {"enabled": True}}})


@pytest.fixture(scope="module")
def dashboard(render: TemplateResult) -> dict[str, Any]:
    (config_map,) = [doc for doc in render.of_kind("ConfigMap") if doc["metadata"]["name"].endswith("-dashboard")]
    (text,) = config_map["data"].values()
    return dict(json.loads(text))


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are not functions, keywords or label names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)  # label matchers, ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set(re.findall(r"(?<![\w$])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text))
    return names - PROMQL_KEYWORDS


def exported(metrics: ControllerMetrics) -> set[str]:
    families: list[Metric] = list(metrics.registry.collect())
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def test_the_dashboard_is_off_by_default(helm: Helm) -> None:
    assert not [doc for doc in helm.template().of_kind("ConfigMap") if doc["metadata"]["name"].endswith("-dashboard")]


def test_the_config_map_carries_the_sidecar_label(render: TemplateResult) -> None:
    (config_map,) = [doc for doc in render.of_kind("ConfigMap") if doc["metadata"]["name"].endswith("-dashboard")]

    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_the_metric_name_parser_skips_functions_keywords_and_labels() -> None:
    expr = 'sum by (namespace, name) (increase(vmbackup_failed_runs_total{namespace=~"$namespace"}[1h])) > 0'

    assert metric_names(expr) == {"vmbackup_failed_runs_total"}


def test_every_panel_queries_metrics_the_controller_exports(dashboard: dict[str, Any]) -> None:
    known = exported(ControllerMetrics())
    queried = {
        panel["title"]: metric_names(target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]
    }

    assert all(queried.values()), queried
    assert {title: names - known for title, names in queried.items() if names - known} == {}


def test_the_dashboard_shows_what_users_ask(dashboard: dict[str, Any]) -> None:
    queried = {name for panel in dashboard["panels"] for t in panel["targets"] for name in metric_names(t["expr"])}

    assert {
        "vmbackup_last_success_timestamp_seconds",
        "vmbackup_vm_downtime_seconds",
        "vmbackup_failed_runs_total",
        "vmbackup_missed_runs_total",
    } <= queried


def test_the_namespace_variable_queries_an_exported_metric(dashboard: dict[str, Any]) -> None:
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "namespace"]

    assert metric_names(variable["definition"].removeprefix("label_values(").split(",")[0]) <= exported(
        ControllerMetrics()
    )
