"""The Grafana dashboard reads only series that exist, for the stack a person picked.

Every panel's PromQL is taken apart (see promql.py) and each metric name must be one the
operator exports (telemetry/health.py, telemetry/metrics.py), one the PulseBase API
exposes as docs/alerts.md documents it, or a recording rule of the alert rules. A name
nobody produces would leave a panel empty without anyone noticing; this test notices.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pulsebase_operator.api import models
from pulsebase_operator.render import monitoring
from pulsebase_operator.telemetry import health, metrics
from tests.unit.chart import helm, promql

DASHBOARD = helm.CHART / "dashboards" / "pulsebase.json"
ALERTS_DOC = helm.REPO / "docs" / "alerts.md"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PER_STACK = (("namespace", "$namespace"), ("pulsebase", "$pulsebase"))

# Only the chart-template tests below need helm; the rest read files.
NEEDS_HELM = False
needs_helm = pytest.mark.skipif(
    helm.binary() is None,
    reason=f"helm is not built: run `make tools` (hack/build-tools.sh) or set {helm.HELM_ENV}",
)


@cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels") or [])  # inside collapsed rows
    return found


def expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every query target."""
    return [
        (panel["title"], target["expr"])
        for panel in panels()
        for target in panel.get("targets") or []
    ]


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def sample_names(family: str, kind: str) -> set[str]:
    """What a scrape shows for a family of this type."""
    if kind == "histogram":
        return {family + suffix for suffix in HISTOGRAM_SUFFIXES}
    if kind == "counter":
        return {family.removesuffix("_total") + "_total"}
    return {family}


@cache
def operator_series() -> frozenset[str]:
    """The operator's own series, typed by prometheus-client's registry."""
    types = {family.name: family.type for family in REGISTRY.collect()}
    found: set[str] = set()
    for name in metrics.OPERATOR_SERIES:
        kind = types.get(name) or types.get(name.removesuffix("_total"))
        assert kind is not None, f"{name} is in OPERATOR_SERIES but not registered"
        found |= sample_names(name, kind)
    return frozenset(found)


def health_series() -> frozenset[str]:
    return frozenset(series.name for series in health.SERIES)


@cache
def api_series() -> frozenset[str]:
    """The PulseBase API's metrics, from the table in docs/alerts.md."""
    text = ALERTS_DOC.read_text()
    section = text.split("## Metrics the PulseBase API must expose", 1)[1].split("\n## ", 1)[0]
    found: set[str] = set()
    for name, kind in re.findall(r"^\| `(\w+)` \| (\w+)", section, flags=re.MULTILINE):
        found |= sample_names(name, kind)
    assert found, "docs/alerts.md lists no API metrics"
    return frozenset(found)


def alert_rules() -> list[dict[str, Any]]:
    pb = models.PulseBase.from_body(
        {"metadata": {"name": "shop", "namespace": "prod"}, "spec": {"version": "2.4.1"}}
    )
    return [rule for group in monitoring.groups(pb) for rule in group["rules"]]


def recording_rules() -> frozenset[str]:
    return frozenset(rule["record"] for rule in alert_rules() if "record" in rule)


def known_series() -> frozenset[str]:
    return operator_series() | health_series() | api_series() | recording_rules()


def per_stack_series() -> frozenset[str]:
    """Series that carry `namespace` and `pulsebase` of the stack they describe."""
    return health_series() | api_series()


def unknown(expr: str) -> set[str]:
    return promql.metric_names(expr) - known_series()


def unfiltered(expr: str) -> list[str]:
    """Per-stack series in `expr` that are not limited to the chosen PulseBase."""
    return [
        selector.metric
        for selector in promql.selectors(expr)
        if selector.metric in per_stack_series()
        and not all(selector.has(label, value) for label, value in PER_STACK)
    ]


# ---- the extractor itself: it must be able to fail


