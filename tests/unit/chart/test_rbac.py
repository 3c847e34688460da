"""The chart grants exactly what the operator uses: no wildcards, no cluster-admin,
Secrets only with the verbs the passes need, the same rules in both modes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.chart import helm

# What the operator does in a namespace holding PulseBases (see templates/_rbac.tpl for
# why each is needed). A change to the chart's rules must change this table too.
WORKLOAD_RULES = {
    ("pulsebase.io", "pulsebases"): {"get", "list", "watch", "patch"},
    ("pulsebase.io", "pulsebases/status"): {"get", "patch"},
    ("pulsebase.io", "pulsebases/finalizers"): {"update"},
    ("apps", "statefulsets"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch", "delete"},
    ("batch", "cronjobs"): {"get", "list", "create", "patch", "delete"},
    ("", "services"): {"get", "list", "create", "patch", "delete"},
    ("", "serviceaccounts"): {"get", "list", "create", "patch", "delete"},
    ("", "configmaps"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("", "secrets"): {"get", "list", "create", "delete"},
    ("", "persistentvolumeclaims"): {"get", "list", "patch"},
    ("", "pods"): {"get", "list", "watch", "patch", "update"},
    ("", "pods/exec"): {"create"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("policy", "poddisruptionbudgets"): {"get", "list", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "roles"): {"get", "list", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "rolebindings"): {"get", "list", "create", "patch", "delete"},
    ("monitoring.coreos.com", "prometheusrules"): {"list", "create", "patch", "delete"},
}
CRD_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
}
NAMESPACE_RULES = {("", "namespaces"): {"get", "list", "watch"}}
RBAC_KINDS = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")

MODES: dict[str, dict[str, Any]] = {
    "cluster-wide": {},
    "namespaced": {"watchNamespaces": ["a", "b"]},
    "two replicas": {"replicas": 2},
    "namespaced, two replicas": {"watchNamespaces": ["a"], "replicas": 2},
}


def flatten(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(group, resource) -> verbs, for rules without resourceNames."""
    table: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "resourceNames" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


def roles(objects: list[dict[str, Any]], kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
        for o in objects
        if o["kind"] == kind
    }


@pytest.mark.parametrize("values", MODES.values(), ids=MODES.keys())
def test_no_wildcards_and_no_cluster_admin(values: dict[str, Any]) -> None:
    objects = helm.template(values)
    for role in helm.of_kind(objects, "ClusterRole") + helm.of_kind(objects, "Role"):
        assert "aggregationRule" not in role
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, rule
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert not any("*" in item for item in rule.get(field, [])), (field, rule)
            # escalate, bind and impersonate would let the operator grant itself anything.
            assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate"}, rule
    names = {o["metadata"]["name"] for o in objects if o["kind"] in ("ClusterRole", "Role")}
    for binding in helm.of_kind(objects, "ClusterRoleBinding") + helm.of_kind(
        objects, "RoleBinding"
    ):
        assert binding["roleRef"]["name"] != "cluster-admin"
        # Every binding points at a role this chart defines, nothing built in.
        assert binding["roleRef"]["name"] in names, binding
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "pulsebase-operator",
                "namespace": "pulsebase-system",
            }
        ]


@pytest.mark.parametrize("values", MODES.values(), ids=MODES.keys())
def test_secrets_only_with_the_verbs_the_passes_use(values: dict[str, Any]) -> None:
    objects = helm.template(values)
    for role in helm.of_kind(objects, "ClusterRole") + helm.of_kind(objects, "Role"):
        for rule in role["rules"]:
            if "secrets" in rule["resources"]:
                assert rule["apiGroups"] == [""]
                assert rule["resources"] == ["secrets"], "secrets share a rule with nothing"
                assert set(rule["verbs"]) == {"get", "list", "create", "delete"}


def test_cluster_wide_mode_is_one_cluster_role_with_exactly_the_rules() -> None:
    objects = helm.template()
    (role,) = helm.of_kind(objects, "ClusterRole")
    assert flatten(role["rules"]) == {**CRD_RULES, **WORKLOAD_RULES}
    (binding,) = helm.of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "pulsebase-operator",
    }
    assert not helm.of_kind(objects, "Role") and not helm.of_kind(objects, "RoleBinding")


def test_namespaced_mode_has_a_role_per_namespace_with_the_same_rules() -> None:
    objects = helm.template({"watchNamespaces": ["a", "b"]})
    (cluster_role,) = helm.of_kind(objects, "ClusterRole")
    # Only what kopf needs across the cluster; nothing that touches workloads.
    assert flatten(cluster_role["rules"]) == {**CRD_RULES, **NAMESPACE_RULES}

    by_namespace = roles(objects, "Role")
    assert set(by_namespace) == {("a", "pulsebase-operator"), ("b", "pulsebase-operator")}
    for role in by_namespace.values():
        assert flatten(role["rules"]) == WORKLOAD_RULES
    # The Roles and the cluster-wide ClusterRole come from one helper: identical rules.
    (cluster_wide,) = helm.of_kind(helm.template(), "ClusterRole")
    assert by_namespace["a", "pulsebase-operator"]["rules"] == cluster_wide["rules"][1:]

    bindings = roles(objects, "RoleBinding")
    assert set(bindings) == set(by_namespace)
    for (namespace, _), binding in bindings.items():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["metadata"]["namespace"] == namespace


def test_lease_access_only_with_leader_election_and_only_in_the_release_namespace() -> None:
    assert not roles(helm.template(), "Role")

    objects = helm.template({"replicas": 2})
    lease_role = roles(objects, "Role")[("pulsebase-system", "pulsebase-operator-leader-election")]
    rules = lease_role["rules"]
    assert all(r["apiGroups"] == ["coordination.k8s.io"] for r in rules)
    assert all(r["resources"] == ["leases"] for r in rules)
    # Reading and renewing only the operator's own Lease; creating cannot be limited by name.
    by_verbs = {tuple(r["verbs"]): r.get("resourceNames") for r in rules}
    assert by_verbs == {("create",): None, ("get", "update"): ["pulsebase-operator"]}
    assert ("pulsebase-system", "pulsebase-operator-leader-election") in roles(
        objects, "RoleBinding"
    )


def test_no_rbac_objects_when_the_user_brings_their_own() -> None:
    objects = helm.template({"rbac": {"create": False}})
    assert not [o for o in objects if o["kind"] in RBAC_KINDS]


def test_every_rule_says_why_it_is_needed() -> None:
    source = (helm.CHART / "templates" / "_rbac.tpl").read_text().splitlines()
    for number, line in enumerate(source):
        if re.match(r"\s*- apiGroups:", line):
            above = source[number - 1].strip()
            assert above.startswith("#"), f"_rbac.tpl:{number + 1}: a rule without a comment"


def test_every_role_a_stack_renders_grants_only_what_the_operator_holds() -> None:
    """Kubernetes refuses to let the operator create a Role granting more than it holds
    itself (Patroni's, the backup Jobs')."""
    from pulsebase_operator.render import stack
    from tests.unit.render.examples import pulsebase
    from tests.unit.render.test_render_invariants import everything

    (cluster_role,) = helm.of_kind(helm.template(), "ClusterRole")
    held = flatten(cluster_role["rules"])
    for pb in (pulsebase(), everything("shop")):
        for role in (o for o in stack.render(pb).objects if o["kind"] == "Role"):
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        missing = set(rule["verbs"]) - held.get((group, resource), set())
                        assert not missing, (role["metadata"]["name"], group, resource, missing)
