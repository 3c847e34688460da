"""Physical backups of the managed Patroni cluster: pgBackRest's configuration, the WAL
archiving settings, and the CronJobs that take full and incremental backups.

The repository is the PulseBase's backups bucket on its object storage, managed or
external. The configuration file holds no secret: the S3 keys reach pgBackRest as
PGBACKREST_REPO1_S3_KEY and PGBACKREST_REPO1_S3_KEY_SECRET from the existing Secrets
(postgres.pgbackrest_env), which pgBackRest merges with the file.

pgBackRest reads the data directory, so a backup runs inside the current primary's pod;
each CronJob's pod finds that pod by Patroni's role label and runs pgBackRest there
through `kubectl exec`, allowed by a Role that grants exactly that. pgBackRest's S3
driver speaks only TLS: the object storage endpoint must be https.

`backup_objects(pb)` is the entry point; it is not part of the stack yet.
"""

from __future__ import annotations

import configparser
import io
from typing import Any
from urllib.parse import urlsplit

from pulsebase_operator.api import models
from pulsebase_operator.api.quantity import parse_duration
from pulsebase_operator.render import labels, naming, objects, objectstore, pods, postgres
from pulsebase_operator.render.parts import Object

COMPONENT = "backups"
STANZA = "pulsebase"
REPO_PATH = "/pgbackrest"
CONFIG_DIR = "/etc/pgbackrest"
CONFIG_FILE = f"{CONFIG_DIR}/pgbackrest.conf"
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.31.0"

# A partly filled WAL segment is archived after a third of the RPO: a segment that
# fails to push once can be retried twice more before the RPO is spent. Never below a
# minute, because every switch archives a whole 16 MB segment however little it holds.
ARCHIVE_TIMEOUT_SHARE = 3
ARCHIVE_TIMEOUT_MIN = 60

# A run that could not start within this long after its time is skipped, not run late
# on top of the next one (an hourly incremental must not pile up behind a long full).
STARTING_DEADLINE_SECONDS = 600
SUCCESSFUL_HISTORY = 3
FAILED_HISTORY = 3
# A full backup of a large database takes hours; a stuck one must still end.
FULL_DEADLINE_SECONDS = 12 * 3600
INCREMENTAL_DEADLINE_SECONDS = 3 * 3600


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
        cron_job(pb, kind="full"),
        cron_job(pb, kind="incr"),
    ]


# --- pgBackRest configuration ------------------------------------------------------