def test_the_extractor_skips_functions_keywords_labels_strings_and_durations() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, pulsebase) (rate(a_bucket{code=~"5..",'
        'le!="+Inf"}[5m]))) / on (namespace) group_left (member) '
        '(b offset 1h30m) > bool 2 and label_replace(c, "d", "$1", "e", "(f_total)") '
        "unless max without (g) (h[$__rate_interval:1m]) or vector(1) * Inf"
    )
    assert promql.metric_names(expr) == {"a_bucket", "b", "c", "h"}
    (a_bucket,) = [s for s in promql.selectors(expr) if s.metric == "a_bucket"]
    assert a_bucket.matchers == (("code", "=~", "5.."), ("le", "!=", "+Inf"))


def test_the_check_catches_a_misspelt_metric() -> None:
    selector = '{namespace="$namespace",pulsebase="$pulsebase"}'
    assert unknown(f"pulsebase_redis_cache_hit_ratio{selector}") == set()
    assert unknown(f"pulsebase_redis_cache_hit_ratoi{selector}") == {
        "pulsebase_redis_cache_hit_ratoi"
    }
    # A histogram read without its suffix is no series at all.
    assert unknown("rate(pulsebase_operator_reconcile_duration_seconds[5m])") == {
        "pulsebase_operator_reconcile_duration_seconds"
    }


def test_the_check_catches_a_query_over_every_stack() -> None:
    both = 'namespace="$namespace",pulsebase="$pulsebase"'
    assert unfiltered(f"pulsebase_ready{{{both}}}") == []
    assert unfiltered('pulsebase_ready{namespace="$namespace"}') == ["pulsebase_ready"]
    assert unfiltered('pulsebase_ready{namespace="$namespace",pulsebase=~"$pulsebase"}') == [
        "pulsebase_ready"
    ]
    # The operator's own series describe every stack at once.
    assert unfiltered("pulsebase_operator_queue_depth") == []


def test_a_misspelt_function_is_an_error_not_a_metric() -> None:
    with pytest.raises(promql.PromQLError, match="unknown function 'rat'"):
        promql.selectors("rat(pulsebase_operator_api_writes_total[5m])")


def test_a_selector_without_its_closing_brace_is_an_error() -> None:
    with pytest.raises(promql.PromQLError, match="unclosed"):
        promql.selectors('pulsebase_ready{namespace="x"')


# ---- the dashboard


def test_namespace_and_pulsebase_are_label_values_variables() -> None:
    found = variables()
    for name in ("namespace", "pulsebase"):
        assert found[name]["type"] == "query", name
        query = found[name]["query"]["query"]
        assert query.startswith("label_values("), query
        assert query.endswith(f", {name})"), query
        selector = promql.label_values_selector(query)
        assert selector is not None and not unknown(selector), query
    # The stacks offered are those of the chosen namespace.
    (chosen,) = promql.selectors(promql.label_values_selector(found["pulsebase"]["query"]["query"]))
    assert chosen.has("namespace", "$namespace")


def test_every_metric_a_panel_reads_is_one_that_is_produced() -> None:
    problems = [
        f"{title}: {name}" for title, expr in expressions() for name in sorted(unknown(expr))
    ]
    assert problems == [], problems


def test_every_per_stack_series_is_filtered_to_the_chosen_pulsebase() -> None:
    problems = [f"{title}: {name}" for title, expr in expressions() for name in unfiltered(expr)]
    assert problems == [], problems


def test_every_series_the_operator_exports_has_a_panel() -> None:
    used = set().union(*(promql.metric_names(expr) for _, expr in expressions()))
    assert health_series() - used == set()
    for family in metrics.OPERATOR_SERIES:
        assert any(name.startswith(family) for name in used), family
    # And every series an alert reads, where something produces it.
    alerting = set().union(*(promql.metric_names(rule["expr"]) for rule in alert_rules()))
    assert (alerting & known_series()) - used == set()


def test_panels_query_the_chosen_data_source_and_have_unique_ids() -> None:
    assert variables()["datasource"]["type"] == "datasource"
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    for panel in panels():
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel.get("description"), panel["title"]


# ---- the chart's ConfigMap


def configmaps(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in helm.of_kind(helm.template(values), "ConfigMap")
        if o["metadata"]["name"].endswith("-dashboard")
    ]


@needs_helm
def test_no_dashboard_unless_enabled() -> None:
    assert configmaps() == []


@needs_helm
def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_file() -> None:
    (configmap,) = configmaps({"dashboard": {"enabled": True}})
    assert configmap["metadata"]["name"] == "pulsebase-operator-dashboard"
    assert configmap["metadata"]["namespace"] == helm.RELEASE_NAMESPACE
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["pulsebase.json"]) == dashboard()


@needs_helm
def test_the_dashboard_can_go_to_grafanas_namespace_with_its_labels() -> None:
    values = {
        "dashboard": {
            "enabled": True,
            "namespace": "monitoring",
            "labels": {"grafana_dashboard": None, "team": "platform"},
        }
    }
    (configmap,) = configmaps(values)
    assert configmap["metadata"]["namespace"] == "monitoring"
    labels = configmap["metadata"]["labels"]
    assert labels["team"] == "platform" and "grafana_dashboard" not in labels


@needs_helm
def test_bad_dashboard_values_are_refused() -> None:
    for values in (
        {"dashboard": {"enabled": "yes"}},
        {"dashboard": {"namespace": "Not_A_Namespace"}},
        {"dashboard": {"labels": {"grafana_dashboard": 1}}},
    ):
        done = helm.template_result(values)
        assert done.returncode != 0, values
        assert "values don't meet the specifications of the schema" in done.stderr, values
