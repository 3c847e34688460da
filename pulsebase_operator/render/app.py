"""The PulseBase API: a stateless Deployment behind a Service, always rendered.

Its environment is where the components meet: the API reaches each dependency through
the managed Service or the user's external endpoint, with credentials referenced from
Secrets and never inlined.
"""

from __future__ import annotations

import re
from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.render import (
    cdn,
    credentials,
    images,
    labels,
    naming,
    objects,
    objectstore,
    pods,
    postgres,
    redis,
)
from pulsebase_operator.render.parts import Component, Object, Part, Workload

COMPONENT = "api"
HTTP_PORT = 8080
METRICS_PORT = 9090


def render(pb: models.PulseBase) -> Part:
    name = pb.metadata.name
    children: list[Object] = [_deployment(pb), _service(pb), _metrics_service(pb)]
    if pb.spec.api.replicas > 1:
        children.append(objects.pdb(pb, naming.api(name), COMPONENT, max_unavailable=1))
    return Part(
        objects=tuple(children),
        component=Component(
            name=COMPONENT,
            mode="managed",
            endpoint=endpoint(pb),
            workloads=(Workload("Deployment", naming.api(name)),),
        ),
    )


def endpoint(pb: models.PulseBase) -> str:
    return f"http://{naming.api(pb.metadata.name)}.{pb.metadata.namespace}.svc"


def version_label(version: str) -> str:
    """spec.version as a label value: build metadata's '+' is not allowed there, and
    a semantic version may be longer than the 63 characters a label value holds."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", version)[:63].rstrip("._-")


def env(pb: models.PulseBase) -> list[dict[str, Any]]:
    """The API container's environment: the operator's variables, then the user's."""
    result = [
        pods.plain_env("PULSEBASE_VERSION", pb.spec.version),
        pods.secret_env("PULSEBASE_SECRET_KEY", naming.api_secret(pb.metadata.name), "secret-key"),
        *_database_env(pb),
        *_redis_env(pb),
        *_s3_env(pb),
    ]
    if pb.spec.cdn.provider is models.CdnProvider.EDGE:
        result.append(pods.plain_env("PULSEBASE_CDN_URL", cdn.endpoint(pb)))
    # The API server drops an empty value; leaving it out keeps desired within live.
    result += [
        {"name": e.name, "value": e.value} if e.value else {"name": e.name}
        for e in pb.spec.api.extra_env
    ]
    return result


def _database_env(pb: models.PulseBase) -> list[dict[str, Any]]:
    spec = pb.spec.postgres
    name, namespace = pb.metadata.name, pb.metadata.namespace
    if spec.mode is models.Mode.EXTERNAL:
        external = spec.external
        assert external is not None  # the model requires it in external mode
        return [
            pods.plain_env("DATABASE_HOST", external.libpq_host),
            pods.plain_env("DATABASE_PORT", str(external.port)),
            pods.plain_env("DATABASE_NAME", external.database),
            pods.plain_env("DATABASE_SSLMODE", external.ssl_mode),
            pods.ref_env("DATABASE_USER", external.username),
            pods.ref_env("DATABASE_PASSWORD", external.password),
        ]
    secret = naming.postgres_app_secret(name)
    # A single instance has no replicas: reads go to the primary.
    readers = (
        naming.postgres_replicas(name) if spec.instances > 1 else naming.postgres_primary(name)
    )
    return [
        pods.plain_env("DATABASE_HOST", f"{naming.postgres_primary(name)}.{namespace}.svc"),
        pods.plain_env("DATABASE_PORT", str(postgres.PORT)),
        pods.secret_env("DATABASE_NAME", secret, "database"),
        # The managed cluster serves no TLS yet.
        pods.plain_env("DATABASE_SSLMODE", "disable"),
        pods.secret_env("DATABASE_USER", secret, "username"),
        pods.secret_env("DATABASE_PASSWORD", secret, "password"),
        pods.plain_env("DATABASE_READ_HOST", f"{readers}.{namespace}.svc"),
    ]


