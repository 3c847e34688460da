"""The PulseBase custom resource as pydantic models: the single source of truth.

The CRD in `crds/` is generated from these classes (see `api.crd`). Each field carries
its description, its bounds and, where the rule spans fields or versions of the object,
a CEL rule that the API server enforces. Defaults live here and are applied in memory:
the CRD has no schema defaults, so `spec` stays exactly what the user wrote and GitOps
tools see no drift. Model validators repeat the cross-field CEL rules so that
`pulsebase-operator render` rejects the same manifests offline; the bad-input tests run
every rejected manifest through both.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel

from pulsebase_operator.api.quantity import (
    DURATION_PATTERN,
    QUANTITY_PATTERN,
    parse_duration,
    parse_quantity,
)

GROUP = "pulsebase.io"
VERSION = "v1alpha1"
KIND = "PulseBase"
PLURAL = "pulsebases"
SINGULAR = "pulsebase"
SHORT_NAMES = ["pb"]
CATEGORIES = ["pulsebase", "all"]
API_VERSION = f"{GROUP}/{VERSION}"

# Semantic Versioning 2.0.0, without a leading "v".
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-((0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(\+([0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*))?$"
)
# Five cron fields, as CronJob takes them; no macros, no seconds field.


def _cron_field(number: str) -> str:
    item = rf"(\*|{number}(-{number})?)(/[1-9][0-9]?)?"
    return rf"{item}(,{item})*"


# Minute, hour, day of month, month, day of week: numbers only, each within its range.
CRON_FIELDS = (
    _cron_field(r"[0-5]?[0-9]"),
    _cron_field(r"([01]?[0-9]|2[0-3])"),
    _cron_field(r"(0?[1-9]|[12][0-9]|3[01])"),
    _cron_field(r"(0?[1-9]|1[0-2])"),
    _cron_field(r"[0-7]"),
)
CRON_PATTERN = "^" + " ".join(CRON_FIELDS) + "$"
# A PulseBase name becomes part of every child's name and of Service names, which must
# be DNS-1035 labels; 40 characters leave room for the longest suffix within 52.
NAME_MAX_LENGTH = 40
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
IMAGE_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._:/@-]*$"
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # noqa: S105 (a pattern)
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 (a pattern)
HOST_PATTERN = r"^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?$|^\[[0-9a-fA-F:]+\]$"
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
PERCENT_PATTERN = r"^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)$"
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIME_ZONE_PATTERN = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"

# PostgreSQL settings the operator owns: a user value would break replication,
# archiving or the connection from the API.
RESERVED_POSTGRES_PARAMETERS = (
    "archive_command",
    "archive_mode",
    "archive_timeout",
    "hot_standby",
    "listen_addresses",
    "port",
    "primary_conninfo",
    "restore_command",
    "wal_level",
    "max_wal_senders",
    "max_replication_slots",
    "data_directory",
    "hba_file",
    "ssl",
)


def cel(
    rule: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; `field_path` points the error at a child."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def _cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


def _duration_between(low: str, high: str) -> dict[str, str]:
    return cel(
        f"!self.matches(r'{DURATION_PATTERN}') || "
        f"(duration(self) >= duration('{low}') && duration(self) <= duration('{high}'))",
        f"must be between {low} and {high}",
    )


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


# Formats whose regular expression would make an unreadable error. The CRD checks them
# with a CEL rule and a plain message instead of a `pattern` (api.crd turns the marker
# into the rule); the models raise the same message.
FORMAT_KEY = "x-pulsebase-format"
FORMAT_MESSAGES = {
    "quantity": "must be a quantity such as 512Mi, 10Gi or 250m",
    "duration": "must be a duration such as 30s, 15m or 1h30m",
    "cron": "must be a five-field cron expression: minute hour day-of-month month "
    "day-of-week, numbers within range, single spaces",
    "semver": "must be a semantic version such as 2.4.1, without a leading v",
}
FORMAT_CEL = {
    "quantity": "isQuantity(self) && !self.startsWith('-') && !self.startsWith('+')",
    "duration": f"self.matches(r'{DURATION_PATTERN}')",
    "cron": f"self.matches(r'{CRON_PATTERN}')",
    "semver": f"self.matches(r'{SEMVER_PATTERN}')",
}
_FORMAT_CHECKS = {
    "quantity": QUANTITY_PATTERN,
    "duration": DURATION_PATTERN,
    "cron": CRON_PATTERN,
    "semver": SEMVER_PATTERN,
}


def _checked(kind: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.match(_FORMAT_CHECKS[kind], value):
            raise ValueError(FORMAT_MESSAGES[kind])
        return value

    return AfterValidator(check)


Quantity = Annotated[
    str, Field(max_length=32, json_schema_extra={FORMAT_KEY: "quantity"}), _checked("quantity")
]
Duration = Annotated[
    str, Field(max_length=32, json_schema_extra={FORMAT_KEY: "duration"}), _checked("duration")
]
Cron = Annotated[
    str, Field(max_length=100, json_schema_extra={FORMAT_KEY: "cron"}), _checked("cron")
]
Version = Annotated[
    str, Field(max_length=64, json_schema_extra={FORMAT_KEY: "semver"}), _checked("semver")
]
Image = Annotated[str, StringConstraints(pattern=IMAGE_PATTERN, min_length=1, max_length=255)]
SecretName = Annotated[
    str, StringConstraints(pattern=SECRET_NAME_PATTERN, min_length=1, max_length=253)
]
SecretKey = Annotated[str, StringConstraints(pattern=SECRET_KEY_PATTERN, max_length=253)]
Percent = Annotated[str, StringConstraints(pattern=PERCENT_PATTERN, max_length=16)]
TimeZone = Annotated[str, StringConstraints(pattern=TIME_ZONE_PATTERN, max_length=64)]


class Model(BaseModel):
    """Base for every part of the resource: camelCase on the wire, unknown fields kept
    out of the way (an older operator must read a newer object without failing)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


