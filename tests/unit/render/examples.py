"""PulseBase objects for the render tests, and small readers of rendered objects."""

from __future__ import annotations

from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.render.parts import Object


def pulsebase(name: str = "shop", namespace: str = "prod", **spec: Any) -> models.PulseBase:
    return models.PulseBase.from_body(
        {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"version": "2.4.1", **spec},
        }
    )


EXTERNAL_POSTGRES = {
    "mode": "external",
    "external": {
        "host": "db.example.com",
        "port": 6432,
        "database": "shopdb",
        "sslMode": "verify-full",
        "username": {"name": "rds", "key": "user"},
        "password": {"name": "rds", "key": "pass"},
    },
}
EXTERNAL_REDIS = {
    "mode": "external",
    "external": {
        "endpoints": ["cache-1.example.com:6380", "cache-2.example.com:6380"],
        "tls": True,
        "password": {"name": "elasticache", "key": "token"},
    },
}
EXTERNAL_OBJECT_STORAGE = {
    "mode": "external",
    "external": {
        "endpoint": "https://s3.eu-west-1.amazonaws.com",
        "region": "eu-west-1",
        "accessKeyId": {"name": "aws", "key": "id"},
        "secretAccessKey": {"name": "aws", "key": "secret"},
    },
}


def external(name: str = "shop", **spec: Any) -> models.PulseBase:
    """Every dependency external and no CDN: the smallest stack."""
    return pulsebase(
        name,
        postgres=EXTERNAL_POSTGRES,
        redis=EXTERNAL_REDIS,
        objectStorage=EXTERNAL_OBJECT_STORAGE,
        cdn={"provider": "none"},
        **spec,
    )


def find(objects: tuple[Object, ...], kind: str, name: str | None = None) -> Object:
    matches = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def kinds(objects: tuple[Object, ...]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


def pod_spec(workload: Object) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def container(workload: Object, index: int = 0) -> dict[str, Any]:
    return pod_spec(workload)["containers"][index]


def env(workload: Object) -> dict[str, dict[str, Any]]:
    """The first container's environment by name."""
    return {entry["name"]: entry for entry in container(workload).get("env", [])}


def value(entry: dict[str, Any]) -> Any:
    return entry["value"]


def secret_ref(entry: dict[str, Any]) -> tuple[str, str]:
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]
