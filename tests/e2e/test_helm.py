"""The chart installed with `helm install`, and the operator running with only its permissions.

The pod the chart deploys is faked by KWOK (no container runs), so the operator itself runs
here as a process that authenticates with a token of the chart's ServiceAccount: every
request it makes is judged by the API server's RBAC against the chart's Roles, exactly as
in a cluster. The session's own operator (cluster-wide, with a broader identity) is paused
for this module, so nothing else reconciles the namespace under test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client as k8s

from tests.e2e.conftest import GROUP, PLURAL, VERSION, Operator, apply, example, wait_for
from tests.e2e.test_stack import MANAGED, get_pb, names, ready
from tests.support.fixtures import audit_lines
from tests.support.localcluster import LocalCluster
from tests.unit.chart import helm

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        helm.binary() is None,
        reason=f"helm is not built: run `make tools` (hack/build-tools.sh) or set {helm.HELM_ENV}",
    ),
]

SYSTEM = helm.RELEASE_NAMESPACE
ACCOUNT = f"system:serviceaccount:{SYSTEM}:pulsebase-operator"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def run_helm(cluster: LocalCluster, *args: str, values: dict[str, Any] | None = None) -> str:
    done = helm.run(
        *args,
        "--kubeconfig",
        str(cluster.kubeconfig),
        *helm.values_args(values),
        stdin=yaml.safe_dump(values) if values else None,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done.stdout


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> str:
    done = cluster.kubectl(*args, input=stdin)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def kubectl_as(
    cluster: LocalCluster, kubeconfig: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.binary("kubectl")), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def namespace_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": RESTRICTED},
    }


@pytest.fixture(scope="module")
def watched(control_plane: LocalCluster) -> Iterator[str]:
    """The namespace the chart's operator watches; it must exist before the install."""
    name = f"helm-{uuid.uuid4().hex[:8]}"
    assert apply(control_plane, namespace_manifest(name)).returncode == 0
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def release(control_plane: LocalCluster, watched: str, sole_operator: None) -> Iterator[None]:
    """`helm install` in namespaced mode into a namespace that enforces `restricted`."""
    assert apply(control_plane, namespace_manifest(SYSTEM)).returncode == 0
    # A cluster reused from an earlier run may still hold the release.
    run_helm(control_plane, "uninstall", helm.RELEASE, "-n", SYSTEM, "--ignore-not-found")
    run_helm(
        control_plane,
        "install",
        helm.RELEASE,
        str(helm.CHART),
        "--namespace",
        SYSTEM,
        "--wait",
        "--timeout",
        "3m",
        values={"watchNamespaces": [watched]},
    )
    yield
    run_helm(control_plane, "uninstall", helm.RELEASE, "--namespace", SYSTEM, "--wait")
    control_plane.kubectl("delete", "namespace", SYSTEM, "--wait=false")


