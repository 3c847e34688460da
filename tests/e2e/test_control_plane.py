"""Proves the local control plane behaves like a real cluster where the operator relies on it:
KWOK nodes run pods, the default StorageClass binds PVCs under `restricted` pod security,
and pod security admission refuses what the restricted profile forbids."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.localcluster import LocalCluster

pytestmark = pytest.mark.e2e

T = TypeVar("T")
IMAGE = "registry.k8s.io/pause:3.10"  # never pulled: KWOK only pretends to run containers
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 120) -> T:
    """Polls until `probe` returns something truthy, which it then returns."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def api(control_plane: LocalCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(control_plane.kubeconfig))


def _namespace(api: client.ApiClient, labels: dict[str, str]) -> Iterator[str]:
    name = f"cp-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    )
    # Until the controller-manager made it, ServiceAccount admission refuses every pod,
    # which would hide what pod security admission has to say.
    eventually(
        lambda: _ignore_not_found(lambda: core.read_namespaced_service_account("default", name)),
        "default SA",
    )
    yield name
    core.delete_namespace(name)


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    yield from _namespace(api, {})


@pytest.fixture
def restricted_namespace(api: client.ApiClient) -> Iterator[str]:
    yield from _namespace(api, RESTRICTED)


def restricted_pod_spec() -> dict[str, Any]:
    """The least a pod needs to pass the `restricted` pod security profile."""
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "main",
                "image": IMAGE,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def ready_pods(api: client.ApiClient, namespace: str, selector: str) -> list[Any]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
    return [
        p
        for p in pods
        if p.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def kwok_nodes(api: client.ApiClient) -> set[str]:
    nodes = client.CoreV1Api(api).list_node(label_selector="type=kwok").items
    return {n.metadata.name for n in nodes}


def test_deployment_pods_become_ready_on_kwok_nodes(api: client.ApiClient, namespace: str) -> None:
    labels = {"app": "web"}
    client.AppsV1Api(api).create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": restricted_pod_spec()},
            },
        },
    )

    def two_ready() -> list[Any] | None:
        pods = ready_pods(api, namespace, "app=web")
        return pods if len(pods) == 2 else None

    pods = eventually(two_ready, "2 ready pods")

    assert {p.spec.node_name for p in pods} <= kwok_nodes(api)


def test_statefulset_pvc_binds_in_restricted_namespace(
    api: client.ApiClient, restricted_namespace: str
) -> None:
    ns, labels = restricted_namespace, {"app": "db"}
    spec = restricted_pod_spec()
    spec["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    client.AppsV1Api(api).create_namespaced_stateful_set(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db",
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": spec},
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            },
        },
    )
    core = client.CoreV1Api(api)

    def bound() -> Any:
        pvc = core.read_namespaced_persistent_volume_claim("data-db-0", ns)
        return pvc if pvc.status.phase == "Bound" else None

    pvc = eventually(lambda: _ignore_not_found(bound), "PVC data-db-0 to be Bound")
    eventually(lambda: ready_pods(api, ns, "app=db"), "pod db-0 to be Ready")

    assert pvc.spec.storage_class_name == "standard"  # the default class was applied


def test_privileged_pod_is_rejected_in_restricted_namespace(
    api: client.ApiClient, restricted_namespace: str
) -> None:
    spec = restricted_pod_spec()
    # API validation refuses privileged with allowPrivilegeEscalation=false (422) before
    # admission runs, so the escalation setting must go too.
    spec["containers"][0]["securityContext"] = {
        "privileged": True,
        "capabilities": {"drop": ["ALL"]},
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"}, "spec": spec}

    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).create_namespaced_pod(restricted_namespace, pod)

    message = json.loads(err.value.body)["message"]
    assert err.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in message
    assert 'privileged (container "main" must not set securityContext.privileged=true)' in message


def _ignore_not_found(probe: Callable[[], T]) -> T | None:
    try:
        return probe()
    except ApiException as err:
        if err.status == 404:
            return None
        raise
