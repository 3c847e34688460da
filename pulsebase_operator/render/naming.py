"""Names of every child object, deterministic and within Kubernetes limits.

A PulseBase name is at most 40 characters (the CRD enforces it), so NAME plus the
longest suffix below stays within 52, the limit for StatefulSet and CronJob names
(their pods and jobs append their own suffixes up to 63).
"""

from __future__ import annotations

STATEFULSET_LIMIT = 52
CRONJOB_LIMIT = 52
LABEL_LIMIT = 63


def child(name: str, suffix: str) -> str:
    return f"{name}-{suffix}"


def postgres(name: str) -> str:
    return child(name, "postgres")


def postgres_primary(name: str) -> str:
    return child(name, "postgres-rw")


def postgres_replicas(name: str) -> str:
    return child(name, "postgres-ro")


def postgres_config(name: str) -> str:
    """Patroni keeps its leader lock and cluster state in objects with this prefix."""
    return child(name, "postgres-config")


def redis(name: str) -> str:
    return child(name, "redis")


def redis_bootstrap(name: str) -> str:
    return child(name, "redis-bootstrap")


def objectstore(name: str) -> str:
    return child(name, "objectstore")


def objectstore_buckets(name: str) -> str:
    return child(name, "objectstore-buckets")


def api(name: str) -> str:
    return child(name, "api")


def api_metrics(name: str) -> str:
    """A cluster-internal Service: the API Service itself may be public."""
    return child(name, "api-metrics")


def edge(name: str) -> str:
    return child(name, "edge")


# Generated credentials, one Secret each.
def postgres_superuser_secret(name: str) -> str:
    return child(name, "postgres-superuser")


def postgres_replication_secret(name: str) -> str:
    return child(name, "postgres-replication")


def postgres_app_secret(name: str) -> str:
    return child(name, "postgres-app")


def postgres_restapi_secret(name: str) -> str:
    return child(name, "postgres-restapi")


def redis_secret(name: str) -> str:
    return child(name, "redis-auth")


def objectstore_secret(name: str) -> str:
    return child(name, "objectstore-keys")


def objectstore_tls(name: str) -> str:
    return child(name, "objectstore-tls")


def api_secret(name: str) -> str:
    return child(name, "api-keys")


def assets_bucket(name: str) -> str:
    return child(name, "assets")


def backups_bucket(name: str) -> str:
    return child(name, "backups")


def alerts(name: str) -> str:
    """The PrometheusRule holding this PulseBase's alert rules."""
    return child(name, "alerts")


def pgbackrest_config(name: str) -> str:
    return child(name, "pgbackrest")


def backup_account(name: str) -> str:
    """The ServiceAccount the backup CronJobs run pgBackRest in the primary with."""
    return child(name, "backup")


def backup_cron_job(name: str, kind: str) -> str:
    """full or incr; `NAME-backup-incr` is the longest, 12 characters past NAME."""
    return child(name, f"backup-{kind}")


def backup_vectors_cron_job(name: str) -> str:
    """The vector-table dump; `backup-vec`, since `backup-vectors` would pass 52 for a
    40-character NAME."""
    return child(name, "backup-vec")


def backup_stanza_job(name: str) -> str:
    """A Job, not a CronJob: 63 is its limit, and NAME-backup-stanza stays at 58."""
    return child(name, "backup-stanza")
