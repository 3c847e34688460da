"""Physical backups of the managed Patroni cluster: pgBackRest's configuration, the Job
that creates the stanza, the CronJobs that take full and incremental backups, and the
one that dumps the vector tables.

The repository is the PulseBase's backups bucket on its object storage, managed or
external. The configuration file holds no secret: the S3 keys reach pgBackRest as
PGBACKREST_REPO1_S3_KEY and PGBACKREST_REPO1_S3_KEY_SECRET from the existing Secrets
(postgres.pgbackrest_env), which pgBackRest merges with the file. The archiving
settings live in render.archive, which render.postgres reads too.

pgBackRest reads the data directory, so a backup runs inside the current primary's pod:
each Job runs `pulsebase-operator backup-job` from the operator's own image, which finds
that pod by Patroni's role label and runs pgBackRest there through the exec API, allowed
by a Role that grants exactly that and reading this PulseBase. pgBackRest's S3 driver
speaks only TLS: the object storage endpoint must be https.

`backup_objects(pb)` is the entry point.
"""

from __future__ import annotations

import configparser
import io
from typing import Any
from urllib.parse import urlsplit

from pulsebase_operator.api import models
from pulsebase_operator.render import (
    credentials,
    images,
    labels,
    naming,
    objects,
    objectstore,
    pods,
    postgres,
)
from pulsebase_operator.render.archive import (
    CONFIG_DIR,
    CONFIG_FILE,
    STANZA,
    archive_parameters,
    archive_timeout,
    restore_command,
)
from pulsebase_operator.render.parts import Object

__all__ = [
    "CONFIG_DIR",
    "CONFIG_FILE",
    "STANZA",
    "archive_parameters",
    "archive_timeout",
    "backup_objects",
    "restore_command",
]

COMPONENT = "backups"
REPO_PATH = "/pgbackrest"

# A run that could not start within this long after its time is skipped, not run late
# on top of the next one (an hourly incremental must not pile up behind a long full).
STARTING_DEADLINE_SECONDS = 600
SUCCESSFUL_HISTORY = 3
FAILED_HISTORY = 3
# A full backup of a large database takes hours; a stuck one must still end.
FULL_DEADLINE_SECONDS = 12 * 3600
INCREMENTAL_DEADLINE_SECONDS = 3 * 3600
# pg_dump of the vector tables: as long as a full backup may take.
VECTORS_DEADLINE_SECONDS = 12 * 3600
STANZA_BACKOFF_LIMIT = 10
STANZA_DEADLINE_SECONDS = 3600


def backup_objects(pb: models.PulseBase) -> list[Object]:
    """Everything physical backups need beside the Patroni StatefulSet; none when the
    database is external or backups are disabled."""
    if pb.spec.postgres.mode is models.Mode.EXTERNAL or not pb.spec.backup.enabled:
        return []
    return [
        config_map(pb),
        _service_account(pb),
        _role(pb),
        objects.role_binding(pb, naming.backup_account(pb.metadata.name), COMPONENT),
        stanza_job(pb),
        cron_job(pb, kind="full"),
        cron_job(pb, kind="incr"),
        vector_cron_job(pb),
    ]


# --- pgBackRest configuration ------------------------------------------------------


def repository_options(pb: models.PulseBase) -> dict[str, str]:
    """Where `pb`'s pgBackRest repository is: its backups bucket on its object storage."""
    endpoint = urlsplit(objectstore.endpoint(pb))
    region, path_style = objectstore.addressing(pb)
    return {
        "repo1-type": "s3",
        "repo1-path": REPO_PATH,
        "repo1-s3-bucket": objectstore.buckets(pb).backups,
        "repo1-s3-endpoint": endpoint.hostname or "",
        "repo1-storage-port": str(endpoint.port or 443),
        "repo1-s3-region": region,
        "repo1-s3-uri-style": "path" if path_style else "host",
    }


def pgbackrest_config(pb: models.PulseBase) -> str:
    """pgbackrest.conf for the Patroni pods, without credentials."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser["global"] = {
        **repository_options(pb),
        # The managed endpoint's certificate is from the operator's CA, mounted in the
        # Patroni pods; an external endpoint is verified against the system's CAs.
        **({"repo1-storage-ca-file": ca} if (ca := objectstore.ca_file(pb)) else {}),
        # Sets are expired by the operator's calendar policy (expire --set); pgBackRest's
        # own count after every backup would expire them by number instead.
        "repo1-retention-full": "9999999",
        "start-fast": "y",
        "process-max": "2",
        "compress-type": "zst",
        "lock-path": f"{pods.TMP_DIR}/pgbackrest",
        # The root filesystem is read-only; the console log is what kubectl logs shows.
        "log-level-file": "off",
        "log-level-console": "info",
    }
    parser[STANZA] = {
        "pg1-path": postgres.DATA_DIR,
        "pg1-socket-path": postgres.SOCKET_DIR,
        "pg1-port": str(postgres.PORT),
        "pg1-user": postgres.SUPERUSER,
    }
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def config_map(pb: models.PulseBase) -> Object:
    return objects.config_map(
        pb,
        naming.pgbackrest_config(pb.metadata.name),
        COMPONENT,
        data={"pgbackrest.conf": pgbackrest_config(pb)},
    )


# --- scheduled backups -------------------------------------------------------------


def cron_job(pb: models.PulseBase, *, kind: str) -> Object:
    """A CronJob that takes one kind of backup (full or incr) in the primary's pod."""
    spec = pb.spec.backup
    full = kind == "full"
    return _cron_job(
        pb,
        name=naming.backup_cron_job(pb.metadata.name, kind),
        schedule=spec.schedules.full if full else spec.schedules.incremental,
        container=_container(pb, kind=kind),
        deadline=FULL_DEADLINE_SECONDS if full else INCREMENTAL_DEADLINE_SECONDS,
    )


