"""Each PulseBase's PrometheusRule, on a control plane that serves that kind only for a while.

The CRD is a minimal stand-in for prometheus-operator's (the same group, version and
names, the spec kept unchecked), installed and removed by the tests themselves. The
operator here is a process of this module that asks discovery again every two seconds
rather than every three minutes, so a CRD installed or removed is noticed within the
test's patience; the operator the other modules share is paused meanwhile, or both
would reconcile the namespaces under test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from pulsebase_operator.api import models
from pulsebase_operator.render import monitoring
from tests.e2e.conftest import (
    OPERATOR_USER,
    Operator,
    install_prometheus_rule_crd,
    remove_prometheus_rule_crd,
    wait_for,
)
from tests.e2e.test_stack import condition, get_pb, patch_spec, ready, ready_stack
from tests.support.fixtures import audit_lines, count_writes
from tests.support.localcluster import LocalCluster

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "monitoring.coreos.com", "v1", "prometheusrules"
DISCOVERY_SECONDS = 2


@pytest.fixture(scope="module")
def quick_operator(
    control_plane: LocalCluster,
    crd_installed: None,
    sole_operator: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    running = Operator(
        control_plane,
        tmp_path_factory.mktemp("rule-operator") / "operator.log",
        extra_args=("--discovery-seconds", str(DISCOVERY_SECONDS)),
    )
    running.start()
    yield running
    running.stop()


@pytest.fixture
def no_rule_crd(control_plane: LocalCluster) -> Iterator[None]:
    """Starts without the kind; whatever a test installs is removed after it."""
    remove_prometheus_rule_crd(control_plane)
    try:
        yield
    finally:
        remove_prometheus_rule_crd(control_plane)


def rules(api: k8s.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    found = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )
    return {item["metadata"]["name"]: item for item in found["items"]}


def alert_rules_reason(api: k8s.ApiClient, namespace: str) -> str | None:
    cond = condition(get_pb(api, namespace, "shop"), "AlertRulesApplied")
    return cond["reason"] if cond else None


def warnings_about_rules(api: k8s.ApiClient, namespace: str) -> list[Any]:
    events = k8s.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e for e in events if e.reason == "AlertRulesNotApplied"]


def wake(cluster: LocalCluster, namespace: str, touch: int) -> None:
    """An event on a child wakes the operator for a pass at once."""
    cluster.kubectl(
        "annotate",
        "statefulset",
        "shop-redis",
        "-n",
        namespace,
        f"example.com/touched={touch}",
        "--overwrite",
    )


def test_a_crd_installed_later_gets_each_pulsebase_its_rule_once(
    control_plane: LocalCluster,
    api_client: k8s.ApiClient,
    quick_operator: Operator,
    no_rule_crd: None,
    namespace: str,
) -> None:
    # Without the kind: the stack is Ready, and status and one Event say why no alerts.
    ready_stack(control_plane, api_client, namespace)
    wait_for(
        lambda: alert_rules_reason(api_client, namespace) == "KindNotServed",
        timeout=30,
        what="AlertRulesApplied=False, KindNotServed",
    )
    described = control_plane.kubectl("describe", "pb", "shop", "-n", namespace).stdout
    assert "AlertRulesNotApplied" in described and "prometheus-operator" in described
    for touch in range(2):
        wake(control_plane, namespace, touch)
        time.sleep(2)
    assert len(warnings_about_rules(api_client, namespace)) == 1, "said once, not every pass"

    # prometheus-operator's CRDs arrive: the next discovery answer brings the rule.
    install_prometheus_rule_crd(control_plane)
    found = wait_for(
        lambda: rules(api_client, namespace).get("shop-alerts"),
        timeout=60,
        what="PrometheusRule shop-alerts",
    )
    pb = get_pb(api_client, namespace, "shop")
    (owner,) = found["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "PulseBase",
        "shop",
        pb["metadata"]["uid"],
    )
    assert owner["controller"] is True
    # What the builder renders is what the API server holds.
    want = monitoring.groups(models.PulseBase.from_body(pb))
    assert found["spec"]["groups"] == want
    assert "pulsebase-availability" in [group["name"] for group in want]
    wait_for(
        lambda: alert_rules_reason(api_client, namespace) == "Applied",
        timeout=30,
        what="AlertRulesApplied=True",
    )

    # A steady pass still writes nothing, the rule included.
    mark = audit_lines(control_plane.audit_log)
    passes = quick_operator.metric("pulsebase_operator_reconcile_duration_seconds_count")
    for touch in range(2, 5):
        wake(control_plane, namespace, touch)
        time.sleep(2)
    more = quick_operator.metric("pulsebase_operator_reconcile_duration_seconds_count")
    assert more >= passes + 3, "child events did not wake the operator"
    writes = count_writes(
        control_plane.audit_log, OPERATOR_USER, since_line=mark, namespace=namespace
    )
    assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]


def test_the_rule_is_pruned_when_turned_off_and_a_deleted_crd_breaks_nothing(
    control_plane: LocalCluster,
    api_client: k8s.ApiClient,
    quick_operator: Operator,
    no_rule_crd: None,
    namespace: str,
) -> None:
    install_prometheus_rule_crd(control_plane)
    ready_stack(control_plane, api_client, namespace)
    wait_for(lambda: "shop-alerts" in rules(api_client, namespace), what="the rule")

    # Turned off in the spec: pruned, and status says it is off on purpose.
    patch_spec(api_client, namespace, "shop", {"monitoring": {"prometheusRule": False}})
    wait_for(lambda: not rules(api_client, namespace), timeout=60, what="the rule pruned")
    wait_for(
        lambda: alert_rules_reason(api_client, namespace) == "Disabled",
        timeout=30,
        what="AlertRulesApplied=False, Disabled",
    )
    assert warnings_about_rules(api_client, namespace) == []

    # Back on, then prometheus-operator's CRDs go away, taking the rule with them.
    patch_spec(api_client, namespace, "shop", {"monitoring": {"prometheusRule": True}})
    wait_for(lambda: "shop-alerts" in rules(api_client, namespace), what="the rule again")
    retried_before = quick_operator.metric("pulsebase_operator_reconcile_errors_total")
    remove_prometheus_rule_crd(control_plane)

    # The stack keeps reconciling: a spec change is carried out and the stack is Ready.
    patch_spec(api_client, namespace, "shop", {"api": {"replicas": 4}})
    apps = k8s.AppsV1Api(api_client)
    wait_for(
        lambda: apps.read_namespaced_deployment("shop-api", namespace).spec.replicas == 4,
        timeout=60,
        what="the API scaled to 4 after the CRD went away",
    )
    wait_for(lambda: ready(api_client, namespace, "shop"), timeout=120, what="Ready again")
    wait_for(
        lambda: alert_rules_reason(api_client, namespace) == "KindNotServed",
        timeout=30,
        what="AlertRulesApplied=False, KindNotServed",
    )
    pb = get_pb(api_client, namespace, "shop")
    assert pb["status"]["phase"] == "Ready", pb["status"]["message"]
    # A pass that met the vanishing kind may have been retried; none failed for good.
    permanent = [
        line
        for line in quick_operator.log_lines()
        if '"pass failed"' in line and f'"namespace": "{namespace}"' in line
    ]
    assert permanent == [], permanent
    retried = quick_operator.metric("pulsebase_operator_reconcile_errors_total") - retried_before
    print(f"passes retried while the CRD went away: {retried:.0f}")
