"""Managed PostgreSQL: a Patroni cluster that uses the Kubernetes API as its DCS.

Patroni keeps its leader lock and cluster state in ConfigMaps and labels each pod with
its role, so the primary and replica Services simply select on that label. The image
bundles pgBackRest too; its repository (the backups bucket) is configured in the
environment, but WAL archiving waits for backups. In external mode nothing is
rendered: the API connects to the user's server.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import yaml

from pulsebase_operator.api import models
from pulsebase_operator.render import (
    archive,
    credentials,
    images,
    labels,
    naming,
    objects,
    objectstore,
    pods,
    restore,
)
from pulsebase_operator.render.parts import Component, Object, Part, Workload

COMPONENT = "postgres"
PORT = 5432
PATRONI_PORT = 8008
SUPERUSER = "postgres"
REPLICATION_USER = "replicator"

ROLE_LABEL = "role"
PRIMARY = "primary"
REPLICA = "replica"
# Patroni finds its members by its labels plus this one set to the scope; none of the
# common labels carries the scope, so the pods get one of their own.
SCOPE_LABEL = "pulsebase.io/patroni-scope"

CONFIG_DIR = "/etc/patroni"
DATA_MOUNT = "/var/lib/postgresql/data"
# A subdirectory, so that initdb finds it empty (volumes may hold lost+found).
DATA_DIR = f"{DATA_MOUNT}/pgdata"
SOCKET_DIR = "/var/run/postgresql"

DEFAULT_PARAMETERS = {
    "max_connections": "200",
    "password_encryption": "scram-sha-256",
    "shared_preload_libraries": "pg_stat_statements",
    "wal_log_hints": "on",
}

POST_INIT = """\
#!/bin/sh
# Patroni runs this once, on the new primary, with a superuser connection URL as $1.
# Names and password come from the environment (\\getenv, psql 15+), never from argv.
# A database restored from another PulseBase holds that one's app password: the role's
# password is set to this PulseBase's own (Patroni does so for its own two roles).
set -eu
psql --no-psqlrc --set=ON_ERROR_STOP=1 --dbname="$1" <<'SQL'
\\getenv app_user APP_USER
\\getenv app_password APP_PASSWORD
\\getenv app_database APP_DATABASE
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app_user', :'app_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \\gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'app_user', :'app_password') \\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'app_database', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_database') \\gexec
\\connect :"app_database"
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL
"""


def render(pb: models.PulseBase, *, source: models.PulseBase | None = None) -> Part:
    """`source`: the PulseBase `spec.bootstrap.recovery` names, while the new cluster
    still has to be bootstrapped from its backups (None: initdb, or bootstrapped)."""
    spec = pb.spec.postgres
    if spec.mode is models.Mode.EXTERNAL:
        assert spec.external is not None  # the model requires it in external mode
        endpoint = f"{spec.external.host}:{spec.external.port}"
        return Part(objects=(), component=Component(COMPONENT, "external", endpoint))

    name = pb.metadata.name
    config = _config_map(pb, source=source)
    children: list[Object] = [
        _service_account(pb),
        _role(pb),
        objects.role_binding(pb, naming.postgres(pb.metadata.name), COMPONENT),
        config,
        _headless_service(pb),
        _role_service(pb, naming.postgres_primary(name), PRIMARY),
        _role_service(pb, naming.postgres_replicas(name), REPLICA),
        _stateful_set(pb, config_hash=objects.config_hash(config["data"]), source=source),
    ]
    if spec.instances > 1:
        children.append(objects.pdb(pb, naming.postgres(name), COMPONENT, max_unavailable=1))
    return Part(
        objects=tuple(children),
        component=Component(
            name=COMPONENT,
            mode="managed",
            endpoint=f"{naming.postgres_primary(name)}.{pb.metadata.namespace}.svc:{PORT}",
            workloads=(Workload("StatefulSet", naming.postgres(name)),),
        ),
    )


def parameters(pb: models.PulseBase) -> dict[str, str]:
    """postgresql.conf settings: sane defaults, the user's, then those the operator owns."""
    return {
        **DEFAULT_PARAMETERS,
        **pb.spec.postgres.parameters,
        # Through pgBackRest when backups are on (render.archive); archive-push fails,
        # and PostgreSQL keeps the WAL, until the stanza Job has created the stanza.
        **archive.archive_parameters(pb),
        "hot_standby": "on",
        "max_replication_slots": "10",
        "max_wal_senders": "10",
        "wal_level": "replica",
    }