def vector_cron_job(pb: models.PulseBase) -> Object:
    """A CronJob that dumps the tables with vector columns into the backups bucket."""
    name = pb.metadata.name
    env = [
        # The job lists the vector tables over the primary Service as the superuser.
        pods.secret_env("PGPASSWORD", naming.postgres_superuser_secret(name), "password"),
        pods.secret_env("PGDATABASE", naming.postgres_app_secret(name), "database"),
        *_s3_key_env(pb),
    ]
    container = _container(pb, kind="vectors", env=env)
    volumes: list[dict[str, Any]] = []
    # The upload goes to the S3 endpoint from this pod; boto3 reads AWS_CA_BUNDLE.
    if ca := objectstore.trust_ca(pb, volumes=volumes, container=container):
        container["env"].append(pods.plain_env("AWS_CA_BUNDLE", ca))
    return _cron_job(
        pb,
        name=naming.backup_vectors_cron_job(name),
        schedule=pb.spec.backup.schedules.vector_tables,
        container=container,
        deadline=VECTORS_DEADLINE_SECONDS,
        volumes=volumes,
    )


def stanza_job(pb: models.PulseBase) -> Object:
    """A Job that creates the pgBackRest stanza once the primary is up; until then it
    fails and is retried with the Job's backoff. A no-op on an existing stanza."""
    name = pb.metadata.name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": objects.metadata(pb, naming.backup_stanza_job(name), COMPONENT),
        "spec": {
            # The backoff doubles from 10 s to 6 min: ten tries span about 40 minutes,
            # room for a first PostgreSQL to initialise and its volume to be bound.
            "backoffLimit": STANZA_BACKOFF_LIMIT,
            "activeDeadlineSeconds": STANZA_DEADLINE_SECONDS,
            "template": _pod_template(pb, container=_container(pb, kind="stanza")),
        },
    }


def _container(
    pb: models.PulseBase, *, kind: str, env: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    # The operator's own image runs `backup-job`: it finds the primary, runs pgBackRest
    # (or pg_dump) in its postgres container through the exec API and, after a full
    # backup, applies retention. The namespace comes from the pod, so the command holds
    # the PulseBase's name only.
    return {
        "name": "backup",
        "image": images.operator(),
        "command": [
            images.OPERATOR_COMMAND,
            "backup-job",
            f"--kind={kind}",
            f"--name={pb.metadata.name}",
            "--namespace=$(NAMESPACE)",
        ],
        "env": [pods.field_env("NAMESPACE", "metadata.namespace"), *(env or [])],
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": pods.container_security_context(),
    }


def _pod_template(
    pb: models.PulseBase,
    *,
    container: dict[str, Any],
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    name = pb.metadata.name
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": naming.backup_account(name),
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "securityContext": pods.pod_security_context(fs_group=False),
        "containers": [container],
    }
    if volumes:
        spec["volumes"] = volumes
    return {"metadata": {"labels": labels.component(name, COMPONENT)}, "spec": spec}


def _cron_job(
    pb: models.PulseBase,
    *,
    name: str,
    schedule: str,
    container: dict[str, Any],
    deadline: int,
    volumes: list[dict[str, Any]] | None = None,
) -> Object:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": objects.metadata(pb, name, COMPONENT),
        "spec": {
            "schedule": schedule,
            "timeZone": pb.spec.backup.time_zone,
            # Two backups of one stanza at once: the second fails on pgBackRest's lock.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": SUCCESSFUL_HISTORY,
            "failedJobsHistoryLimit": FAILED_HISTORY,
            "jobTemplate": {
                "metadata": {"labels": labels.component(pb.metadata.name, COMPONENT)},
                "spec": {
                    "activeDeadlineSeconds": deadline,
                    # pgBackRest resumes an interrupted backup; one retry, then the
                    # failure shows in status and alerts rather than in a retry loop.
                    "backoffLimit": 1,
                    "template": _pod_template(pb, container=container, volumes=volumes),
                },
            },
        },
    }


def _s3_key_env(pb: models.PulseBase) -> list[dict[str, Any]]:
    """The backups bucket's keys, as the AWS_* variables boto3 reads, from the same
    Secrets as the Patroni pods' PGBACKREST_REPO1_S3_KEY*."""
    storage = pb.spec.object_storage
    if storage.mode is models.Mode.MANAGED:
        keys = naming.objectstore_secret(pb.metadata.name)
        return [
            pods.secret_env("AWS_ACCESS_KEY_ID", keys, credentials.ACCESS_KEY_ID),
            pods.secret_env("AWS_SECRET_ACCESS_KEY", keys, credentials.SECRET_ACCESS_KEY),
        ]
    assert storage.external is not None  # the model requires it in external mode
    return [
        pods.ref_env("AWS_ACCESS_KEY_ID", storage.external.access_key_id),
        pods.ref_env("AWS_SECRET_ACCESS_KEY", storage.external.secret_access_key),
    ]


def _service_account(pb: models.PulseBase) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": objects.metadata(pb, naming.backup_account(pb.metadata.name), COMPONENT),
        "automountServiceAccountToken": False,
    }


def _role(pb: models.PulseBase) -> Object:
    # Reading the PulseBase (retention, time zone), finding the primary and running
    # pgBackRest or pg_dump in it; nothing else.
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": objects.metadata(pb, naming.backup_account(pb.metadata.name), COMPONENT),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
            {
                "apiGroups": [models.GROUP],
                "resources": [models.PLURAL],
                "resourceNames": [pb.metadata.name],
                "verbs": ["get"],
            },
        ],
    }