def token_kubeconfig(cluster: LocalCluster, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount, as its pod would."""
    token = kubectl(
        cluster, "create", "token", "pulsebase-operator", "-n", SYSTEM, "--duration=1h"
    ).strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "pulsebase-operator", "user": {"token": token}}],
        "contexts": [
            {"name": "chart", "context": {"cluster": "local", "user": "pulsebase-operator"}}
        ],
        "current-context": "chart",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def chart_kubeconfig(
    control_plane: LocalCluster, release: None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return token_kubeconfig(control_plane, tmp_path_factory.mktemp("chart") / "kubeconfig")


@pytest.fixture(scope="module")
def chart_operator(
    control_plane: LocalCluster,
    chart_kubeconfig: Path,
    watched: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    """The real operator process, with the chart's identity and the chart's arguments
    (plus frequent discovery, so a PrometheusRule CRD installed by a test is seen soon)."""
    running = Operator(
        control_plane,
        tmp_path_factory.mktemp("chart-operator") / "operator.log",
        kubeconfig=chart_kubeconfig,
        extra_args=("--namespace", watched, "--discovery-seconds", "2"),
    )
    running.start()
    yield running
    running.stop()


def requests_of_the_chart_account(cluster: LocalCluster, since_line: int) -> list[str]:
    """Each request the chart's ServiceAccount made, as "CODE VERB URI", from the audit log."""
    seen = []
    with open(cluster.audit_log, "rb") as fh:
        for number, line in enumerate(fh):
            if number < since_line or not line.endswith(b"\n"):
                continue
            event = json.loads(line)
            if (
                event.get("stage") == "ResponseComplete"
                and event.get("user", {}).get("username") == ACCOUNT
            ):
                code = event.get("responseStatus", {}).get("code")
                seen.append(f"{code} {event['verb']} {event['requestURI']}")
    return seen


def phase(api: k8s.ApiClient, namespace: str, name: str) -> tuple[str, str]:
    status = get_pb(api, namespace, name).get("status") or {}
    return status.get("phase", ""), status.get("message", "")


def delete_and_wait(cluster: LocalCluster, api: k8s.ApiClient, namespace: str, name: str) -> None:
    """Delete a PulseBase and wait until the operator has let it go and its children went."""
    kubectl(cluster, "delete", "pb", name, "-n", namespace, "--timeout=60s")

    def collected() -> bool:
        left = names(api, namespace)
        return not any(
            n.startswith(f"{name}-")
            for kind in ("StatefulSet", "Deployment", "Job", "PDB", "Service")
            for n in left[kind]
        )

    wait_for(collected, timeout=90, what=f"the children of {name} garbage-collected")


def test_chart_installs_and_its_deployment_becomes_available(
    control_plane: LocalCluster, release: None
) -> None:
    kubectl(
        control_plane,
        "wait",
        "--for=condition=Available",
        "deployment/pulsebase-operator",
        "-n",
        SYSTEM,
        "--timeout=120s",
    )
    # The namespace enforces `restricted`: the pod exists, so its security context passed.
    pods = json.loads(
        kubectl(
            control_plane,
            "get",
            "pods",
            "-n",
            SYSTEM,
            "-l",
            "app.kubernetes.io/name=pulsebase-operator",
            "-o",
            "json",
        )
    )["items"]
    assert len(pods) == 1
    assert pods[0]["spec"]["serviceAccountName"] == "pulsebase-operator"
    status = json.loads(run_helm(control_plane, "status", helm.RELEASE, "-n", SYSTEM, "-o", "json"))
    assert status["info"]["status"] == "deployed"


def test_operator_with_only_the_charts_permissions_brings_the_example_to_ready(
    control_plane: LocalCluster,
    api_client: k8s.ApiClient,
    chart_kubeconfig: Path,
    watched: str,
    chart_operator: Operator,
) -> None:
    whoami = kubectl_as(control_plane, chart_kubeconfig, "auth", "whoami")
    assert ACCOUNT in whoami.stdout, whoami.stderr
    # Namespaced mode: nothing outside the watched namespace.
    outside = kubectl_as(control_plane, chart_kubeconfig, "get", "secrets", "-n", "default")
    assert outside.returncode != 0 and "forbidden" in outside.stderr.lower()

    since = audit_lines(control_plane.audit_log)
    assert apply(control_plane, *example(MANAGED, watched)).returncode == 0
    wait_for(lambda: ready(api_client, watched, "shop"), timeout=180, what="Ready")
    children = names(api_client, watched)
    assert {"shop-postgres", "shop-redis", "shop-objectstore"} <= children["StatefulSet"]
    assert {"shop-api", "shop-edge"} <= children["Deployment"]

    delete_and_wait(control_plane, api_client, watched, "shop")
    # Not one request was refused: the chart grants everything the operator does.
    made = requests_of_the_chart_account(control_plane, since)
    assert any(" patch /apis/apps/v1/" in r for r in made), "the operator acted as someone else"
    assert [r for r in made if r.startswith("403 ")] == []
    assert not [line for line in chart_operator.log_lines() if "Not enough permissions" in line]


def test_a_missing_permission_is_reported_in_status(
    control_plane: LocalCluster,
    api_client: k8s.ApiClient,
    watched: str,
    chart_operator: Operator,
) -> None:
    role = json.loads(
        kubectl(control_plane, "get", "role", "pulsebase-operator", "-n", watched, "-o", "json")
    )
    original = json.dumps(role)
    # The same Role without `patch` on StatefulSets, which server-side apply needs.
    rules = []
    for rule in role["rules"]:
        if "statefulsets" in rule["resources"]:
            others = [r for r in rule["resources"] if r != "statefulsets"]
            rules.append({**rule, "resources": others})
            verbs = [v for v in rule["verbs"] if v != "patch"]
            rules.append({**rule, "resources": ["statefulsets"], "verbs": verbs})
        else:
            rules.append(rule)
    role["rules"] = rules
    kubectl(control_plane, "replace", "-f", "-", stdin=json.dumps(role))
    try:
        assert apply(control_plane, *example(MANAGED, watched, name="denied")).returncode == 0

        def degraded() -> str | None:
            current, message = phase(api_client, watched, "denied")
            return message if current == "Degraded" else None

        message = wait_for(degraded, timeout=120, what="phase Degraded")
        assert "Could not apply StatefulSet" in message
        assert 'cannot patch resource "statefulsets"' in message
        assert ACCOUNT in message
    finally:
        restored = json.loads(original)
        restored["metadata"].pop("resourceVersion", None)
        kubectl(control_plane, "replace", "-f", "-", stdin=json.dumps(restored))

    # With the permission back the next resync pass goes through.
    wait_for(lambda: ready(api_client, watched, "denied"), timeout=120, what="Ready again")
    delete_and_wait(control_plane, api_client, watched, "denied")


def test_the_charts_permissions_cover_the_prometheus_rule(
    control_plane: LocalCluster,
    api_client: k8s.ApiClient,
    watched: str,
    chart_operator: Operator,
    prometheus_rule_crd: None,
) -> None:
    since = audit_lines(control_plane.audit_log)
    assert apply(control_plane, *example(MANAGED, watched, name="alerted")).returncode == 0
    rules = k8s.CustomObjectsApi(api_client)

    def rule_names() -> set[str]:
        found = rules.list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", watched, "prometheusrules"
        )
        return {item["metadata"]["name"] for item in found["items"]}

    wait_for(lambda: "alerted-alerts" in rule_names(), timeout=120, what="the PrometheusRule")
    # Turned off: pruned. Between them, list, apply (create) and delete were all used.
    body = {"spec": {"monitoring": {"prometheusRule": False}}}
    rules.patch_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, "alerted", body)
    wait_for(lambda: not rule_names(), timeout=60, what="the PrometheusRule pruned")
    delete_and_wait(control_plane, api_client, watched, "alerted")

    made = requests_of_the_chart_account(control_plane, since)
    on_rules = [r for r in made if "/prometheusrules" in r]
    assert {r.split()[1] for r in on_rules} >= {"list", "patch", "delete"}, on_rules
    assert [r for r in made if r.startswith("403 ")] == []


