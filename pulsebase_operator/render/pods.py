"""Pieces every rendered pod shares: the `restricted` pod security standard, spreading
replicas over nodes and zones, and probes."""

from __future__ import annotations

from typing import Any

from pulsebase_operator.api import models

# A fixed non-root UID and GID that every image we default to can run as.
RUN_AS_USER = 65532
# In the container, where an emptyDir is mounted: not a temporary file of ours.
TMP_DIR = "/tmp"  # noqa: S108


def pod_security_context(fs_group: bool = True) -> dict[str, Any]:
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if fs_group:
        context["fsGroup"] = RUN_AS_USER
        context["fsGroupChangePolicy"] = "OnRootMismatch"
    return context


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(spec: models.Resources) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in ("requests", "limits"):
        values = getattr(spec, part).model_dump(exclude_none=True)
        if values:
            out[part] = values
    return out


def spread(selector: dict[str, str]) -> list[dict[str, Any]]:
    """Spread replicas over zones and nodes; prefer, never block scheduling."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(selector)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def anti_affinity(selector: dict[str, str]) -> dict[str, Any]:
    """Members of one data-bearing StatefulSet on different nodes when possible."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": dict(selector)},
                    },
                }
            ]
        }
    }


def http_probe(
    path: str, port: int | str, period: int = 10, failures: int = 3, scheme: str = "HTTP"
) -> dict[str, Any]:
    get: dict[str, Any] = {"path": path, "port": port}
    if scheme != "HTTP":
        get["scheme"] = scheme
    return {
        "httpGet": get,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def tcp_probe(port: int | str, period: int = 10, failures: int = 3) -> dict[str, Any]:
    return {
        "tcpSocket": {"port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def exec_probe(command: list[str], period: int = 10, failures: int = 3) -> dict[str, Any]:
    return {
        "exec": {"command": command},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def plain_env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def ref_env(name: str, ref: models.SecretKeyRef) -> dict[str, Any]:
    """A variable from a Secret the user points at."""
    return secret_env(name, ref.name, ref.key)