# --- shared parts -----------------------------------------------------------------


class Mode(StrEnum):
    MANAGED = "managed"
    EXTERNAL = "external"


class ResourceList(Model):
    cpu: Quantity | None = Field(None, description="CPU, in cores or millicores (500m).")
    memory: Quantity | None = Field(None, description="Memory in bytes (512Mi, 4Gi).")


def _within(requests: ResourceList, limits: ResourceList, name: str) -> str | None:
    low, high = getattr(requests, name), getattr(limits, name)
    if low is not None and high is not None and parse_quantity(low) > parse_quantity(high):
        return f"requests.{name} ({low}) must not exceed limits.{name} ({high})"
    return None


class Resources(Model):
    """Compute resources of one container, as in a Pod spec."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            *(
                cel(
                    f"!has(self.requests) || !has(self.limits) || "
                    f"!has(self.requests.{r}) || !has(self.limits.{r}) || "
                    f"quantity(self.requests.{r}).compareTo(quantity(self.limits.{r})) <= 0",
                    f"requests.{r} must not exceed limits.{r}",
                    field_path=f".requests.{r}",
                )
                for r in ("cpu", "memory")
            )
        )
    )
    requests: ResourceList = Field(default_factory=ResourceList, description="Guaranteed.")
    limits: ResourceList = Field(default_factory=ResourceList, description="Upper bound.")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        for name in ("cpu", "memory"):
            if problem := _within(self.requests, self.limits, name):
                raise ValueError(problem)
        return self


def resources(cpu: str, memory: str, memory_limit: str | None = None) -> Resources:
    return Resources(
        requests=ResourceList(cpu=cpu, memory=memory),
        limits=ResourceList(memory=memory_limit or memory),
    )


class Storage(Model):
    """A persistent volume per instance."""

    size: Quantity = Field(
        "10Gi",
        description="Volume size per instance. May grow (if the storage class allows "
        "expansion) but never shrink.",
        json_schema_extra=validations(
            cel(
                "!isQuantity(self) || quantity(self).isGreaterThan(quantity('0'))",
                "must be larger than zero",
            ),
        ),
    )
    storage_class_name: str | None = Field(
        None,
        max_length=253,
        description="StorageClass of the volumes; the cluster default when unset. Immutable.",
    )

    @model_validator(mode="after")
    def _positive(self) -> Storage:
        if parse_quantity(self.size) <= 0:
            raise ValueError("size must be larger than zero")
        return self


class SecretKeyRef(Model):
    """A key in a Secret in the PulseBase's namespace."""

    name: SecretName = Field(description="Name of the Secret.")
    key: SecretKey = Field(description="Key within the Secret.")