def patroni_config(
    pb: models.PulseBase, *, source: models.PulseBase | None = None
) -> dict[str, Any]:
    """patroni.yml, apart from what the environment sets per pod.

    `bootstrap.dcs` seeds the cluster-wide configuration once, when the cluster is
    created; later changes must be PATCHed to Patroni's /config. The same parameters
    in the local section take effect when the pods roll, except for the few that must
    match on every member (max_connections, wal_level and the like), which only the
    cluster-wide configuration can change.

    With a restore `source`, the bootstrap restores its backups instead of running
    initdb (render.restore).
    """
    settings = parameters(pb)
    config: dict[str, Any] = {
        "bootstrap": {
            "dcs": {
                "ttl": 30,
                "loop_wait": 10,
                "retry_timeout": 10,
                "maximum_lag_on_failover": 1048576,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": settings,
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            "post_init": f"sh {CONFIG_DIR}/post_init.sh",
        },
        "postgresql": {
            "pgpass": f"{pods.TMP_DIR}/pgpass",
            "parameters": {**settings, "unix_socket_directories": SOCKET_DIR},
            **_recovery(pb),
            "pg_hba": [
                # The socket lives in a pod-private emptyDir; Patroni and pgBackRest
                # use it as the superuser.
                "local all all trust",
                "host replication replicator 0.0.0.0/0 scram-sha-256",
                "host replication replicator ::/0 scram-sha-256",
                "host all all 0.0.0.0/0 scram-sha-256",
                "host all all ::/0 scram-sha-256",
            ],
        },
    }
    if source is not None:
        config["bootstrap"] |= restore.patroni_bootstrap(pb, config_dir=CONFIG_DIR)
    return config


def _recovery(pb: models.PulseBase) -> dict[str, Any]:
    # A replica that fell behind its primary's kept WAL, and a restored cluster, fetch
    # the segments they lack from the archive.
    if not archive.enabled(pb):
        return {}
    return {"recovery_conf": {"restore_command": archive.restore_command()}}


def pgbackrest_env(pb: models.PulseBase) -> list[dict[str, Any]]:
    """pgBackRest's repository, as PGBACKREST_* variables: no config file to mount.

    Every pgBackRest command in the pod (archive-push from PostgreSQL once archiving is
    on, backups run by the operator) reads these.
    """
    name = pb.metadata.name
    storage = pb.spec.object_storage
    endpoint = urlsplit(objectstore.endpoint(pb))
    https = endpoint.scheme == "https"
    if storage.mode is models.Mode.MANAGED:
        region, path_style = objectstore.MANAGED_REGION, True
        keys = naming.objectstore_secret(name)
        key_id = pods.secret_env("PGBACKREST_REPO1_S3_KEY", keys, credentials.ACCESS_KEY_ID)
        secret = pods.secret_env(
            "PGBACKREST_REPO1_S3_KEY_SECRET", keys, credentials.SECRET_ACCESS_KEY
        )
    else:
        external = storage.external
        assert external is not None
        region, path_style = external.region, external.force_path_style
        key_id = pods.ref_env("PGBACKREST_REPO1_S3_KEY", external.access_key_id)
        secret = pods.ref_env("PGBACKREST_REPO1_S3_KEY_SECRET", external.secret_access_key)
    return [
        pods.plain_env("PGBACKREST_LOCK_PATH", f"{pods.TMP_DIR}/pgbackrest"),
        # No log file: the root filesystem is read-only; the console log remains.
        pods.plain_env("PGBACKREST_LOG_LEVEL_FILE", "off"),
        pods.plain_env("PGBACKREST_PG1_PATH", DATA_DIR),
        pods.plain_env("PGBACKREST_PG1_SOCKET_PATH", SOCKET_DIR),
        pods.plain_env("PGBACKREST_REPO1_PATH", "/pgbackrest"),
        pods.plain_env("PGBACKREST_REPO1_S3_BUCKET", objectstore.buckets(pb).backups),
        pods.plain_env("PGBACKREST_REPO1_S3_ENDPOINT", endpoint.hostname or ""),
        key_id,
        secret,
        pods.plain_env("PGBACKREST_REPO1_S3_REGION", region),
        pods.plain_env("PGBACKREST_REPO1_S3_URI_STYLE", "path" if path_style else "host"),
        pods.plain_env(
            "PGBACKREST_REPO1_STORAGE_PORT", str(endpoint.port or (443 if https else 80))
        ),
        pods.plain_env("PGBACKREST_REPO1_TYPE", "s3"),
        *_pgbackrest_ca_env(pb),
    ]


def _pgbackrest_ca_env(pb: models.PulseBase) -> list[dict[str, Any]]:
    ca = objectstore.ca_file(pb)
    return [] if ca is None else [pods.plain_env("PGBACKREST_REPO1_STORAGE_CA_FILE", ca)]


# --- objects ---------------------------------------------------------------------


def _service_account(pb: models.PulseBase) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": objects.metadata(pb, naming.postgres(pb.metadata.name), COMPONENT),
    }


