"""Objects, and parts of objects, that every component builds the same way: metadata,
the hash that rolls pods when their configuration changes, the workloads with the
rules they share, and disruption budgets. Each component module fills in what is its
own: containers, volumes, ports."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.render import labels, pods
from pulsebase_operator.render.parts import Object


def metadata(pb: models.PulseBase, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": pb.metadata.namespace,
        "labels": labels.component(pb.metadata.name, component),
    }


def config_hash(data: dict[str, str]) -> str:
    """A digest of a ConfigMap's data; annotated on a pod template, a change rolls the pods."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def volume_claim_template(
    pb: models.PulseBase, storage: models.Storage, component: str
) -> dict[str, Any]:
    """The `data` volume of each member of a StatefulSet."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "metadata": {"name": "data", "labels": labels.unowned(pb.metadata.name, component)},
        "spec": spec,
    }


def pdb(pb: models.PulseBase, name: str, component: str, *, max_unavailable: int) -> Object:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(pb, name, component),
        "spec": {
            "maxUnavailable": max_unavailable,
            "selector": {"matchLabels": labels.selector(pb.metadata.name, component)},
        },
    }


def config_map(pb: models.PulseBase, name: str, component: str, *, data: dict[str, str]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(pb, name, component),
        "data": data,
    }


def role_binding(pb: models.PulseBase, name: str, component: str) -> Object:
    """Binds the Role NAME to the ServiceAccount NAME, both in the PulseBase's namespace."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(pb, name, component),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": pb.metadata.namespace}],
    }


def service(
    pb: models.PulseBase,
    name: str,
    component: str,
    *,
    ports: list[dict[str, Any]],
    service_type: str | None = None,
    selector: dict[str, str] | None = None,
) -> Object:
    """A Service in front of the component's pods, or of those `selector` picks."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(pb, name, component),
        "spec": {
            **({"type": service_type} if service_type is not None else {}),
            "selector": selector or labels.selector(pb.metadata.name, component),
            "ports": ports,
        },
    }


def headless_service(
    pb: models.PulseBase, name: str, component: str, *, ports: list[dict[str, Any]]
) -> Object:
    """The DNS names of a StatefulSet's members, published before the members are ready:
    they must find each other by name to become ready at all."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(pb, name, component),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": labels.selector(pb.metadata.name, component),
            "ports": ports,
        },
    }


def stateful_set(
    pb: models.PulseBase,
    *,
    name: str,
    component: str,
    replicas: int,
    parallel: bool,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    storage: models.Storage,
    pod_labels: dict[str, str] | None = None,
    config_hash: str | None = None,
    service_account: str | None = None,
) -> Object:
    """Members with a stable name (the headless Service of the same name) and a `data`
    volume each, kept apart on nodes and spread over zones.

    The volumes outlive a scale-down, and the StatefulSet itself unless the deletion
    policy is Delete. Only a pod with a `service_account` gets an API token.
    """
    selector = labels.selector(pb.metadata.name, component)
    pod = {
        **({"serviceAccountName": service_account} if service_account is not None else {}),
        "automountServiceAccountToken": service_account is not None,
        "enableServiceLinks": False,
        "securityContext": pods.pod_security_context(),
        "affinity": pods.anti_affinity(selector),
        "topologySpreadConstraints": pods.spread(selector),
        "containers": containers,
        "volumes": volumes,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(pb, name, component),
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            **({"podManagementPolicy": "Parallel"} if parallel else {}),
            "selector": {"matchLabels": selector},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": pb.spec.deletion_policy.value,
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": _pod_metadata(pb, component, pod_labels, config_hash),
                "spec": pod,
            },
            "volumeClaimTemplates": [volume_claim_template(pb, storage, component)],
        },
    }


def deployment(
    pb: models.PulseBase,
    *,
    name: str,
    component: str,
    replicas: int,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    pod_labels: dict[str, str] | None = None,
    config_hash: str | None = None,
    min_ready_seconds: int | None = None,
) -> Object:
    """Stateless pods spread over zones and nodes, rolled one at a time without losing
    capacity: a new pod is ready before an old one goes."""
    selector = labels.selector(pb.metadata.name, component)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(pb, name, component),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            **({"minReadySeconds": min_ready_seconds} if min_ready_seconds is not None else {}),
            "template": {
                "metadata": _pod_metadata(pb, component, pod_labels, config_hash),
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pods.pod_security_context(fs_group=False),
                    "topologySpreadConstraints": pods.spread(selector),
                    "containers": containers,
                    "volumes": volumes,
                },
            },
        },
    }


def script_job(
    pb: models.PulseBase,
    *,
    name: str,
    component: str,
    container: str,
    image: str,
    script: str,
    env: list[dict[str, Any]],
    tmp: bool = False,
) -> Object:
    """A Job that runs one shell script, again and again until it succeeds.

    Its pod carries the common labels only, not the component's: the component's
    Services, disruption budget and spread constraints must not count it.
    """
    main: dict[str, Any] = {
        "name": container,
        "image": image,
        "command": ["sh", "-c", script],
        "env": env,
        # Enough for a shell script driving a CLI.
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": pods.container_security_context(),
    }
    pod: dict[str, Any] = {
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pods.pod_security_context(fs_group=False),
        "containers": [main],
    }
    if tmp:
        main["volumeMounts"] = [{"name": "tmp", "mountPath": pods.TMP_DIR}]
        pod["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(pb, name, component),
        "spec": {
            "backoffLimit": 10,
            "template": {"metadata": {"labels": labels.common(pb.metadata.name)}, "spec": pod},
        },
    }


def _pod_metadata(
    pb: models.PulseBase,
    component: str,
    pod_labels: dict[str, str] | None,
    config_hash: str | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"labels": pod_labels or labels.component(pb.metadata.name, component)}
    if config_hash is not None:
        result["annotations"] = {labels.CONFIG_HASH: config_hash}
    return result