# --- the API -----------------------------------------------------------------------


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class EnvVar(Model):
    """A plain environment variable (no references to Secrets or fields)."""

    name: str = Field(
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=253, description="Variable name."
    )
    value: str = Field("", max_length=4096, description="Variable value.")


class ApiSpec(Model):
    """The PulseBase API servers: a stateless Deployment behind a Service."""

    replicas: int = Field(2, ge=0, le=100, description="Number of API server pods.")
    image: Image | None = Field(
        None, description="Image override; by default the release image of spec.version."
    )
    resources: Resources = Field(
        default_factory=lambda: resources("250m", "256Mi", "512Mi"),
        description="Compute resources of each API pod.",
    )
    service_type: ServiceType = Field(
        ServiceType.CLUSTER_IP, description="How the API Service is exposed."
    )
    extra_env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        description="Extra plain environment variables for the API container. Names the "
        "operator sets itself (PULSEBASE_*, DATABASE_*, REDIS_*, S3_*) are rejected.",
        json_schema_extra=validations(
            cel(
                "self.all(e, !e.name.startsWith('PULSEBASE_') && "
                "!e.name.startsWith('DATABASE_') && !e.name.startsWith('REDIS_') && "
                "!e.name.startsWith('S3_'))",
                "names starting with PULSEBASE_, DATABASE_, REDIS_ or S3_ are set by the operator",
            )
        ),
    )

    @model_validator(mode="after")
    def _no_reserved_env(self) -> ApiSpec:
        for env in self.extra_env:
            if env.name.startswith(("PULSEBASE_", "DATABASE_", "REDIS_", "S3_")):
                raise ValueError(
                    f"extraEnv: {env.name} is set by the operator (names starting with "
                    "PULSEBASE_, DATABASE_, REDIS_ or S3_ are reserved)"
                )
        return self


# --- PostgreSQL ------------------------------------------------------------------


class ExternalPostgres(Model):
    """A PostgreSQL server the operator does not run (RDS, Cloud SQL, your own)."""

    host: str = Field(pattern=HOST_PATTERN, max_length=253, description="Host name or IP.")
    port: int = Field(5432, ge=1, le=65535, description="TCP port.")
    database: str = Field(
        "pulsebase",
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_$]*$",
        max_length=63,
        description="Database the API uses.",
    )
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        "require", description="libpq sslmode for connections from the API."
    )
    username: SecretKeyRef = Field(description="Secret key holding the user name.")
    password: SecretKeyRef = Field(description="Secret key holding the password.")


# mode defaults to managed, so an absent mode must count as managed in the rules.
_EXTERNAL = "(has(self.mode) && self.mode == 'external')"
MODE_RULES = validations(
    cel(
        f"!{_EXTERNAL} || has(self.external)",
        "external is required when mode is external",
        field_path=".external",
        reason="FieldValueRequired",
    ),
    cel(
        f"{_EXTERNAL} || !has(self.external)",
        "external may only be set when mode is external",
        field_path=".external",
        reason="FieldValueForbidden",
    ),
)