def _role(pb: models.PulseBase) -> Object:
    # With ConfigMaps as the DCS (use_endpoints false) Patroni touches nothing else:
    # no Endpoints, and no Service of its own.
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": objects.metadata(pb, naming.postgres(pb.metadata.name), COMPONENT),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            },
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "verbs": ["get", "list", "patch", "update", "watch"],
            },
        ],
    }


def _config_map(pb: models.PulseBase, *, source: models.PulseBase | None) -> Object:
    data = {
        "patroni.yml": yaml.safe_dump(patroni_config(pb, source=source), sort_keys=True),
        "post_init.sh": POST_INIT,
    }
    if source is not None:
        data |= restore.config_files(source)
    return objects.config_map(pb, naming.postgres(pb.metadata.name), COMPONENT, data=data)


def _headless_service(pb: models.PulseBase) -> Object:
    return objects.headless_service(
        pb,
        naming.postgres(pb.metadata.name),
        COMPONENT,
        ports=[
            {"name": "postgres", "port": PORT, "targetPort": "postgres"},
            {"name": "patroni", "port": PATRONI_PORT, "targetPort": "patroni"},
        ],
    )


def _role_service(pb: models.PulseBase, service: str, role: str) -> Object:
    return objects.service(
        pb,
        service,
        COMPONENT,
        ports=[{"name": "postgres", "port": PORT, "targetPort": "postgres"}],
        selector={**labels.selector(pb.metadata.name, COMPONENT), ROLE_LABEL: role},
    )


def _stateful_set(
    pb: models.PulseBase, *, config_hash: str, source: models.PulseBase | None
) -> Object:
    name = pb.metadata.name
    container = _container(pb)
    restore_volumes: list[dict[str, Any]] = []
    if source is not None:
        recovery = pb.spec.bootstrap.recovery
        target = recovery.target_time if recovery is not None else None
        container["env"] += restore.env(source, target_time=target, config_dir=CONFIG_DIR)
        if (ca := restore.source_ca_volume(source)) is not None:
            restore_volumes.append(ca)
            container["volumeMounts"].append(restore.source_ca_mount())
    return objects.stateful_set(
        pb,
        name=naming.postgres(name),
        component=COMPONENT,
        replicas=pb.spec.postgres.instances,
        parallel=True,
        containers=[container],
        volumes=[
            {"name": "config", "configMap": {"name": naming.postgres(name)}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "run", "emptyDir": {}},
            # The container runtime's default /dev/shm (64M) is too small for
            # PostgreSQL's dynamic shared memory.
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
            *_pgbackrest_volumes(pb),
            # The managed object storage's CA, which pgBackRest verifies the repository by.
            *([] if (ca := objectstore.ca_volume(pb)) is None else [ca]),
            *restore_volumes,
        ],
        storage=pb.spec.postgres.storage,
        pod_labels={**labels.component(name, COMPONENT), SCOPE_LABEL: naming.postgres(name)},
        config_hash=config_hash,
        # Patroni talks to the API server: leader lock, member labels.
        service_account=naming.postgres(name),
    )