def _redis_env(pb: models.PulseBase) -> list[dict[str, Any]]:
    spec = pb.spec.redis
    if spec.mode is models.Mode.EXTERNAL:
        external = spec.external
        assert external is not None
        result = [
            pods.plain_env("REDIS_NODES", ",".join(external.endpoints)),
            pods.plain_env("REDIS_TLS", _bool(external.tls)),
        ]
        if external.password is not None:
            result.append(pods.ref_env("REDIS_PASSWORD", external.password))
        return result
    return [
        pods.plain_env("REDIS_NODES", ",".join(redis.node_addresses(pb))),
        pods.plain_env("REDIS_TLS", "false"),
        pods.secret_env("REDIS_PASSWORD", naming.redis_secret(pb.metadata.name), "password"),
    ]


def _s3_env(pb: models.PulseBase) -> list[dict[str, Any]]:
    storage = pb.spec.object_storage
    buckets = objectstore.buckets(pb)
    if storage.mode is models.Mode.EXTERNAL:
        external = storage.external
        assert external is not None
        region, path_style = external.region, external.force_path_style
        key_id = pods.ref_env("S3_ACCESS_KEY_ID", external.access_key_id)
        secret = pods.ref_env("S3_SECRET_ACCESS_KEY", external.secret_access_key)
    else:
        keys = naming.objectstore_secret(pb.metadata.name)
        region, path_style = objectstore.MANAGED_REGION, True
        key_id = pods.secret_env("S3_ACCESS_KEY_ID", keys, credentials.ACCESS_KEY_ID)
        secret = pods.secret_env("S3_SECRET_ACCESS_KEY", keys, credentials.SECRET_ACCESS_KEY)
    trust = []
    if ca := objectstore.ca_file(pb):
        # The managed endpoint's certificate comes from the operator's private CA; the
        # AWS SDKs read this variable for the bundle to verify it with.
        trust = [pods.plain_env("AWS_CA_BUNDLE", ca)]
    return [
        pods.plain_env("S3_ENDPOINT", objectstore.endpoint(pb)),
        *trust,
        pods.plain_env("S3_REGION", region),
        pods.plain_env("S3_FORCE_PATH_STYLE", _bool(path_style)),
        pods.plain_env("S3_ASSETS_BUCKET", buckets.assets),
        pods.plain_env("S3_BACKUPS_BUCKET", buckets.backups),
        key_id,
        secret,
    ]


def _deployment(pb: models.PulseBase) -> Object:
    name = pb.metadata.name
    spec = pb.spec.api
    container: dict[str, Any] = {
        "name": "api",
        "image": spec.image or images.api(pb.spec.version),
        "env": env(pb),
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT},
            {"name": "metrics", "containerPort": METRICS_PORT},
        ],
        "startupProbe": pods.http_probe("/livez", "http", period=5, failures=60),
        "readinessProbe": pods.http_probe("/readyz", "http"),
        "livenessProbe": pods.http_probe("/livez", "http"),
        "securityContext": pods.container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": pods.TMP_DIR}],
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    objectstore.trust_ca(pb, volumes=volumes, container=container)
    if resources := pods.resources(spec.resources):
        container["resources"] = resources
    return objects.deployment(
        pb,
        name=naming.api(name),
        component=COMPONENT,
        replicas=spec.replicas,
        containers=[container],
        volumes=volumes,
        pod_labels=labels.component(name, COMPONENT, version=version_label(pb.spec.version)),
        min_ready_seconds=5,
    )


def _service(pb: models.PulseBase) -> Object:
    return objects.service(
        pb,
        naming.api(pb.metadata.name),
        COMPONENT,
        ports=[{"name": "http", "port": 80, "targetPort": "http"}],
        service_type=pb.spec.api.service_type.value,
    )


def _metrics_service(pb: models.PulseBase) -> Object:
    # Apart from the API Service, which may be a LoadBalancer or NodePort: metrics are
    # for scrapers in the cluster, never for the public.
    return objects.service(
        pb,
        naming.api_metrics(pb.metadata.name),
        COMPONENT,
        ports=[{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
        service_type="ClusterIP",
    )


def _bool(value: bool) -> str:
    return "true" if value else "false"