def pgbackrest_config(pb: models.PulseBase) -> str:
    """pgbackrest.conf for the Patroni pods, without credentials."""
    storage = pb.spec.object_storage
    endpoint = urlsplit(objectstore.endpoint(pb))
    if storage.mode is models.Mode.MANAGED:
        region, path_style = objectstore.MANAGED_REGION, True
    else:
        assert storage.external is not None  # the model requires it in external mode
        region, path_style = storage.external.region, storage.external.force_path_style
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser["global"] = {
        "repo1-type": "s3",
        "repo1-path": REPO_PATH,
        "repo1-s3-bucket": objectstore.buckets(pb).backups,
        "repo1-s3-endpoint": endpoint.hostname or "",
        "repo1-storage-port": str(endpoint.port or 443),
        "repo1-s3-region": region,
        "repo1-s3-uri-style": "path" if path_style else "host",
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


# --- WAL archiving -----------------------------------------------------------------


def archive_timeout(pb: models.PulseBase) -> int:
    """Seconds after which PostgreSQL archives a partly filled WAL segment."""
    rpo = int(parse_duration(pb.spec.backup.rpo))
    return max(ARCHIVE_TIMEOUT_MIN, rpo // ARCHIVE_TIMEOUT_SHARE)


def archive_parameters(pb: models.PulseBase) -> dict[str, str]:
    """The postgresql.conf settings that turn WAL archiving on, for Patroni's
    `postgresql.parameters`; empty when backups are off."""
    if not pb.spec.backup.enabled:
        return {"archive_mode": "off"}
    return {
        "archive_mode": "on",
        "archive_command": f"pgbackrest --config={CONFIG_FILE} --stanza={STANZA} archive-push %p",
        "archive_timeout": f"{archive_timeout(pb)}s",
        "wal_level": "replica",
    }


def restore_command() -> str:
    """For Patroni's `postgresql.recovery_conf`: replicas fetch WAL they lack from the
    archive, and a restored cluster replays it."""
    return f"pgbackrest --config={CONFIG_FILE} --stanza={STANZA} archive-get %f %p"


# --- scheduled backups -------------------------------------------------------------


def cron_job(pb: models.PulseBase, *, kind: str) -> Object:
    """A CronJob that takes one kind of backup (full or incr) in the primary's pod."""
    name = pb.metadata.name
    spec = pb.spec.backup
    schedule = spec.schedules.full if kind == "full" else spec.schedules.incremental
    deadline = FULL_DEADLINE_SECONDS if kind == "full" else INCREMENTAL_DEADLINE_SECONDS
    selector = ",".join(
        f"{key}={value}"
        for key, value in {
            **labels.selector(name, postgres.COMPONENT),
            postgres.ROLE_LABEL: postgres.PRIMARY,
        }.items()
    )
    # Names come from the environment, so the script itself holds no value of the spec.
    script = (
        "set -eu\n"
        'pod=$(kubectl get pods -n "$NAMESPACE" -l "$PRIMARY_SELECTOR" '
        "-o jsonpath='{.items[0].metadata.name}')\n"
        'test -n "$pod" || { echo "no primary PostgreSQL pod found" >&2; exit 1; }\n'
        'exec kubectl exec -n "$NAMESPACE" -c postgres "$pod" -- '
        'pgbackrest --config="$CONFIG" --stanza="$STANZA" --type="$KIND" backup\n'
    )
    container: dict[str, Any] = {
        "name": "backup",
        "image": KUBECTL_IMAGE,
        "command": ["sh", "-c", script],
        "env": [
            pods.field_env("NAMESPACE", "metadata.namespace"),
            pods.plain_env("PRIMARY_SELECTOR", selector),
            pods.plain_env("CONFIG", CONFIG_FILE),
            pods.plain_env("STANZA", STANZA),
            pods.plain_env("KIND", kind),
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": pods.container_security_context(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": objects.metadata(pb, naming.backup_cron_job(name, kind), COMPONENT),
        "spec": {
            "schedule": schedule,
            "timeZone": spec.time_zone,
            # Two backups of one stanza at once: the second fails on pgBackRest's lock.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": SUCCESSFUL_HISTORY,
            "failedJobsHistoryLimit": FAILED_HISTORY,
            "jobTemplate": {
                "metadata": {"labels": labels.component(name, COMPONENT)},
                "spec": {
                    "activeDeadlineSeconds": deadline,
                    # pgBackRest resumes an interrupted backup; one retry, then the
                    # failure shows in status and alerts rather than in a retry loop.
                    "backoffLimit": 1,
                    "template": {
                        "metadata": {"labels": labels.component(name, COMPONENT)},
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": naming.backup_account(name),
                            "automountServiceAccountToken": True,
                            "enableServiceLinks": False,
                            "securityContext": pods.pod_security_context(fs_group=False),
                            "containers": [container],
                        },
                    },
                },
            },
        },
    }


def _service_account(pb: models.PulseBase) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": objects.metadata(pb, naming.backup_account(pb.metadata.name), COMPONENT),
        "automountServiceAccountToken": False,
    }


def _role(pb: models.PulseBase) -> Object:
    # Finding the primary and running pgBackRest in it; nothing else.
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": objects.metadata(pb, naming.backup_account(pb.metadata.name), COMPONENT),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
        ],
    }
