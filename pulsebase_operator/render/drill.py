"""Restore drills: a CronJob whose pod restores the newest backup into scratch space,
starts it, checks it and reports what it measured.

The pod has two containers sharing a scratch emptyDir. `restore` (the postgres image)
records what the repository holds, restores the newest backup set with WAL replayed to
the end of the archive and promotion, and runs PostgreSQL on the copy with no TCP
listener: its only socket is in the scratch directory, where `check` (the operator's
image, `pulsebase-operator drill-check`) connects, measures and writes one JSON result
to its termination message. The copy has archive_mode=off, so it never pushes WAL or a
new timeline into the source's archive; nothing of the source is written.

Files in the scratch directory, the two containers' whole protocol:

    info.json, archive.json   the repository's catalog and WAL listing before restoring
    restore.log, postgres.log pgBackRest's and PostgreSQL's output
    failed                    written by `restore` when a step failed: the step's name
    done                      written by `check` when it has finished: PostgreSQL stops

`drill_objects(pb)` is the entry point.
"""

from __future__ import annotations

from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.api.quantity import parse_duration
from pulsebase_operator.render import (
    backups,
    images,
    labels,
    naming,
    objects,
    objectstore,
    pods,
    postgres,
)
from pulsebase_operator.render.parts import Object

COMPONENT = "drill"
SCRIPT_KEY = "restore.sh"
SCRIPT_DIR = "/etc/pulsebase-drill"
SCRATCH_DIR = "/var/lib/pulsebase-drill"

# The check fails the drill once the recovery time objective has passed; the Job's own
# deadline comes this much later, so the check has time to report before it is killed.
DEADLINE_MARGIN_SECONDS = 600
STARTING_DEADLINE_SECONDS = 3600
SUCCESSFUL_HISTORY = 1
FAILED_HISTORY = 3

# Every name and path comes from the environment (SCRATCH, CONFIG, STANZA, PGBIN), so
# the same script runs in the pod and against local binaries in the tests.
RESTORE_SCRIPT = """\
set -u
data="$SCRATCH/pgdata"
pgbr() { pgbackrest --config="$CONFIG" --stanza="$STANZA" "$@"; }
failed() {
  printf '%s\\n' "$1" > "$SCRATCH/failed.partial" && mv "$SCRATCH/failed.partial" "$SCRATCH/failed"
  exit 1
}

# The repository before anything is restored: the recovery point is measured against it.
pgbr --output=json info > "$SCRATCH/info.json" 2> "$SCRATCH/restore.log" || failed info
pgbr --output=json --recurse repo-ls "archive/$STANZA" > "$SCRATCH/archive.json" \\
  2>> "$SCRATCH/restore.log" || failed info

# The newest set and all WAL after it, then promotion; the copy never archives.
mkdir -m 700 "$data" || failed restore
pgbr --pg1-path="$data" --archive-mode=off --log-level-console=info restore \\
  >> "$SCRATCH/restore.log" 2>&1 || failed restore

# No TCP listener: the only way in is the socket in the scratch directory.
mkdir -m 700 "$SCRATCH/run" || failed start
printf 'local all all trust\\n' > "$SCRATCH/pg_hba.conf"
: > "$SCRATCH/pg_ident.conf"
"${PGBIN:+$PGBIN/}postgres" -D "$data" -c listen_addresses= \\
  -c unix_socket_directories="$SCRATCH/run" -c hba_file="$SCRATCH/pg_hba.conf" \\
  -c ident_file="$SCRATCH/pg_ident.conf" -c archive_mode=off -c cluster_name=drill \\
  > "$SCRATCH/postgres.log" 2>&1 &
pid=$!

# Up until the check is done; a server that ends before that failed to start.
while [ ! -e "$SCRATCH/done" ]; do
  kill -0 "$pid" 2> /dev/null || failed start
  sleep 1
done
kill -INT "$pid"
wait "$pid"
exit 0
"""


def drill_objects(pb: models.PulseBase) -> list[Object]:
    """The drill's ConfigMap and CronJob; none when the database is external or backups
    or drills are disabled."""
    spec = pb.spec.backup
    if pb.spec.postgres.mode is models.Mode.EXTERNAL or not spec.enabled:
        return []
    if not spec.drill.enabled:
        return []
    return [config_map(pb), cron_job(pb)]