def _add_field(crd: dict[str, Any], name: str) -> None:
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"][name] = {"type": "string", "description": "added by the upgrade test"}


def _create_with(api: k8s.ApiClient, namespace: str, name: str, value: str) -> dict[str, Any]:
    (body,) = [d for d in example(MANAGED, namespace, name=name) if d["kind"] == "PulseBase"]
    body["spec"]["upgradeProbe"] = value
    objects = k8s.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    return get_pb(api, namespace, name)


def test_a_field_added_to_the_crd_is_served_after_the_documented_upgrade(
    control_plane: LocalCluster,
    api_client: k8s.ApiClient,
    release: None,
    namespace: str,
    tmp_path: Path,
) -> None:
    # The next chart release: the same chart with one more optional field in its CRD.
    chart = tmp_path / "pulsebase-operator"
    shutil.copytree(helm.CHART, chart)
    crd_file = chart / "crds" / "pulsebase.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    _add_field(crd, "upgradeProbe")
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))

    # Before: the API server prunes the field it does not know.
    before = _create_with(api_client, namespace, "before", "kept")
    assert "upgradeProbe" not in before["spec"]

    try:
        # docs/install.md: the CRDs first (Helm never upgrades crds/), then the release.
        crds = run_helm(control_plane, "show", "crds", str(chart))
        kubectl(control_plane, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=crds)
        run_helm(control_plane, "upgrade", helm.RELEASE, str(chart), "-n", SYSTEM, "--reuse-values")
        control_plane.wait_established("pulsebases.pulsebase.io")

        def served() -> dict[str, Any] | None:
            objects = k8s.CustomObjectsApi(api_client)
            body = next(d for d in example(MANAGED, namespace, "probe") if d["kind"] == "PulseBase")
            body["spec"]["upgradeProbe"] = "kept"
            dry: dict[str, Any] = cast(
                dict[str, Any],
                objects.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, body, dry_run="All"
                ),
            )
            return dry if "upgradeProbe" in dry["spec"] else None

        wait_for(served, timeout=30, what="the API server to serve the new schema")
        # Read back from the API server: stored and served, not pruned.
        after = _create_with(api_client, namespace, "after", "kept")
        assert after["spec"]["upgradeProbe"] == "kept"
    finally:
        for name in ("before", "after"):
            control_plane.kubectl("delete", "pb", name, "-n", namespace, "--ignore-not-found")
        # Back to the CRD every other test expects.
        kubectl(control_plane, "apply", "--server-side", "--force-conflicts", "-f", "crds/")


def test_a_namespaced_install_run_without_namespace_flags_says_what_to_pass(
    control_plane: LocalCluster, chart_kubeconfig: Path, tmp_path: Path
) -> None:
    # The chart here watches one namespace: its identity may not list PulseBases everywhere.
    alone = Operator(control_plane, tmp_path / "operator.log", kubeconfig=chart_kubeconfig)
    alone.start()
    assert alone.process is not None
    assert alone.process.wait(timeout=60) == 2
    output = "\n".join(alone.log_lines())
    assert "may not list pulsebases in all namespaces" in output
    assert "--namespace NS" in output
    assert "Traceback" not in output
