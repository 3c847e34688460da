"""Manifests the API server must refuse, each with the field path its message names.

Every case is a change to a valid base spec. `create` cases are refused on creation;
`update` cases are valid on their own and refused only as a change of an existing
object (transition rules). The e2e suite sends every case to the real API server; the
unit suite runs the `create` cases through the models, which must refuse them too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

BASE_SPEC: dict[str, Any] = {"version": "2.4.1"}


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    field_path: str  # what the API server's message must name
    message: str  # a fragment of the message a person would read
    before: dict[str, Any] | None = None  # for update cases: the accepted spec first
    name: str = "bad"
    models_reject: bool = True  # False where only the API server can tell (transitions)
    tags: tuple[str, ...] = field(default=())


def spec(**parts: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE_SPEC)
    out.update(parts)
    return out


def external_s3(endpoint: str) -> dict[str, Any]:
    return {
        "mode": "external",
        "external": {
            "endpoint": endpoint,
            "accessKeyId": {"name": "s", "key": "a"},
            "secretAccessKey": {"name": "s", "key": "b"},
        },
    }


CREATE_CASES = [
    Case("version-not-semver", spec(version="2.4"), "spec.version", "must be a semantic version"),
    Case("version-leading-v", spec(version="v2.4.1"), "spec.version", "without a leading v"),
    # Python's $ also matches before a final line break, CEL's does not.
    Case(
        "version-trailing-line-break",
        spec(version="2.4.1\n"),
        "spec.version",
        "must be a semantic version",
    ),
    Case(
        "duration-trailing-line-break",
        spec(backup={"rpo": "15m\n"}),
        "spec.backup.rpo",
        "must be a duration",
    ),
    Case(
        "cron-trailing-line-break",
        spec(backup={"schedules": {"full": "0 1 * * *\n"}}),
        "spec.backup.schedules.full",
        "must be a five-field cron expression",
    ),
    Case(
        "storage-size-trailing-line-break",
        spec(postgres={"storage": {"size": "10Gi\n"}}),
        "spec.postgres.storage.size",
        "must be a whole number of bytes",
    ),
    Case(
        "api-replicas-negative",
        spec(api={"replicas": -1}),
        "spec.api.replicas",
        "greater than or equal to 0",
    ),
    Case(
        "postgres-instances-zero",
        spec(postgres={"instances": 0}),
        "spec.postgres.instances",
        "greater than or equal to 1",
    ),
    Case(
        "postgres-instances-too-many",
        spec(postgres={"instances": 12}),
        "spec.postgres.instances",
        "less than or equal to 9",
    ),
    Case(
        "postgres-mode-unknown",
        spec(postgres={"mode": "cloud"}),
        "spec.postgres.mode",
        "Unsupported value",
    ),
    Case(
        "storage-size-not-quantity",
        spec(postgres={"storage": {"size": "50GB"}}),
        "spec.postgres.storage.size",
        "must be a whole number of bytes",
    ),
    Case(
        "storage-size-fraction-of-a-byte",
        spec(postgres={"storage": {"size": "0.0001Ki"}}),
        "spec.postgres.storage.size",
        "must be a whole number of bytes",
    ),
    Case(
        "cdn-cache-size-above-8ei",
        spec(cdn={"edge": {"cacheSize": "100Ei"}}),
        "spec.cdn.edge.cacheSize",
        "below 8Ei",
    ),
    Case(
        "cpu-below-a-millicore",
        spec(api={"resources": {"requests": {"cpu": "0.0001"}}}),
        "spec.api.resources.requests.cpu",
        "at least 1m",
    ),
    Case(
        "storage-size-zero",
        spec(postgres={"storage": {"size": "0"}}),
        "spec.postgres.storage.size",
        "must be larger than zero",
    ),
    Case(
        "postgres-external-missing",
        spec(postgres={"mode": "external"}),
        "spec.postgres.external",
        "external is required when mode is external",
    ),
    Case(
        "postgres-external-with-managed",
        spec(
            postgres={
                "external": {
                    "host": "db.example.com",
                    "username": {"name": "s", "key": "u"},
                    "password": {"name": "s", "key": "p"},
                }
            }
        ),
        "spec.postgres.external",
        "external may only be set when mode is external",
    ),
    Case(
        "postgres-reserved-parameter",
        spec(postgres={"parameters": {"archive_command": "/bin/true"}}),
        "spec.postgres.parameters",
        "managed by the operator",
    ),
    Case(
        "postgres-reserved-parameter-upper-case",
        spec(postgres={"parameters": {"ARCHIVE_MODE": "off"}}),
        "spec.postgres.parameters",
        "managed by the operator",
    ),
    Case(
        # Patroni writes names into postgresql.conf unquoted: "port " is port, and a
        # line break would start a setting the operator owns.
        "postgres-parameter-name-with-space",
        spec(postgres={"parameters": {"port ": "5433"}}),
        "spec.postgres.parameters",
        "must be PostgreSQL setting names",
    ),
    Case(
        "postgres-parameter-name-with-line-break",
        spec(postgres={"parameters": {"work_mem = 4MB\narchive_command": "/bin/true"}}),
        "spec.postgres.parameters",
        "must be PostgreSQL setting names",
    ),
    Case(
        "resources-requests-above-limits",
        spec(api={"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}),
        "spec.api.resources.requests.memory",
        "must not exceed limits.memory",
    ),
    Case(
        "redis-too-few-shards",
        spec(redis={"shards": 2}),
        "spec.redis.shards",
        "greater than or equal to 3",
    ),
    Case(
        "redis-max-memory-too-small",
        spec(redis={"maxMemory": "500m"}),
        "spec.redis.maxMemory",
        "must be at least 16Mi",
    ),
    Case(
        "redis-endpoint-without-port",
        spec(redis={"mode": "external", "external": {"endpoints": ["cache.example.com"]}}),
        "spec.redis.external.endpoints[0]",
        "must be host:port",
    ),
    Case(
        "redis-endpoint-port-out-of-range",
        spec(redis={"mode": "external", "external": {"endpoints": ["cache.example.com:70000"]}}),
        "spec.redis.external.endpoints[0]",
        "port between 1 and 65535",
    ),
    Case(
        # The endpoints go into a plain environment variable and into status.
        "redis-endpoint-with-credentials",
        spec(
            redis={"mode": "external", "external": {"endpoints": ["s3cret@cache.example.com:6379"]}}
        ),
        "spec.redis.external.endpoints[0]",
        "must be host:port",
    ),
    Case(
        "redis-endpoint-duplicate",
        spec(
            redis={
                "mode": "external",
                "external": {"endpoints": ["cache.example.com:6379", "cache.example.com:6379"]},
            }
        ),
        "spec.redis.external.endpoints[1]",
        "Duplicate value",
    ),
    Case(
        "object-storage-endpoint-not-url",
        spec(objectStorage=external_s3("s3.amazonaws.com")),
        "spec.objectStorage.external.endpoint",
        "should match",
    ),
    Case(
        "object-storage-endpoint-port-out-of-range",
        spec(objectStorage=external_s3("https://s3.example.com:99999")),
        "spec.objectStorage.external.endpoint",
        "port must be between 1 and 65535",
    ),
    Case(
        "object-storage-endpoint-without-host",
        spec(objectStorage=external_s3("https://:9000")),
        "spec.objectStorage.external.endpoint",
        "must name a host",
    ),
    Case(
        "object-storage-endpoint-with-credentials",
        spec(objectStorage=external_s3("https://KEY:SECRET@s3.example.com")),
        "spec.objectStorage.external.endpoint",
        "must not contain credentials",
    ),
    Case(
        "object-storage-endpoint-plain-http-with-backups",
        spec(objectStorage=external_s3("http://minio.storage.svc:9000")),
        "spec.objectStorage.external.endpoint",
        "pgBackRest's S3 driver speaks only TLS",
    ),
    Case(
        "bucket-name-invalid",
        spec(objectStorage={"buckets": {"assets": "Bad_Bucket"}}),
        "spec.objectStorage.buckets.assets",
        "should match",
    ),
    Case(
        "bucket-adjacent-periods",
        spec(objectStorage={"buckets": {"assets": "my..bucket"}}),
        "spec.objectStorage.buckets.assets",
        "must not contain two adjacent periods",
    ),
    Case(
        "bucket-ip-address",
        spec(objectStorage={"buckets": {"backups": "192.168.5.4"}}),
        "spec.objectStorage.buckets.backups",
        "must not be formatted as an IP address",
    ),
    Case(
        "bucket-reserved-prefix",
        spec(objectStorage={"buckets": {"assets": "xn--bucket"}}),
        "spec.objectStorage.buckets.assets",
        "must not start with xn--",
    ),
    Case(
        "buckets-the-same",
        spec(objectStorage={"buckets": {"assets": "shop-data", "backups": "shop-data"}}),
        "spec.objectStorage.buckets.backups",
        "must differ from assets",
    ),
    Case(
        "bucket-is-the-other-default",
        spec(objectStorage={"buckets": {"assets": "bad-backups"}}),
        "spec.objectStorage.buckets.assets",
        "must differ from the backups bucket, which defaults to NAME-backups",
    ),
    Case(
        "cdn-asset-max-age-huge",
        spec(cdn={"edge": {"assetMaxAge": "99999999h"}}),
        "spec.cdn.edge.assetMaxAge",
        "must be between 1s and 8760h",
    ),
    Case(
        "cdn-provider-unknown",
        spec(cdn={"provider": "akamai"}),
        "spec.cdn.provider",
        "Unsupported value",
    ),
    Case(
        "backup-schedule-six-fields",
        spec(backup={"schedules": {"full": "0 0 1 * * *"}}),
        "spec.backup.schedules.full",
        "must be a five-field cron expression",
    ),
    Case(
        "backup-schedule-macro",
        spec(backup={"schedules": {"incremental": "@hourly"}}),
        "spec.backup.schedules.incremental",
        "must be a five-field cron expression",
    ),
    Case(
        "backup-schedule-minute-out-of-range",
        spec(backup={"schedules": {"full": "60 1 * * *"}}),
        "spec.backup.schedules.full",
        "numbers within range",
    ),
    Case(
        "drill-schedule-step-zero",
        spec(backup={"drill": {"schedule": "*/0 * * * *"}}),
        "spec.backup.drill.schedule",
        "must be a five-field cron expression",
    ),
    Case(
        "backup-rpo-too-short",
        spec(backup={"rpo": "10s"}),
        "spec.backup.rpo",
        "must be between 1m and 24h",
    ),
    Case(
        "backup-rpo-not-duration",
        spec(backup={"rpo": "15 minutes"}),
        "spec.backup.rpo",
        "must be a duration",
    ),
    Case(
        "recovery-target-without-offset",
        spec(
            bootstrap={
                "recovery": {"source": {"pulseBase": "old"}, "targetTime": "2026-12-01T09:30:00"}
            }
        ),
        "spec.bootstrap.recovery.targetTime",
        "explicit offset",
    ),
    Case(
        "recovery-target-unknown-offset",
        spec(
            bootstrap={
                "recovery": {
                    "source": {"pulseBase": "old"},
                    "targetTime": "2026-12-01T09:30:00-00:00",
                }
            }
        ),
        "spec.bootstrap.recovery.targetTime",
        "unknown offset",
    ),
    Case(
        "recovery-target-offset-beyond-postgres",
        spec(
            bootstrap={
                "recovery": {
                    "source": {"pulseBase": "old"},
                    "targetTime": "2026-12-01T09:30:00+23:59",
                }
            }
        ),
        "spec.bootstrap.recovery.targetTime",
        "within 15:59",
    ),
    Case(
        "recovery-target-year-zero",
        spec(
            bootstrap={
                "recovery": {"source": {"pulseBase": "old"}, "targetTime": "0000-01-01T00:00:00Z"}
            }
        ),
        "spec.bootstrap.recovery.targetTime",
        "a year from 1970",
    ),
    Case(
        "recovery-target-date-only",
        spec(bootstrap={"recovery": {"source": {"pulseBase": "old"}, "targetTime": "2026-12-01"}}),
        "spec.bootstrap.recovery.targetTime",
        "explicit offset",
    ),
    Case(
        "recovery-source-missing",
        spec(bootstrap={"recovery": {"targetTime": "2026-12-01T09:30:00Z"}}),
        "spec.bootstrap.recovery.source",
        "Required value",
    ),
    Case(
        "schedule-every-five-minutes",
        spec(backup={"schedules": {"incremental": "*/5 * * * *"}}),
        "spec.backup.schedules.incremental",
        "at least 15 minutes between runs",
    ),
    Case(
        "drill-every-minute",
        spec(backup={"drill": {"schedule": "* 3 * * *"}}),
        "spec.backup.drill.schedule",
        "at least 15 minutes between runs",
    ),
    Case(
        "schedule-weekday-seven",
        spec(backup={"schedules": {"full": "0 0 * * 7"}}),
        "spec.backup.schedules.full",
        "five-field cron expression",
    ),
    Case(
        "s3-endpoint-with-path",
        spec(objectStorage=external_s3("https://s3.example.com:8443/minio/path")),
        "spec.objectStorage.external.endpoint",
        "no path, query or fragment",
    ),
    Case(
        "recovery-from-itself",
        spec(bootstrap={"recovery": {"source": {"pulseBase": "bad"}}}),
        "spec.bootstrap.recovery.source.pulseBase",
        "cannot be restored from its own backups",
    ),
    Case(
        "drill-marker-table-unqualified",
        spec(backup={"drill": {"markerTable": "orders"}}),
        "spec.backup.drill.markerTable",
        "should match",
    ),
    Case(
        "maintenance-start-invalid",
        spec(maintenance={"windows": [{"days": ["Sat"], "start": "25:00"}]}),
        "spec.maintenance.windows[0].start",
        "should match",
    ),
    Case(
        "maintenance-day-unknown",
        spec(maintenance={"windows": [{"days": ["Someday"], "start": "02:00"}]}),
        "spec.maintenance.windows[0].days[0]",
        "Unsupported value",
    ),
    Case(
        "monitoring-percent-out-of-range",
        spec(monitoring={"thresholds": {"diskUsagePercent": "180"}}),
        "spec.monitoring.thresholds.diskUsagePercent",
        "should match",
    ),
    Case(
        "monitoring-probe-interval-zero",
        spec(monitoring={"probeInterval": "0s"}),
        "spec.monitoring.probeInterval",
        "must be between 5s and 1h",
    ),
    Case(
        "monitoring-latency-threshold-too-long",
        spec(monitoring={"thresholds": {"apiLatencyP95": "2h"}}),
        "spec.monitoring.thresholds.apiLatencyP95",
        "must be between 1ms and 1h",
    ),
    Case(
        "deletion-policy-unknown",
        spec(deletionPolicy="Destroy"),
        "spec.deletionPolicy",
        "Unsupported value",
    ),
    Case(
        "extra-env-reserved-name",
        spec(api={"extraEnv": [{"name": "DATABASE_HOST", "value": "x"}]}),
        "spec.api.extraEnv",
        "set by the operator",
    ),
    Case(
        "extra-env-duplicate-name",
        spec(api={"extraEnv": [{"name": "FOO", "value": "1"}, {"name": "FOO", "value": "2"}]}),
        "spec.api.extraEnv[1]",
        "Duplicate value",
    ),
    Case("name-not-dns-label", spec(), "metadata.name", "DNS-1035 label", name="9shop"),
    Case("name-too-long", spec(), "metadata.name", "DNS-1035 label", name="s" * 41),
]

UPDATE_CASES = [
    Case(
        "storage-shrinks",
        spec(postgres={"storage": {"size": "5Gi"}}),
        "spec.postgres.storage.size",
        "may grow but not shrink",
        before=spec(postgres={"storage": {"size": "50Gi"}}),
        models_reject=False,
    ),
    Case(
        "storage-shrinks-below-default",
        spec(),
        "spec.postgres.storage.size",
        "may grow but not shrink",
        before=spec(postgres={"storage": {"size": "20Gi"}}),
        models_reject=False,
    ),
    Case(
        "postgres-mode-switch",
        spec(
            postgres={
                "mode": "external",
                "external": {
                    "host": "db.example.com",
                    "username": {"name": "s", "key": "u"},
                    "password": {"name": "s", "key": "p"},
                },
            }
        ),
        "spec.postgres.mode",
        "is immutable",
        before=spec(),
        models_reject=False,
    ),
    Case(
        "postgres-major-lowered",
        spec(postgres={"majorVersion": 15}),
        "spec.postgres.majorVersion",
        "is immutable",
        before=spec(),
        models_reject=False,
    ),
    Case(
        "postgres-major-raised",
        spec(postgres={"majorVersion": 17}),
        "spec.postgres.majorVersion",
        "major version upgrades are not supported yet",
        before=spec(),
        models_reject=False,
    ),
    Case(
        "redis-shards-shrink",
        spec(redis={"shards": 3}),
        "spec.redis.shards",
        "may grow but not shrink",
        before=spec(redis={"shards": 5}),
        models_reject=False,
    ),
    Case(
        "redis-replicas-shrink",
        spec(redis={"replicasPerShard": 1}),
        "spec.redis.replicasPerShard",
        "may grow but not shrink",
        before=spec(redis={"replicasPerShard": 2}),
        models_reject=False,
    ),
    Case(
        "storage-class-changed",
        spec(postgres={"storage": {"storageClassName": "fast"}}),
        "spec.postgres.storage.storageClassName",
        "is immutable",
        before=spec(),
        models_reject=False,
    ),
    Case(
        "bucket-renamed",
        spec(objectStorage={"buckets": {"assets": "other-assets"}}),
        "spec.objectStorage.buckets.assets",
        "is immutable",
        before=spec(),
        models_reject=False,
    ),
]


# Accepted by the API server, refused by the models and so by the operator, which
# reports them in status (phase Failed, reason InvalidSpec) and in a Warning event:
# what only the zone database, a cron expansion or the object's own name can tell.
OPERATOR_CASES = [
    Case(
        "schedule-step-too-small",
        spec(backup={"schedules": {"incremental": "5/5 * * * *"}}),
        "spec.backup.schedules.incremental",
        "every 5 minutes",
    ),
    Case(
        "schedule-listed-minutes-too-close",
        spec(backup={"drill": {"schedule": "0,10 3 * * *"}}),
        "spec.backup.drill.schedule",
        "every 10 minutes",
    ),
    Case(
        "schedule-range-backwards",
        spec(backup={"schedules": {"incremental": "30-10 * * * *"}}),
        "spec.backup.schedules.incremental",
        "runs backwards",
    ),
    Case(
        "schedule-never-runs",
        spec(backup={"schedules": {"full": "0 0 31 2 *"}}),
        "spec.backup.schedules.full",
        "never runs",
    ),
    Case(
        "time-zone-unknown",
        spec(backup={"timeZone": "Mars/Olympus_Mons"}),
        "spec.backup.timeZone",
        "not a time zone the IANA database knows",
    ),
    Case(
        "time-zone-of-the-host",
        spec(maintenance={"timeZone": "localtime"}),
        "spec.maintenance.timeZone",
        "not a time zone the IANA database knows",
    ),
    Case(
        "time-zone-posix-copy",
        spec(backup={"timeZone": "posix/Europe/Berlin"}),
        "spec.backup.timeZone",
        "not a time zone the IANA database knows",
    ),
    Case(
        "recovery-target-not-a-date",
        spec(
            bootstrap={
                "recovery": {"source": {"pulseBase": "old"}, "targetTime": "2026-02-30T09:30:00Z"}
            }
        ),
        "spec.bootstrap.recovery.targetTime",
        "names a day that does not exist",
    ),
]