def name(pb: models.PulseBase) -> str:
    """`NAME-drill`: 6 characters past NAME, within the CronJob limit."""
    return naming.child(pb.metadata.name, COMPONENT)


def config_map(pb: models.PulseBase) -> Object:
    return objects.config_map(pb, name(pb), COMPONENT, data={SCRIPT_KEY: RESTORE_SCRIPT})


def check_deadline(pb: models.PulseBase) -> int:
    """Seconds the check gives the whole drill: the recovery time objective."""
    return int(parse_duration(pb.spec.backup.rto))


def job_deadline(pb: models.PulseBase) -> int:
    return check_deadline(pb) + DEADLINE_MARGIN_SECONDS


def cron_job(pb: models.PulseBase) -> Object:
    pb_name = pb.metadata.name
    spec = pb.spec.backup
    pod_labels = labels.component(pb_name, COMPONENT)
    restore = _restore_container(pb)
    volumes: list[dict[str, Any]] = [
        {"name": "script", "configMap": {"name": name(pb)}},
        {"name": "pgbackrest", "configMap": {"name": naming.pgbackrest_config(pb_name)}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "shm", "emptyDir": {"medium": "Memory"}},
    ]
    # pgbackrest.conf names the CA file of the managed object storage.
    objectstore.trust_ca(pb, volumes=volumes, container=restore)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": objects.metadata(pb, name(pb), COMPONENT),
        "spec": {
            "schedule": spec.drill.schedule,
            "timeZone": spec.time_zone,
            # Two drills at once would only compete for the node's disk and CPU.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": SUCCESSFUL_HISTORY,
            "failedJobsHistoryLimit": FAILED_HISTORY,
            "jobTemplate": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "activeDeadlineSeconds": job_deadline(pb),
                    # A failed drill is a finding to report, not something to retry.
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,
                            "enableServiceLinks": False,
                            "securityContext": pods.pod_security_context(),
                            # The kubelet starts containers in this order, pulling each
                            # image first: the check starts before the restore, so the
                            # recovery time it measures includes the restore's start.
                            "containers": [_check_container(pb), restore],
                            "volumes": volumes,
                        },
                    },
                },
            },
        },
    }


def _restore_container(pb: models.PulseBase) -> dict[str, Any]:
    spec = pb.spec.postgres
    # The copy replays the source's WAL with the source's settings, so it needs what
    # one PostgreSQL pod of the source has.
    resources = pods.resources(spec.resources) or {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }
    return {
        "name": "restore",
        "image": spec.image or images.postgres(spec.major_version),
        "command": ["bash", f"{SCRIPT_DIR}/{SCRIPT_KEY}"],
        "env": [
            pods.plain_env("SCRATCH", SCRATCH_DIR),
            pods.plain_env("CONFIG", backups.CONFIG_FILE),
            pods.plain_env("STANZA", backups.STANZA),
            *postgres.pgbackrest_env(pb),
        ],
        "resources": resources,
        "securityContext": pods.container_security_context(),
        "volumeMounts": [
            {"name": "script", "mountPath": SCRIPT_DIR, "readOnly": True},
            {"name": "pgbackrest", "mountPath": backups.CONFIG_DIR, "readOnly": True},
            {"name": "scratch", "mountPath": SCRATCH_DIR},
            {"name": "tmp", "mountPath": pods.TMP_DIR},
            {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108
        ],
    }


def _check_container(pb: models.PulseBase) -> dict[str, Any]:
    args = [
        "drill-check",
        f"--scratch={SCRATCH_DIR}",
        f"--deadline={check_deadline(pb)}",
        f"--user={postgres.SUPERUSER}",
    ]
    if pb.spec.backup.drill.marker_table:
        args.append(f"--marker-table={pb.spec.backup.drill.marker_table}")
    return {
        "name": "check",
        "image": images.operator(),
        "command": [images.OPERATOR_COMMAND],
        "args": args,
        "env": [
            # The database the application uses: its marker table and vector indexes.
            pods.secret_env("PGDATABASE", naming.postgres_app_secret(pb.metadata.name), "database")
        ],
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": pods.container_security_context(),
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH_DIR}],
    }