class PostgresSpec(Model):
    """PostgreSQL with pgvector: managed (Patroni in the cluster) or external."""

    model_config = ConfigDict(json_schema_extra=MODE_RULES)
    mode: Mode = Field(
        Mode.MANAGED,
        description="managed: the operator runs a Patroni cluster; external: the API "
        "connects to the server described in external.",
    )
    instances: int = Field(
        3, ge=1, le=9, description="PostgreSQL members (one primary, the rest replicas)."
    )
    major_version: int = Field(
        16,
        ge=15,
        le=17,
        description="PostgreSQL major version, chosen at creation. Immutable for now: "
        "in-place major upgrades are not supported yet.",
    )
    image: Image | None = Field(
        None, description="Image with Patroni, PostgreSQL, pgvector and pgBackRest."
    )
    storage: Storage = Field(
        default_factory=lambda: Storage(size="10Gi"), description="Data volume per member."
    )
    resources: Resources = Field(
        default_factory=lambda: resources("500m", "1Gi"),
        description="Compute resources of each PostgreSQL pod.",
    )
    parameters: dict[str, Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=dict,
        max_length=128,
        description="postgresql.conf settings passed to Patroni. Settings the operator "
        "owns (replication, archiving, listening) are rejected.",
        json_schema_extra=validations(
            cel(
                "self.all(k, !(k in " + _cel_list(RESERVED_POSTGRES_PARAMETERS) + "))",
                "archiving, replication and listening settings are managed by the operator",
            )
        ),
    )
    external: ExternalPostgres | None = Field(None, description="Used when mode is external.")

    @model_validator(mode="after")
    def _mode_and_parameters(self) -> PostgresSpec:
        _check_mode(self.mode, self.external)
        reserved = sorted(set(self.parameters) & set(RESERVED_POSTGRES_PARAMETERS))
        if reserved:
            raise ValueError(f"parameters: {', '.join(reserved)} are managed by the operator")
        return self


def _check_mode(mode: Mode, external: object | None) -> None:
    if mode is Mode.EXTERNAL and external is None:
        raise ValueError("external is required when mode is external")
    if mode is Mode.MANAGED and external is not None:
        raise ValueError("external may only be set when mode is external")


# --- Redis ----------------------------------------------------------------------


class EvictionPolicy(StrEnum):
    ALLKEYS_LRU = "allkeys-lru"
    ALLKEYS_LFU = "allkeys-lfu"
    VOLATILE_LRU = "volatile-lru"
    VOLATILE_LFU = "volatile-lfu"
    NOEVICTION = "noeviction"


class ExternalRedis(Model):
    """A Redis-protocol cluster the operator does not run (ElastiCache, your own)."""

    endpoints: list[Annotated[str, StringConstraints(pattern=r"^[^:\s]+:[0-9]{1,5}$")]] = Field(
        min_length=1, max_length=16, description="Seed nodes as host:port."
    )
    tls: bool = Field(True, description="Connect with TLS.")
    password: SecretKeyRef | None = Field(None, description="Secret key with the password.")


# Room for data beside a node's own overhead (replication backlog, client buffers). It
# also keeps out values below one byte, which would render as `maxmemory 0`: no limit.
REDIS_MIN_MEMORY = "16Mi"


class RedisSpec(Model):
    """The cache: a Redis-protocol cluster (Valkey by default) or an external one."""

    model_config = ConfigDict(json_schema_extra=MODE_RULES)
    mode: Mode = Field(Mode.MANAGED, description="managed or external.")
    shards: int = Field(
        3,
        ge=3,
        le=32,
        description="Primary nodes holding hash slots (cluster mode needs at least 3). "
        "Shards can be added, not removed: removing one would drop its slots.",
    )
    replicas_per_shard: int = Field(1, ge=0, le=5, description="Replicas of each primary.")
    image: Image | None = Field(None, description="Valkey or Redis image override.")
    max_memory: Quantity = Field(
        "256Mi",
        description="maxmemory of each node; the container limit adds headroom.",
        json_schema_extra=validations(
            cel(
                f"!isQuantity(self) || "
                f"quantity(self).compareTo(quantity('{REDIS_MIN_MEMORY}')) >= 0",
                f"must be at least {REDIS_MIN_MEMORY}",
            ),
        ),
    )
    eviction_policy: EvictionPolicy = Field(
        EvictionPolicy.ALLKEYS_LRU, description="maxmemory-policy of each node."
    )
    storage: Storage = Field(
        default_factory=lambda: Storage(size="1Gi"),
        description="A small volume per node for nodes.conf, so a restarted node keeps its "
        "identity and slots; cached data itself is not persisted.",
    )
    resources: Resources = Field(
        default_factory=lambda: resources("100m", "384Mi"),
        description="Compute resources of each Redis pod.",
    )
    external: ExternalRedis | None = Field(None, description="Used when mode is external.")

    @model_validator(mode="after")
    def _mode_and_memory(self) -> RedisSpec:
        _check_mode(self.mode, self.external)
        if parse_quantity(self.max_memory) < parse_quantity(REDIS_MIN_MEMORY):
            raise ValueError(f"maxMemory must be at least {REDIS_MIN_MEMORY}")
        return self


