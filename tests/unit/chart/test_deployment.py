"""The operator's Deployment: hardened pod, the arguments each mode needs, probes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pulsebase_operator import cli
from tests.unit.chart import helm

# The image's entrypoint is `pulsebase-operator run`: the arguments follow it.
BASE_ARGS = [
    "--health-address",
    "0.0.0.0:8080",
    "--metrics-address",
    "0.0.0.0:9090",
    "--log-level",
    "INFO",
    "--probes",
    "all",
]


def container(values: dict[str, Any] | None = None) -> dict[str, Any]:
    deployment = helm.only(helm.template(values), "Deployment")
    (operator,) = deployment["spec"]["template"]["spec"]["containers"]
    return operator  # type: ignore[no-any-return]


def test_default_deployment_is_one_hardened_replica() -> None:
    deployment = helm.only(helm.template(), "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (operator,) = pod["containers"]

    assert spec["replicas"] == 1
    # Two pods without leader election would both reconcile, even during a rollout.
    assert spec["strategy"]["type"] == "Recreate"
    assert pod["serviceAccountName"] == "pulsebase-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert operator["image"] == "ghcr.io/pulsebase/pulsebase-operator:0.1.0"
    assert operator["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in operator["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


def test_cluster_wide_by_default() -> None:
    operator = container()
    assert operator["args"] == BASE_ARGS
    assert "env" not in operator


def test_each_watched_namespace_becomes_an_argument() -> None:
    operator = container({"watchNamespaces": ["a", "b"], "logLevel": "DEBUG", "probes": "external"})
    assert operator["args"] == [
        *BASE_ARGS[:-3],
        "DEBUG",
        "--probes",
        "external",
        "--namespace",
        "a",
        "--namespace",
        "b",
    ]


def test_leader_election_only_with_more_than_one_replica() -> None:
    assert "--leader-elect" not in container({"replicas": 1})["args"]

    deployment = helm.only(helm.template({"replicas": 2}), "Deployment")
    (operator,) = deployment["spec"]["template"]["spec"]["containers"]
    assert operator["args"] == [*BASE_ARGS, "--leader-elect"]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in operator["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}


def test_probes_ask_the_health_endpoint() -> None:
    operator = container()
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_image_can_be_pinned_by_tag_and_digest() -> None:
    digest = "sha256:" + "a" * 64
    operator = container(
        {
            "image": {
                "repository": "registry.example/pb",
                "tag": "0.2.0",
                "digest": digest,
                "pullPolicy": "Always",
            }
        }
    )
    assert operator["image"] == f"registry.example/pb:0.2.0@{digest}"
    assert operator["imagePullPolicy"] == "Always"


def test_scheduling_values_reach_the_pod() -> None:
    values = {
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {}},
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"a": "1"},
        "podLabels": {"team": "platform"},
    }
    deployment = helm.only(helm.template(values), "Deployment")
    pod = deployment["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == values["nodeSelector"]
    assert pod["spec"]["tolerations"] == values["tolerations"]
    assert pod["spec"]["affinity"] == values["affinity"]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["metadata"]["annotations"] == {"a": "1"}
    assert pod["metadata"]["labels"]["team"] == "platform"
    # Extra pod labels never reach the selector, which is immutable.
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]


def test_metrics_service_selects_the_operator() -> None:
    objects = helm.template()
    service = helm.only(objects, "Service")
    deployment = helm.only(objects, "Deployment")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_monitoring_objects_are_off_by_default_and_render_when_asked() -> None:
    kinds = {o["kind"] for o in helm.template()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}

    objects = helm.template(
        {"metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}
    )
    monitor = helm.only(objects, "ServiceMonitor")
    service = helm.only(objects, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    rule = helm.only(objects, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "PulseBaseOperatorReconcileFailing" in alerts


@pytest.mark.parametrize(
    "values",
    [{}, {"watchNamespaces": ["a", "b"], "replicas": 3, "logLevel": "DEBUG"}],
    ids=["defaults", "namespaced with leader election"],
)
def test_the_operator_accepts_the_arguments_after_its_entrypoint(values: dict[str, Any]) -> None:
    # What the container runs: the image's ENTRYPOINT, then the chart's args.
    found = re.search(r"^ENTRYPOINT (.+)$", (helm.REPO / "Dockerfile").read_text(), re.M)
    assert found, "the Dockerfile has no ENTRYPOINT"
    entrypoint = json.loads(found[1])
    assert entrypoint[-1] == "run"
    parsed = cli.parser().parse_args(["run", *container(values)["args"]])
    assert parsed.health_address == "0.0.0.0:8080"
    assert parsed.metrics_address == "0.0.0.0:9090"
    assert parsed.namespace == (values.get("watchNamespaces") or None)
    assert parsed.leader_elect is (values.get("replicas", 1) > 1)
