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

import datetime
import functools
import importlib.resources
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from pulsebase_operator.api import schedules
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
    # 0 to 6, Sunday 0: the CronJob controller refuses 7.
    _cron_field(r"[0-6]"),
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
# S3 refuses bucket names shaped like an IPv4 address and reserves these affixes.
BUCKET_IP_PATTERN = r"^[0-9]+(\.[0-9]+){3}$"
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3")
# A host name, an IPv4 address or a bracketed IPv6 address, then the port. Nothing
# else: the endpoints are shown in status and in a plain environment variable.
REDIS_ENDPOINT_PATTERN = r"^([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?|\[[0-9a-fA-F:]+\]):[0-9]{1,5}$"
PERCENT_PATTERN = r"^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)$"
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIME_ZONE_PATTERN = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
# schema.table with unquoted PostgreSQL identifiers, as the drill's query writes them.
MARKER_TABLE_PATTERN = r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$"
# RFC 3339 with an explicit offset. "-00:00" means "offset unknown" in RFC 3339, and a
# time without an offset would be read in some zone or other: both are ambiguous.
# Years from 1970 (no backup is older), and offsets within PostgreSQL's +-15:59.
RFC3339_PATTERN = (
    r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"(Z|[+](0[0-9]|1[0-5]):[0-5][0-9]|-((0[1-9]|1[0-5]):[0-5][0-9]|00:([0-5][1-9]|[1-5]0)))$"
)
TARGET_TIME_MESSAGE = (
    "must be an RFC 3339 time with an explicit offset, such as 2026-12-01T09:30:00Z or "
    "2026-12-01T10:30:00+01:00: a year from 1970, an offset within 15:59 (PostgreSQL's "
    "limit), and not -00:00, which means an unknown offset"
)
SELF_RESTORE_MESSAGE = (
    "a PulseBase cannot be restored from its own backups; name the PulseBase whose "
    "backups to restore"
)
# Backups and drills more often than this would overlap on a database of any size, and
# WAL archiving already covers the time between them.
MIN_SCHEDULE_MINUTES = 15

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
# A setting name as postgresql.conf spells it (custom settings have a dot). Patroni
# writes the names unquoted, so anything else could set a reserved setting.
POSTGRES_PARAMETER_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_.]*$"
POSTGRES_PARAMETER_MESSAGE = (
    "must be PostgreSQL setting names: letters, digits, '_' and '.', not starting with a digit"
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


# A duration whose parts are short enough that CEL's duration() cannot overflow within
# 32 characters. A longer part is at least 100000h, far above every upper bound here,
# so a value outside this shape is simply out of range (and not an evaluation error).
_DURATION_SAFE = (
    r"^(0*([0-9]{1,18}(\.[0-9]+)?ns|[0-9]{1,15}(\.[0-9]+)?us|[0-9]{1,12}(\.[0-9]+)?ms"
    r"|[0-9]{1,9}(\.[0-9]+)?s|[0-9]{1,7}(\.[0-9]+)?m|[0-9]{1,5}(\.[0-9]+)?h))+$"
)


def _duration_between(low: str, high: str) -> dict[str, str]:
    return cel(
        f"!self.matches(r'{DURATION_PATTERN}') || (self.matches(r'{_DURATION_SAFE}') && "
        f"duration(self) >= duration('{low}') && duration(self) <= duration('{high}'))",
        f"must be between {low} and {high}",
    )


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


def list_map(*keys: str) -> dict[str, Any]:
    """Marks a list of objects as a map keyed by `keys`: the API server refuses two items
    with the same keys (naming the second), and server-side apply merges by key."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


# Formats whose regular expression would make an unreadable error. The CRD checks them
# with a CEL rule and a plain message instead of a `pattern` (api.crd turns the marker
# into the rule); the models raise the same message.
FORMAT_KEY = "x-pulsebase-format"
# Binary quantities above 2**63 - 1 are capped to it by the API server, so 8Ei itself
# compares equal to that largest value; "below 8Ei" means below 2**63 - 1.
BYTES_LIMIT = "8Ei"
_BYTES_CAP = Decimal(2**63 - 1)
# CEL has no floor(); a quantity's float is checked for a fraction below 2**53, where a
# double still has one (isInteger() is false for 1.5Gi or 100Ti, whole numbers though).
_WHOLE = "quantity(self).asApproximateFloat()"
_WHOLE_RULE = f"({_WHOLE} >= 9007199254740992.0 || double(int({_WHOLE})) == {_WHOLE})"
FORMAT_MESSAGES = {
    "bytes": f"must be a whole number of bytes below {BYTES_LIMIT}, such as 512Mi or 10Gi",
    "quantity": "must be a CPU quantity such as 250m or 2: zero, or at least 1m and below 1M cores",
    "duration": "must be a duration such as 30s, 15m or 1h30m",
    "cron": "must be a five-field cron expression: minute hour day-of-month month "
    "day-of-week, numbers within range, single spaces",
    "semver": "must be a semantic version such as 2.4.1, without a leading v",
}
_NON_NEGATIVE = "isQuantity(self) && !self.startsWith('-') && !self.startsWith('+')"
FORMAT_CEL = {
    "bytes": f"{_NON_NEGATIVE} && "
    f"quantity(self).compareTo(quantity('{BYTES_LIMIT}')) < 0 && {_WHOLE_RULE}",
    "quantity": f"{_NON_NEGATIVE} && "
    "(quantity(self).compareTo(quantity('0')) == 0 || "
    "quantity(self).compareTo(quantity('1m')) >= 0) && "
    "quantity(self).compareTo(quantity('1M')) < 0",
    "duration": f"self.matches(r'{DURATION_PATTERN}')",
    "cron": f"self.matches(r'{CRON_PATTERN}')",
    "semver": f"self.matches(r'{SEMVER_PATTERN}')",
}


# The checks below use fullmatch: Python's $ also matches before a final line break,
# which CEL's does not, and the models must refuse what the API server refuses.


def _whole_bytes(value: str) -> bool:
    if not re.fullmatch(QUANTITY_PATTERN, value):
        return False
    amount = parse_quantity(value)
    return amount == amount.to_integral_value() and amount < _BYTES_CAP


def _cpu(value: str) -> bool:
    if not re.fullmatch(QUANTITY_PATTERN, value):
        return False
    amount = parse_quantity(value)
    return amount == 0 or Decimal("0.001") <= amount < Decimal(10**6)


def _matches(pattern: str) -> Callable[[str], bool]:
    return lambda value: re.fullmatch(pattern, value) is not None


_FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    "bytes": _whole_bytes,
    "quantity": _cpu,
    "duration": _matches(DURATION_PATTERN),
    "cron": _matches(CRON_PATTERN),
    "semver": _matches(SEMVER_PATTERN),
}


def _checked(kind: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _FORMAT_CHECKS[kind](value):
            raise ValueError(FORMAT_MESSAGES[kind])
        return value

    return AfterValidator(check)


# Byte amounts: volume sizes, memory, caches.
Bytes = Annotated[
    str, Field(max_length=32, json_schema_extra={FORMAT_KEY: "bytes"}), _checked("bytes")
]
# CPU amounts, in cores or millicores.
Quantity = Annotated[
    str, Field(max_length=32, json_schema_extra={FORMAT_KEY: "quantity"}), _checked("quantity")
]
Duration = Annotated[
    str, Field(max_length=32, json_schema_extra={FORMAT_KEY: "duration"}), _checked("duration")
]


@dataclass(frozen=True)
class Between:
    """Bounds a Duration, inclusive: `Annotated[Duration, Between("1m", "24h")]`.

    The CRD gets a CEL rule and the models the same check, with the same message.
    """

    low: str
    high: str

    @property
    def message(self) -> str:
        return f"must be between {self.low} and {self.high}"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        low, high = parse_duration(self.low), parse_duration(self.high)

        def check(value: str) -> str:
            if not low <= parse_duration(value) <= high:
                raise ValueError(self.message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        rules = out.setdefault("x-kubernetes-validations", [])
        rules.append(_duration_between(self.low, self.high))
        return out


def _runs(value: str) -> str:
    if problem := schedules.problem(value):
        raise ValueError(problem)
    return value


Cron = Annotated[
    str,
    Field(max_length=100, json_schema_extra={FORMAT_KEY: "cron"}),
    _checked("cron"),
    AfterValidator(_runs),
]


def _not_too_often(value: str) -> str:
    every = schedules.shortest_interval_minutes(value)
    if every < MIN_SCHEDULE_MINUTES:
        raise ValueError(
            f"runs as often as every {every} minute{'s' if every != 1 else ''}; backup and "
            f"drill schedules need at least {MIN_SCHEDULE_MINUTES} minutes between runs"
        )
    return value


@dataclass(frozen=True)
class Rule:
    """One more CEL rule on a field: `Annotated[str, Rule("self != ''", "must be set")]`.
    The models check the same thing their own way (here: a validator beside it)."""

    rule: str
    message: str

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out.setdefault("x-kubernetes-validations", []).append(cel(self.rule, self.message))
        return out


# What the API server can tell of a schedule's frequency without expanding it: a `*` or
# a step below the minimum in the minute field runs more often than the minimum within
# every hour it runs. Lists and ranges of minutes are left to the models' expansion.
_TOO_OFTEN_MINUTES = r"^([0-9*/-]+,)*(\*|\*/([1-9]|1[0-4]))(,[0-9*/-]+)* "
TOO_OFTEN_MESSAGE = (
    f"must not run more often than every {MIN_SCHEDULE_MINUTES} minutes, so no * and no "
    f"step below {MIN_SCHEDULE_MINUTES} in the minute field: backup and drill schedules "
    f"need at least {MIN_SCHEDULE_MINUTES} minutes between runs"
)

# A backup or drill schedule: a cron expression whose runs are far enough apart.
Schedule = Annotated[
    Cron,
    Rule(f"!self.matches(r'{_TOO_OFTEN_MINUTES}')", TOO_OFTEN_MESSAGE),
    AfterValidator(_not_too_often),
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


@functools.cache
def _iana_zones() -> frozenset[str]:
    # The names the tzdata package lists: the IANA database's, without what a host's
    # zone folder adds (localtime, posixrules, posix/ and right/ copies), which would
    # mean something else on each machine.
    listing = importlib.resources.files("tzdata").joinpath("zones").read_text()
    return frozenset(listing.split()) - {"Factory"}


def known_time_zone(value: str) -> str:
    # The CRD checks the shape; only the zone database knows the names. CronJob would
    # refuse an unknown zone too, but as a failed apply far from the field.
    if value not in _iana_zones():
        raise ValueError(
            f"{value!r} is not a time zone the IANA database knows; use a name such as "
            "UTC or Europe/Berlin"
        )
    return value


TimeZone = Annotated[
    str,
    StringConstraints(pattern=TIME_ZONE_PATTERN, max_length=64),
    AfterValidator(known_time_zone),
]


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
    memory: Bytes | None = Field(None, description="Memory in bytes (512Mi, 4Gi).")


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
                    f"!isQuantity(self.requests.{r}) || !isQuantity(self.limits.{r}) || "
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

    size: Bytes = Field(
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
        description="Extra plain environment variables for the API container, each name "
        "once. Names the operator sets itself (PULSEBASE_*, DATABASE_*, REDIS_*, S3_*) are "
        "rejected.",
        json_schema_extra={
            **validations(
                cel(
                    "self.all(e, !e.name.startsWith('PULSEBASE_') && "
                    "!e.name.startsWith('DATABASE_') && !e.name.startsWith('REDIS_') && "
                    "!e.name.startsWith('S3_'))",
                    "names starting with PULSEBASE_, DATABASE_, REDIS_ or S3_ are set by "
                    "the operator",
                )
            ),
            **list_map("name"),
        },
    )

    @model_validator(mode="after")
    def _no_reserved_env(self) -> ApiSpec:
        seen: set[str] = set()
        for env in self.extra_env:
            if env.name.startswith(("PULSEBASE_", "DATABASE_", "REDIS_", "S3_")):
                raise ValueError(
                    f"extraEnv: {env.name} is set by the operator (names starting with "
                    "PULSEBASE_, DATABASE_, REDIS_ or S3_ are reserved)"
                )
            if env.name in seen:
                raise ValueError(f"extraEnv: duplicate name {env.name}")
            seen.add(env.name)
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

    @property
    def libpq_host(self) -> str:
        """The host as libpq's `host` takes it: an IPv6 address without its brackets."""
        return self.host.removeprefix("[").removesuffix("]")


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
                f"self.all(k, k.matches(r'{POSTGRES_PARAMETER_PATTERN}'))",
                POSTGRES_PARAMETER_MESSAGE,
            ),
            cel(
                "self.all(k, !(k.lowerAscii() in " + _cel_list(RESERVED_POSTGRES_PARAMETERS) + "))",
                "archiving, replication and listening settings are managed by the operator",
            ),
        ),
    )
    external: ExternalPostgres | None = Field(None, description="Used when mode is external.")

    @model_validator(mode="after")
    def _mode_and_parameters(self) -> PostgresSpec:
        _check_mode(self.mode, self.external)
        bad = sorted(
            repr(k) for k in self.parameters if not re.fullmatch(POSTGRES_PARAMETER_PATTERN, k)
        )
        if bad:
            raise ValueError(f"parameters: {', '.join(bad)} {POSTGRES_PARAMETER_MESSAGE}")
        # PostgreSQL setting names are case-insensitive.
        reserved = sorted(k for k in self.parameters if k.lower() in RESERVED_POSTGRES_PARAMETERS)
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