# --- object storage --------------------------------------------------------------


class Buckets(Model):
    assets: str | None = Field(
        None, pattern=BUCKET_PATTERN, description="Static assets; default NAME-assets."
    )
    backups: str | None = Field(
        None, pattern=BUCKET_PATTERN, description="Backups; default NAME-backups."
    )


class ManagedObjectStorage(Model):
    """The in-cluster S3 server (SeaweedFS, Apache-2.0)."""

    image: Image | None = Field(None, description="SeaweedFS image override.")
    storage: Storage = Field(
        default_factory=lambda: Storage(size="20Gi"), description="Data volume."
    )
    resources: Resources = Field(
        default_factory=lambda: resources("100m", "256Mi", "1Gi"),
        description="Compute resources of the S3 server pod.",
    )


class ExternalObjectStorage(Model):
    """An S3-compatible service the operator does not run (AWS S3, GCS, your own)."""

    endpoint: str = Field(
        pattern=r"^https?://[^\s/]+(/.*)?$",
        max_length=2048,
        description="Endpoint URL, for example https://s3.eu-west-1.amazonaws.com.",
        json_schema_extra=validations(cel("isURL(self)", "must be a valid URL")),
    )
    region: str = Field("us-east-1", max_length=64, description="Signing region.")
    force_path_style: bool = Field(False, description="Path-style bucket addressing.")
    access_key_id: SecretKeyRef = Field(description="Secret key with the access key id.")
    secret_access_key: SecretKeyRef = Field(description="Secret key with the secret key.")


class ObjectStorageSpec(Model):
    """S3-compatible object storage for assets and backups: managed or external."""

    model_config = ConfigDict(json_schema_extra=MODE_RULES)
    mode: Mode = Field(Mode.MANAGED, description="managed or external.")
    buckets: Buckets = Field(default_factory=Buckets, description="Bucket names.")
    managed: ManagedObjectStorage = Field(
        default_factory=ManagedObjectStorage, description="Used when mode is managed."
    )
    external: ExternalObjectStorage | None = Field(None, description="Used when mode is external.")

    @model_validator(mode="after")
    def _mode(self) -> ObjectStorageSpec:
        _check_mode(self.mode, self.external)
        return self


# --- CDN -------------------------------------------------------------------------


class CdnProvider(StrEnum):
    EDGE = "edge"
    NONE = "none"


class EdgeCdn(Model):
    """An nginx caching tier in front of the API and the assets bucket."""

    replicas: int = Field(2, ge=1, le=50, description="Number of edge cache pods.")
    image: Image | None = Field(None, description="nginx image override (unprivileged).")
    cache_size: Quantity = Field("1Gi", description="Disk cache per pod (an emptyDir).")
    asset_max_age: Duration = Field("1h", description="How long cached assets stay fresh.")
    resources: Resources = Field(
        default_factory=lambda: resources("100m", "128Mi", "256Mi"),
        description="Compute resources of each edge pod.",
    )


class CdnSpec(Model):
    """The CDN in front of the API and the assets bucket."""

    provider: CdnProvider = Field(
        CdnProvider.EDGE, description="edge: an nginx cache in the cluster; none: no CDN."
    )
    edge: EdgeCdn = Field(default_factory=EdgeCdn, description="Used when provider is edge.")