def _container(pb: models.PulseBase) -> dict[str, Any]:
    spec = pb.spec.postgres
    container: dict[str, Any] = {
        "name": "postgres",
        "image": spec.image or images.postgres(spec.major_version),
        "command": ["patroni", f"{CONFIG_DIR}/patroni.yml"],
        "env": _patroni_env(pb) + pgbackrest_env(pb),
        "ports": [
            {"name": "postgres", "containerPort": PORT},
            {"name": "patroni", "containerPort": PATRONI_PORT},
        ],
        "readinessProbe": pods.http_probe("/readiness", "patroni"),
        "livenessProbe": pods.http_probe("/liveness", "patroni", failures=6),
        "securityContext": pods.container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_MOUNT},
            {"name": "tmp", "mountPath": pods.TMP_DIR},
            {"name": "run", "mountPath": SOCKET_DIR},
            {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108
            *_pgbackrest_mounts(pb),
        ],
    }
    if objectstore.ca_volume(pb) is not None:
        container["volumeMounts"].append(objectstore.ca_mount())
    if resources := pods.resources(spec.resources):
        container["resources"] = resources
    return container


def _pgbackrest_volumes(pb: models.PulseBase) -> list[dict[str, Any]]:
    # pgbackrest.conf, from render.backups's ConfigMap, where archive-push and the
    # backup Jobs' commands read it.
    if not archive.enabled(pb):
        return []
    return [
        {"name": "pgbackrest", "configMap": {"name": naming.pgbackrest_config(pb.metadata.name)}}
    ]


def _pgbackrest_mounts(pb: models.PulseBase) -> list[dict[str, Any]]:
    if not archive.enabled(pb):
        return []
    return [{"name": "pgbackrest", "mountPath": archive.CONFIG_DIR, "readOnly": True}]


def _patroni_env(pb: models.PulseBase) -> list[dict[str, Any]]:
    name = pb.metadata.name
    selector = labels.selector(name, COMPONENT)
    app_secret = naming.postgres_app_secret(name)
    restapi_secret = naming.postgres_restapi_secret(name)
    return [
        pods.field_env("PATRONI_NAME", "metadata.name"),
        pods.plain_env("PATRONI_SCOPE", naming.postgres(name)),
        pods.field_env("PATRONI_KUBERNETES_NAMESPACE", "metadata.namespace"),
        pods.field_env("PATRONI_KUBERNETES_POD_IP", "status.podIP"),
        pods.plain_env("PATRONI_KUBERNETES_LABELS", json.dumps(selector, sort_keys=True)),
        pods.plain_env("PATRONI_KUBERNETES_SCOPE_LABEL", SCOPE_LABEL),
        pods.plain_env("PATRONI_KUBERNETES_USE_ENDPOINTS", "false"),
        pods.plain_env("PATRONI_KUBERNETES_ROLE_LABEL", ROLE_LABEL),
        pods.plain_env("PATRONI_KUBERNETES_LEADER_LABEL_VALUE", PRIMARY),
        pods.plain_env("PATRONI_KUBERNETES_FOLLOWER_LABEL_VALUE", REPLICA),
        pods.plain_env("PATRONI_KUBERNETES_STANDBY_LEADER_LABEL_VALUE", PRIMARY),
        pods.plain_env("PATRONI_POSTGRESQL_DATA_DIR", DATA_DIR),
        pods.plain_env("PATRONI_POSTGRESQL_LISTEN", f"0.0.0.0:{PORT}"),
        # $(VAR) refers to the variable defined above; Kubernetes expands it.
        pods.plain_env(
            "PATRONI_POSTGRESQL_CONNECT_ADDRESS", f"$(PATRONI_KUBERNETES_POD_IP):{PORT}"
        ),
        pods.plain_env("PATRONI_RESTAPI_LISTEN", f"0.0.0.0:{PATRONI_PORT}"),
        pods.plain_env(
            "PATRONI_RESTAPI_CONNECT_ADDRESS", f"$(PATRONI_KUBERNETES_POD_IP):{PATRONI_PORT}"
        ),
        pods.plain_env("PATRONI_SUPERUSER_USERNAME", SUPERUSER),
        pods.secret_env(
            "PATRONI_SUPERUSER_PASSWORD", naming.postgres_superuser_secret(name), "password"
        ),
        pods.plain_env("PATRONI_REPLICATION_USERNAME", REPLICATION_USER),
        pods.secret_env(
            "PATRONI_REPLICATION_PASSWORD", naming.postgres_replication_secret(name), "password"
        ),
        pods.secret_env("PATRONI_RESTAPI_USERNAME", restapi_secret, "username"),
        pods.secret_env("PATRONI_RESTAPI_PASSWORD", restapi_secret, "password"),
        pods.secret_env("APP_USER", app_secret, "username"),
        pods.secret_env("APP_PASSWORD", app_secret, "password"),
        pods.secret_env("APP_DATABASE", app_secret, "database"),
    ]