REDIS_ENDPOINT_MESSAGE = (
    "must be host:port with a port between 1 and 65535; the host a name, an IPv4 address "
    "or an IPv6 address in brackets"
)


def _host_and_port(value: str) -> str:
    if (
        not re.fullmatch(REDIS_ENDPOINT_PATTERN, value)
        or not 1 <= int(value.rsplit(":", 1)[1]) <= 65535
    ):
        raise ValueError(REDIS_ENDPOINT_MESSAGE)
    return value


def _each_once(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate endpoint {value}")
        seen.add(value)
    return values


RedisEndpoint = Annotated[
    str,
    Field(
        max_length=260,
        json_schema_extra=validations(
            cel(
                f"self.matches(r'{REDIS_ENDPOINT_PATTERN}') && "
                "int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && "
                "int(self.substring(self.lastIndexOf(':') + 1)) <= 65535",
                REDIS_ENDPOINT_MESSAGE,
            )
        ),
    ),
    AfterValidator(_host_and_port),
]


class ExternalRedis(Model):
    """A Redis-protocol cluster the operator does not run (ElastiCache, your own)."""

    endpoints: Annotated[list[RedisEndpoint], AfterValidator(_each_once)] = Field(
        min_length=1,
        max_length=16,
        description="Seed nodes as host:port, the port from 1 to 65535, each once; an "
        "IPv6 address in brackets.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
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
    replicas_per_shard: int = Field(
        1,
        ge=0,
        le=5,
        description="Replicas of each primary. Replicas can be added, not removed.",
    )
    image: Image | None = Field(None, description="Valkey or Redis image override.")
    max_memory: Bytes = Field(
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


# S3's naming rules beyond the pattern: (CEL rule, the same check in Python, message).
_BUCKET_RULES: tuple[tuple[str, Callable[[str], bool], str], ...] = (
    ("!self.contains('..')", lambda v: ".." not in v, "must not contain two adjacent periods"),
    (
        f"!self.matches(r'{BUCKET_IP_PATTERN}')",
        lambda v: not re.fullmatch(BUCKET_IP_PATTERN, v),
        "must not be formatted as an IP address",
    ),
    (
        " && ".join(
            [f"!self.startsWith('{p}')" for p in BUCKET_RESERVED_PREFIXES]
            + [f"!self.endsWith('{s}')" for s in BUCKET_RESERVED_SUFFIXES]
        ),
        lambda v: (
            not v.startswith(BUCKET_RESERVED_PREFIXES) and not v.endswith(BUCKET_RESERVED_SUFFIXES)
        ),
        f"must not start with {' or '.join(BUCKET_RESERVED_PREFIXES)} nor end with "
        f"{' or '.join(BUCKET_RESERVED_SUFFIXES)} (reserved by S3)",
    ),
)


def _s3_bucket_name(value: str) -> str:
    for _, ok, message in _BUCKET_RULES:
        if not ok(value):
            raise ValueError(message)
    return value


Bucket = Annotated[
    str,
    StringConstraints(pattern=BUCKET_PATTERN),
    Field(json_schema_extra=validations(*(cel(rule, msg) for rule, _, msg in _BUCKET_RULES))),
    AfterValidator(_s3_bucket_name),
]


def default_bucket_message(other: str) -> str:
    return f"must differ from the {other} bucket, which defaults to NAME-{other}"


SAME_BUCKET_MESSAGE = "must differ from assets: the assets bucket is readable without credentials"


class Buckets(Model):
    """Two distinct buckets: the assets one is readable anonymously from the cluster."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.assets) || !has(self.backups) || self.assets != self.backups",
                SAME_BUCKET_MESSAGE,
                field_path=".backups",
            )
        )
    )
    assets: Bucket | None = Field(
        None,
        description="Static assets; default NAME-assets. Must differ from backups, and "
        "from NAME-backups when backups is unset.",
    )
    backups: Bucket | None = Field(
        None,
        description="Backups; default NAME-backups. Must differ from assets, and from "
        "NAME-assets when assets is unset.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> Buckets:
        if self.assets is not None and self.assets == self.backups:
            raise ValueError(f"backups {SAME_BUCKET_MESSAGE}")
        return self


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


ENDPOINT_PORT_MESSAGE = "port must be between 1 and 65535"
ENDPOINT_HOST_MESSAGE = "must name a host, as in https://s3.example.com:9000"
ENDPOINT_PATH_MESSAGE = (
    "must be the scheme, host and port only, as in https://s3.example.com:9000: no path, "
    "query or fragment (pgBackRest and the S3 clients address buckets themselves, and "
    "would not agree on where a path puts them)"
)
ENDPOINT_CREDENTIALS_MESSAGE = (
    "must not contain credentials: put them in the Secret keys accessKeyId and secretAccessKey"
)


class ExternalObjectStorage(Model):
    """An S3-compatible service the operator does not run (AWS S3, GCS, your own)."""

    endpoint: str = Field(
        pattern=r"^https?://[^\s/]+(/.*)?$",
        max_length=2048,
        description="Endpoint URL, for example https://s3.eu-west-1.amazonaws.com. "
        "Credentials go in accessKeyId and secretAccessKey, never in the URL.",
        json_schema_extra=validations(
            cel("isURL(self)", "must be a valid URL"),
            cel(
                "!isURL(self) || url(self).getPort() == '' || "
                "(url(self).getPort().size() <= 5 && int(url(self).getPort()) >= 1 && "
                "int(url(self).getPort()) <= 65535)",
                ENDPOINT_PORT_MESSAGE,
            ),
            cel(r"!self.matches(r'^https?://[^/?#]*@')", ENDPOINT_CREDENTIALS_MESSAGE),
            cel("!isURL(self) || url(self).getHostname() != ''", ENDPOINT_HOST_MESSAGE),
            cel(r"!self.matches(r'^https?://[^/?#]*[/?#].')", ENDPOINT_PATH_MESSAGE),
        ),
    )
    region: str = Field("us-east-1", max_length=64, description="Signing region.")
    force_path_style: bool = Field(False, description="Path-style bucket addressing.")
    access_key_id: SecretKeyRef = Field(description="Secret key with the access key id.")
    secret_access_key: SecretKeyRef = Field(description="Secret key with the secret key.")
    ca_bundle: SecretKeyRef | None = Field(
        None,
        description="Secret key holding the PEM certificate of the CA the endpoint's "
        "certificate chains to, for an https endpoint with a private CA. Clients then "
        "trust only this CA for the endpoint; unset, the images' system CAs.",
    )

    @model_validator(mode="after")
    def _endpoint(self) -> ExternalObjectStorage:
        netloc = urlsplit(self.endpoint).netloc
        if "@" in netloc:
            raise ValueError(f"endpoint {ENDPOINT_CREDENTIALS_MESSAGE}")
        parts = urlsplit(self.endpoint)
        if not parts.hostname:
            raise ValueError(f"endpoint {ENDPOINT_HOST_MESSAGE}")
        if re.match(r"^https?://[^/?#]*[/?#].", self.endpoint):
            raise ValueError(f"endpoint {ENDPOINT_PATH_MESSAGE}")
        port = re.sub(r"^(\[[^\]]*\]|[^:]*)", "", netloc).removeprefix(":")
        if port and not (len(port) <= 5 and port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"endpoint {ENDPOINT_PORT_MESSAGE}")
        return self


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
    cache_size: Bytes = Field(
        "1Gi",
        description="Disk cache per pod (an emptyDir).",
        json_schema_extra=validations(
            cel(
                "!isQuantity(self) || quantity(self).isGreaterThan(quantity('0'))",
                "must be larger than zero",
            ),
        ),
    )
    asset_max_age: Annotated[Duration, Between("1s", "8760h")] = Field(
        "1h", description="How long cached assets stay fresh (1s to 8760h, a year)."
    )
    resources: Resources = Field(
        default_factory=lambda: resources("100m", "128Mi", "256Mi"),
        description="Compute resources of each edge pod.",
    )

    @model_validator(mode="after")
    def _positive(self) -> EdgeCdn:
        if parse_quantity(self.cache_size) <= 0:
            raise ValueError("cacheSize must be larger than zero")
        return self


class CdnSpec(Model):
    """The CDN in front of the API and the assets bucket."""

    provider: CdnProvider = Field(
        CdnProvider.EDGE, description="edge: an nginx cache in the cluster; none: no CDN."
    )
    edge: EdgeCdn = Field(default_factory=EdgeCdn, description="Used when provider is edge.")


# --- backups --------------------------------------------------------------------


class BackupSchedules(Model):
    """When each kind of backup runs, as five-field cron expressions."""

    full: Schedule = Field("0 1 * * *", description="Full physical backup (cron, 5 fields).")
    incremental: Schedule = Field("30 * * * *", description="Incremental physical backup.")
    vector_tables: Schedule = Field(
        "0 3 * * *", description="Logical dump of every table with a vector column."
    )


class Retention(Model):
    """Calendar retention, in spec.backup.timeZone, of full backups and of vector-table
    dumps: the newest good one of each day and of each ISO week."""

    daily: int = Field(
        30,
        ge=1,
        le=366,
        description="Days with one kept full backup each; WAL is kept unbroken from the "
        "oldest of them, for point-in-time recovery across these days.",
    )
    weekly: int = Field(
        52,
        ge=0,
        le=520,
        description="ISO weeks with one kept full backup; those older than the daily days "
        "restore to their own end only, with pgBackRest's --set (spec.bootstrap.recovery "
        "does not reach them).",
    )


class Drill(Model):
    """Scheduled restore drills: the latest backup restored into a scratch instance and
    checked, with the recovery time and point measured."""

    enabled: bool = Field(True, description="Run scheduled restore drills.")
    schedule: Schedule = Field("0 5 * * 0", description="When drills run (cron, 5 fields).")
    marker_table: str | None = Field(
        None,
        pattern=MARKER_TABLE_PATTERN,
        max_length=127,
        description="A table, as schema.table, that must exist and hold rows in the "
        "restored copy; its row count is reported.",
    )
    max_age: Annotated[Duration, Between("1h", "2160h")] = Field(
        "192h",
        description="Alert when no drill has succeeded for this long (default: a week "
        "and a day, for the weekly default schedule).",
    )


class BackupSpec(Model):
    """Backups, retention and recovery objectives."""

    enabled: bool = Field(True, description="Take scheduled backups.")
    schedules: BackupSchedules = Field(default_factory=BackupSchedules)
    time_zone: TimeZone = Field("UTC", description="IANA time zone of the schedules.")
    retention: Retention = Field(default_factory=Retention)
    rpo: Annotated[Duration, Between("1m", "24h")] = Field(
        "15m",
        description="Recovery point objective: the most data, in time, a restore may lose.",
    )
    rto: Annotated[Duration, Between("1m", "168h")] = Field(
        "1h",
        description="Recovery time objective: the longest a restore may take.",
    )
    drill: Drill = Field(default_factory=Drill)


class RecoverySource(Model):
    """Where a new PulseBase restores from: another PulseBase's backup repository."""

    pulse_base: str = Field(
        pattern=NAME_PATTERN,
        max_length=NAME_MAX_LENGTH,
        description="Name of the PulseBase (same namespace) whose backups to restore. "
        "Only read: the restore never writes to its repository or its database.",
    )


def _unambiguous_time(value: str) -> str:
    if not re.fullmatch(RFC3339_PATTERN, value):
        raise ValueError(TARGET_TIME_MESSAGE)
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value} names a day that does not exist") from None
    return value


class Recovery(Model):
    """Restore a new cluster from a backup repository, to its latest point or to a time."""

    source: RecoverySource
    target_time: Annotated[str, AfterValidator(_unambiguous_time)] | None = Field(
        None,
        max_length=64,
        description="Restore to this moment (RFC 3339 with an explicit offset, such as "
        "2026-12-01T09:30:00Z or 2026-12-01T10:30:00+01:00); the latest point when unset.",
        json_schema_extra=validations(
            cel(f"self.matches(r'{RFC3339_PATTERN}')", TARGET_TIME_MESSAGE)
        ),
    )


class Bootstrap(Model):
    """How the database is created; immutable after creation."""

    recovery: Recovery | None = Field(
        None,
        description="Create the database from another PulseBase's backups instead of empty.",
    )


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
    duration: Annotated[Duration, Between("30m", "24h")] = Field(
        "2h", description="How long it stays open (at least 30m, at most 24h)."
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

    api_latency_p95: Annotated[Duration, Between("1ms", "1h")] = Field(
        "500ms", description="API p95 latency alert."
    )
    db_query_p95: Annotated[Duration, Between("1ms", "1h")] = Field(
        "200ms", description="Database query p95 alert."
    )
    error_rate_percent: Percent = Field("1", description="API 5xx ratio alert, percent.")
    cache_hit_ratio_percent: Percent = Field("70", description="Alert below this hit ratio.")
    disk_usage_percent: Percent = Field("80", description="Volume usage alert, percent.")
    availability_percent: Percent = Field("99.9", description="Availability objective.")


class MonitoringSpec(Model):
    """Live health probes and alert rules.

    Probe results go to status.health, the *Healthy conditions and /metrics; the alert
    rules are applied where the cluster serves PrometheusRule.
    """

    probe_interval: Annotated[Duration, Between("5s", "1h")] = Field(
        "30s", description="How often live health probes run."
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    prometheus_rule: bool = Field(
        True,
        description="Apply a PrometheusRule NAME-alerts with the alert rules, where the "
        "cluster serves that kind (prometheus-operator's CRDs).",
    )


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
    _transition("redis.replicasPerShard", "1", "{new} >= {old}", "may grow but not shrink"),
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


BACKUP_ENDPOINT_MESSAGE = (
    "must be an https URL while backups are enabled and PostgreSQL is managed: "
    "pgBackRest's S3 driver speaks only TLS (or set backup.enabled to false)"
)
# The whole spec is in view only here: the endpoint, the database mode and the backups.
_STORAGE_MODE = _defaulted("self", "objectStorage.mode", "'managed'")
_POSTGRES_MODE = _defaulted("self", "postgres.mode", "'managed'")
_BACKUPS_ON = _defaulted("self", "backup.enabled", "true")
BACKUP_ENDPOINT_RULE = cel(
    f"!({_STORAGE_MODE} == 'external' && {_POSTGRES_MODE} == 'managed' && {_BACKUPS_ON}) || "
    "!has(self.objectStorage.external) || "
    "self.objectStorage.external.endpoint.startsWith('https://')",
    BACKUP_ENDPOINT_MESSAGE,
    field_path=".objectStorage.external.endpoint",
)


class PulseBaseSpec(Model):
    """The whole stack: one object, every dependency."""

    model_config = ConfigDict(
        json_schema_extra=validations(*SPEC_TRANSITION_RULES, BACKUP_ENDPOINT_RULE)
    )

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
        "cluster state when the PulseBase is deleted; Delete removes them with it, once "
        "a final full backup succeeded. No backup is deleted from a bucket.",
    )


def describe(problem: Mapping[str, Any]) -> str:
    """One of pydantic's errors as a person reads it: `field.path: message`, without
    pydantic's "Value error, " prefix, and without an empty path for an object's rule."""
    where = ".".join(str(part) for part in problem.get("loc") or ())
    message = str(problem.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


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


class DrillStatus(Model):
    """The newest restore drill, as its job reported it."""

    job: str = Field(description="The Job that ran it.")
    succeeded: bool
    started: str | None = Field(None, json_schema_extra={"format": "date-time"})
    finished: str | None = Field(None, json_schema_extra={"format": "date-time"})
    backup_label: str | None = Field(None, description="The pgBackRest set restored.")
    recovery_time_seconds: float | None = Field(
        None, description="From the drill's start until the copy accepted queries."
    )
    vector_indexes_usable_seconds: float | None = Field(
        None, description="From the drill's start until every vector index was usable."
    )
    recovery_point_seconds: float | None = Field(
        None,
        description="How far the copy's last replayed transaction lies behind the newest "
        "archived WAL when the drill began: the data a restore then would have lost.",
    )
    marker_rows: int | None = None
    failed_step: str | None = None
    message: str = Field("", max_length=4096)


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
    recovery_point_exposure_seconds: int | None = Field(
        None, description="Age of the newest archived WAL: what a restore now would lose."
    )
    recoverable_from: str | None = Field(
        None,
        description=(
            "A second after the oldest backup set ended: no restore to a time "
            "(spec.bootstrap.recovery.targetTime) reaches an earlier moment. WAL is "
            "unbroken only from the oldest backup of the daily retention window on; a "
            "time among the older, weekly sets is not refused but cannot be reached."
        ),
        json_schema_extra={"format": "date-time"},
    )
    counts: dict[str, int] = Field(default_factory=dict, description="Backups per tier.")
    last_drill: DrillStatus | None = None


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
        if len(name) > NAME_MAX_LENGTH or not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(
                f"metadata.name: {name!r} must be a DNS-1035 label of at most "
                f"{NAME_MAX_LENGTH} characters (lower-case letters, digits, '-', "
                "starting with a letter)"
            )
        return self

    @model_validator(mode="after")
    def _buckets_apart_from_defaults(self) -> PulseBase:
        buckets = self.spec.object_storage.buckets
        for field, value, other in (
            ("assets", buckets.assets, "backups"),
            ("backups", buckets.backups, "assets"),
        ):
            taken = f"{self.metadata.name}-{other}"
            if value == taken and getattr(buckets, other) is None:
                raise ValueError(
                    f"spec.objectStorage.buckets.{field}: {default_bucket_message(other)}"
                )
        return self

    @model_validator(mode="after")
    def _not_restored_from_itself(self) -> PulseBase:
        recovery = self.spec.bootstrap.recovery
        if recovery is not None and recovery.source.pulse_base == self.metadata.name:
            raise ValueError(f"spec.bootstrap.recovery.source.pulseBase: {SELF_RESTORE_MESSAGE}")
        return self

    @model_validator(mode="after")
    def _backups_over_tls(self) -> PulseBase:
        spec = self.spec
        external = spec.object_storage.external
        if (
            external is not None
            and spec.object_storage.mode is Mode.EXTERNAL
            and spec.postgres.mode is Mode.MANAGED
            and spec.backup.enabled
            and not external.endpoint.startswith("https://")
        ):
            raise ValueError(f"spec.objectStorage.external.endpoint: {BACKUP_ENDPOINT_MESSAGE}")
        return self

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> PulseBase:
        def part(value: Any) -> Any:
            # A copy of a mapping; anything else as it is, for the validator to name.
            return dict(value) if isinstance(value, Mapping) else value

        return cls.model_validate(
            {
                "apiVersion": body.get("apiVersion", API_VERSION),
                "kind": body.get("kind", KIND),
                "metadata": part(body.get("metadata") or {}),
                "spec": part(body.get("spec") or {}),
            }
        )