# --- backups --------------------------------------------------------------------


class BackupSchedules(Model):
    """When each kind of backup runs, as five-field cron expressions."""

    full: Cron = Field("0 1 * * *", description="Full physical backup (cron, 5 fields).")
    incremental: Cron = Field("30 * * * *", description="Incremental physical backup.")
    vector_tables: Cron = Field(
        "0 3 * * *", description="Logical dump of every table with a vector column."
    )


class Retention(Model):
    """Calendar retention of full backups: the newest good one per day and per week."""

    daily: int = Field(30, ge=1, le=366, description="Days with one kept full backup each.")
    weekly: int = Field(52, ge=0, le=520, description="ISO weeks with one kept full backup.")


class Drill(Model):
    """Scheduled restore drills that prove the backups restore within the objectives."""

    enabled: bool = Field(True, description="Run scheduled restore drills.")
    schedule: Cron = Field("0 5 * * 0", description="When drills run (cron, 5 fields).")


class BackupSpec(Model):
    """Backups, retention and recovery objectives.

    Accepted and validated; the operator does not act on it yet.
    """

    enabled: bool = Field(True, description="Take scheduled backups.")
    schedules: BackupSchedules = Field(default_factory=BackupSchedules)
    time_zone: TimeZone = Field("UTC", description="IANA time zone of the schedules.")
    retention: Retention = Field(default_factory=Retention)
    rpo: Duration = Field(
        "15m",
        description="Recovery point objective: the most data, in time, a restore may lose.",
        json_schema_extra=validations(_duration_between("1m", "24h")),
    )
    rto: Duration = Field(
        "1h",
        description="Recovery time objective: the longest a restore may take.",
        json_schema_extra=validations(_duration_between("1m", "168h")),
    )
    drill: Drill = Field(default_factory=Drill)

    @model_validator(mode="after")
    def _bounds(self) -> BackupSpec:
        if not 60 <= parse_duration(self.rpo) <= 24 * 3600:
            raise ValueError("rpo must be between 1m and 24h")
        if not 60 <= parse_duration(self.rto) <= 168 * 3600:
            raise ValueError("rto must be between 1m and 168h")
        return self


class RecoverySource(Model):
    """Where a new PulseBase restores from: another PulseBase's backup repository."""

    pulse_base: str = Field(
        pattern=NAME_PATTERN,
        max_length=NAME_MAX_LENGTH,
        description="Name of the PulseBase (same namespace) whose backups to restore.",
    )


class Recovery(Model):
    source: RecoverySource
    target_time: str | None = Field(
        None,
        max_length=64,
        description="Restore to this moment (RFC 3339 with an explicit offset); the "
        "latest point when unset.",
        json_schema_extra={"format": "date-time"},
    )


class Bootstrap(Model):
    """How the database is created; immutable after creation.

    Accepted and validated; the operator does not act on it yet.
    """

    recovery: Recovery | None = Field(None, description="Create from a backup.")


# --- maintenance, monitoring, upgrades ------------------------------------------


class Weekday(StrEnum):
    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"


class MaintenanceWindow(Model):
    days: list[Weekday] = Field(min_length=1, max_length=7, description="Days it opens.")
    start: str = Field(pattern=CLOCK_PATTERN, description="Opening time, HH:MM.")
    duration: Duration = Field(
        "2h",
        description="How long it stays open (at least 30m, at most 24h).",
        json_schema_extra=validations(_duration_between("30m", "24h")),
    )


class Job(Model):
    """A scheduled maintenance job."""

    enabled: bool = Field(True, description="Run the job on its schedule.")
    schedule: Cron = Field(description="When the job runs (cron, 5 fields).")


class MaintenanceSpec(Model):
    """Maintenance windows and routine database jobs.

    Accepted and validated; the operator does not act on it yet.
    """

    time_zone: TimeZone = Field("UTC", description="IANA time zone of windows and jobs.")
    windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        max_length=14,
        description="When disruptive work (upgrades, restarts) may run; any time if empty.",
    )
    vacuum: Job = Field(default_factory=lambda: Job(schedule="0 2 * * *"))
    reindex: Job = Field(default_factory=lambda: Job(schedule="0 4 * * 6"))


class Thresholds(Model):
    """Alerting thresholds; the defaults are the release plan's."""

    api_latency_p95: Duration = Field("500ms", description="API p95 latency alert.")
    db_query_p95: Duration = Field("200ms", description="Database query p95 alert.")
    error_rate_percent: Percent = Field("1", description="API 5xx ratio alert, percent.")
    cache_hit_ratio_percent: Percent = Field("70", description="Alert below this hit ratio.")
    disk_usage_percent: Percent = Field("80", description="Volume usage alert, percent.")
    availability_percent: Percent = Field("99.9", description="Availability objective.")


class MonitoringSpec(Model):
    """Live health probes and alert rules.

    Accepted and validated; the operator does not act on it yet.
    """

    probe_interval: Duration = Field(
        "30s",
        description="How often live health probes run.",
        json_schema_extra=validations(_duration_between("5s", "1h")),
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    prometheus_rule: bool = Field(True, description="Render a PrometheusRule with alerts.")


class UpgradeSpec(Model):
    """How version changes roll out.

    Accepted and validated; the operator does not act on it yet.
    """

    backup_before_upgrade: bool = Field(True, description="Full backup before an upgrade.")
    allow_downgrade: bool = Field(
        False, description="Permit spec.version to go down; otherwise a downgrade is refused."
    )
    respect_maintenance_windows: bool = Field(
        True, description="Hold version upgrades until a maintenance window opens."
    )


class DeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


def _defaulted(root: str, path: str, default: str) -> str:
    """A CEL expression for `root.path`, or `default` where any step is absent.

    Transition rules on a field only run when the field exists in both the old and the
    new object, so a value that was defaulted before (or after) would slip past them;
    reading through the defaults at the spec closes that gap.
    """
    steps = path.split(".")
    checks = " && ".join(f"has({root}.{'.'.join(steps[: i + 1])})" for i in range(len(steps)))
    return f"({checks} ? {root}.{path} : {default})"


def _transition(path: str, default: str, compare: str, message: str) -> dict[str, str]:
    new, old = _defaulted("self", path, default), _defaulted("oldSelf", path, default)
    return cel(
        compare.format(new=new, old=old),
        message,
        field_path=f".{path}",
        reason="FieldValueForbidden",
    )


def _grows(path: str, default: str) -> dict[str, str]:
    return _transition(
        path,
        default,
        "!isQuantity({new}) || !isQuantity({old}) || "
        "quantity({new}).compareTo(quantity({old})) >= 0",
        "may grow but not shrink",
    )


def _fixed(path: str, default: str) -> dict[str, str]:
    return _transition(path, default, "{new} == {old}", "is immutable")


SPEC_TRANSITION_RULES = (
    _fixed("postgres.mode", "'managed'"),
    _fixed("objectStorage.mode", "'managed'"),
    _grows("postgres.storage.size", "'10Gi'"),
    _fixed("postgres.storage.storageClassName", "''"),
    _grows("objectStorage.managed.storage.size", "'20Gi'"),
    _fixed("objectStorage.managed.storage.storageClassName", "''"),
    _grows("redis.storage.size", "'1Gi'"),
    _fixed("redis.storage.storageClassName", "''"),
    # Changing the image's major version under an existing data directory would stop
    # PostgreSQL from starting; the field stays fixed until major upgrades are built.
    _transition(
        "postgres.majorVersion",
        "16",
        "{new} == {old}",
        "is immutable: major version upgrades are not supported yet",
    ),
    _transition("redis.shards", "3", "{new} >= {old}", "may grow but not shrink"),
    _fixed("objectStorage.buckets.assets", "''"),
    _fixed("objectStorage.buckets.backups", "''"),
    _transition(
        "bootstrap",
        "''",
        "has(self.bootstrap) == has(oldSelf.bootstrap) && "
        "(!has(self.bootstrap) || self.bootstrap == oldSelf.bootstrap)",
        "is immutable: a PulseBase is bootstrapped once, when it is created",
    ),
)


class PulseBaseSpec(Model):
    """The whole stack: one object, every dependency."""

    model_config = ConfigDict(json_schema_extra=validations(*SPEC_TRANSITION_RULES))

    version: Version = Field(
        description="PulseBase release to run, a semantic version such as 2.4.1.",
    )
    api: ApiSpec = Field(default_factory=ApiSpec)
    postgres: PostgresSpec = Field(default_factory=PostgresSpec)
    redis: RedisSpec = Field(default_factory=RedisSpec)
    object_storage: ObjectStorageSpec = Field(default_factory=ObjectStorageSpec)
    cdn: CdnSpec = Field(default_factory=CdnSpec)
    backup: BackupSpec = Field(default_factory=BackupSpec)
    bootstrap: Bootstrap = Field(default_factory=Bootstrap)
    maintenance: MaintenanceSpec = Field(default_factory=MaintenanceSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    upgrade: UpgradeSpec = Field(default_factory=UpgradeSpec)
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN,
        description="Retain keeps volume claims, generated credentials and Patroni's "
        "cluster state when the PulseBase is deleted; Delete removes them with it.",
    )


# --- status ----------------------------------------------------------------------


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class Condition(Model):
    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(max_length=1024)
    message: str = Field("", max_length=32768)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = Field(None, ge=0)


class ComponentStatus(Model):
    mode: str = Field(description="managed, external or disabled.")
    ready: bool
    replicas: int | None = None
    ready_replicas: int | None = None
    endpoint: str | None = Field(None, description="Where clients reach it.")
    message: str = ""


class BucketStatus(Model):
    assets: str
    backups: str


class BackupStatus(Model):
    last_full: str | None = Field(None, json_schema_extra={"format": "date-time"})
    last_incremental: str | None = Field(None, json_schema_extra={"format": "date-time"})
    last_vector_tables: str | None = Field(None, json_schema_extra={"format": "date-time"})
    last_configuration: str | None = Field(None, json_schema_extra={"format": "date-time"})
    last_successful: str | None = Field(
        None,
        description="Newest successful backup of any kind.",
        json_schema_extra={"format": "date-time"},
    )
    recovery_point_exposure_seconds: int | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="Backups per tier.")
    last_drill: dict[str, Any] | None = Field(
        None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )


class PulseBaseStatus(Model):
    observed_generation: int | None = None
    phase: Phase = Phase.PENDING
    message: str = ""
    version: str | None = Field(None, description="Release the API pods currently run.")
    ready_components: str | None = Field(None, description="Ready components, as 4/5.")
    conditions: list[Condition] = Field(default_factory=list)
    components: dict[str, ComponentStatus] = Field(default_factory=dict)
    buckets: BucketStatus | None = None
    backup: BackupStatus | None = None
    health: dict[str, Any] | None = Field(
        None,
        description="Measured values from live probes, with the time measured.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Metadata(Model):
    name: str
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PulseBase(Model):
    api_version: str = API_VERSION
    kind: str = KIND
    metadata: Metadata
    spec: PulseBaseSpec

    @model_validator(mode="after")
    def _name(self) -> PulseBase:
        name = self.metadata.name
        if len(name) > NAME_MAX_LENGTH or not re.match(NAME_PATTERN, name):
            raise ValueError(
                f"metadata.name: {name!r} must be a DNS-1035 label of at most "
                f"{NAME_MAX_LENGTH} characters (lower-case letters, digits, '-', "
                "starting with a letter)"
            )
        return self

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> PulseBase:
        return cls.model_validate(
            {
                "apiVersion": body.get("apiVersion", API_VERSION),
                "kind": body.get("kind", KIND),
                "metadata": dict(body.get("metadata") or {}),
                "spec": dict(body.get("spec") or {}),
            }
        )
