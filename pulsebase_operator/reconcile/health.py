"""Live health: what to probe for one PulseBase, with which credentials, and what the
readings mean for status.

A probe round reads the credentials it needs, runs every probe at once (each bounded by
its timeout) and keeps the readings in memory. It writes nothing itself: the reconcile
pass, woken after each round, is the one writer of status, so readiness and health are
judged together and the pass stays the single place that decides what `Ready` means.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pulsebase_operator import probes
from pulsebase_operator.api import models
from pulsebase_operator.api.quantity import parse_duration, parse_quantity
from pulsebase_operator.kube.client import Kube
from pulsebase_operator.policy import backups, readiness, retention
from pulsebase_operator.probes import repository
from pulsebase_operator.render import credentials, naming, objectstore, postgres, redis, stack

# Secret keys: (namespace-local Secret name, key) -> value, None when missing; raises
# UnreadableSecretError when the value is not text.
SecretReader = Callable[[str, str], str | None]

MAX_TIMEOUT_SECONDS = 5.0
# Readings older than this many intervals are reported as unknown, not as current.
STALE_AFTER_INTERVALS = 3


class UnreadableSecretError(Exception):
    """A Secret key whose value is not UTF-8 text: no client can log in with it."""


class Scope(StrEnum):
    """Which dependencies `pulsebase-operator run --probes` reaches."""

    ALL = "all"  # every dependency, managed ones through their Services
    EXTERNAL = "external"  # only what runs outside the cluster
    NONE = "none"


@dataclass(frozen=True)
class Plan:
    targets: dict[str, probes.Target]
    skipped: dict[str, str]  # component -> why it is not probed


def interval_of(pb: models.PulseBase) -> float:
    return float(parse_duration(pb.spec.monitoring.probe_interval))


def timeout_for(interval_seconds: float) -> float:
    """Half the interval, at most a few seconds, so a round always ends before the next."""
    return min(MAX_TIMEOUT_SECONDS, interval_seconds / 2)


def plan(pb: models.PulseBase, *, scope: Scope, secret: SecretReader) -> Plan:
    """The probe targets of one PulseBase; pure but for the Secret reader."""
    spec, name, namespace = pb.spec, pb.metadata.name, pb.metadata.namespace
    targets: dict[str, probes.Target] = {}
    skipped: dict[str, str] = {}

    def reachable(component: str, mode: models.Mode) -> bool:
        if scope is Scope.NONE:
            skipped[component] = "Live probes are off (--probes=none)."
            return False
        if scope is Scope.EXTERNAL and mode is models.Mode.MANAGED:
            skipped[component] = (
                "Managed dependencies are not probed (--probes=external); "
                "their pods' readiness is reported instead."
            )
            return False
        return True

    builders: tuple[tuple[str, models.Mode, Callable[..., probes.Target | str]], ...] = (
        ("postgres", spec.postgres.mode, _postgres),
        ("redis", spec.redis.mode, _redis),
        ("objectStorage", spec.object_storage.mode, _objectstore),
    )
    for component, mode, build in builders:
        if not reachable(component, mode):
            continue
        # A str is the reason the target cannot be built yet (a missing credential);
        # one unreadable credential skips its own component, not the whole round.
        try:
            target = build(pb, secret=secret)
        except UnreadableSecretError as error:
            target = str(error)
        if isinstance(target, str):
            skipped[component] = target
        else:
            targets[component] = target
    # The API always runs in the cluster: reachable only when managed ones are probed.
    if reachable("api", models.Mode.MANAGED) and spec.api.replicas > 0:
        targets["api"] = probes.HttpTarget(url=f"http://{naming.api(name)}.{namespace}.svc/readyz")
    return Plan(targets=targets, skipped=skipped)


def _missing(ref_name: str, key: str, field: str | None = None) -> str:
    """Why a dependency is not probed; `field` names the spec field that points at the
    Secret, when the user wrote it."""
    named = f" ({field})" if field else ""
    return f"Not probed: Secret {ref_name} has no key {key} yet{named}."


def _postgres(pb: models.PulseBase, *, secret: SecretReader) -> probes.PostgresTarget | str:
    spec, name = pb.spec.postgres, pb.metadata.name
    if spec.external is not None:
        external = spec.external
        user = secret(external.username.name, external.username.key)
        password = secret(external.password.name, external.password.key)
        if user is None or password is None:
            field = "username" if user is None else "password"
            ref = external.username if user is None else external.password
            return _missing(ref.name, ref.key, f"spec.postgres.external.{field}")
        return probes.PostgresTarget(
            host=external.libpq_host,
            port=external.port,
            database=external.database,
            user=user,
            password=password,
            sslmode=external.ssl_mode,
        )
    # The superuser sees every replica's lag; the application role would see nulls.
    superuser = naming.postgres_superuser_secret(name)
    password = secret(superuser, "password")
    database = secret(naming.postgres_app_secret(name), "database")
    if password is None or database is None:
        return _missing(superuser, "password")
    return probes.PostgresTarget(
        host=f"{naming.postgres_primary(name)}.{pb.metadata.namespace}.svc",
        port=postgres.PORT,
        database=database,
        user=postgres.SUPERUSER,
        password=password,
        sslmode="disable",
        volume_bytes=int(parse_quantity(spec.storage.size)),
    )


def _redis(pb: models.PulseBase, *, secret: SecretReader) -> probes.RedisTarget | str:
    spec, name = pb.spec.redis, pb.metadata.name
    if spec.external is not None:
        external = spec.external
        password = None
        if external.password is not None:
            password = secret(external.password.name, external.password.key)
            if password is None:
                return _missing(
                    external.password.name, external.password.key, "spec.redis.external.password"
                )
        return probes.RedisTarget(
            endpoints=tuple(_host_port(e) for e in external.endpoints),
            password=password,
            tls=external.tls,
            cluster=True,
        )
    auth = naming.redis_secret(name)
    password = secret(auth, "password")
    if password is None:
        return _missing(auth, "password")
    return probes.RedisTarget(
        endpoints=tuple(_host_port(e) for e in redis.node_addresses(pb)),
        password=password,
        tls=False,
        cluster=True,
    )


def _objectstore(pb: models.PulseBase, *, secret: SecretReader) -> probes.ObjectStoreTarget | str:
    storage, name = pb.spec.object_storage, pb.metadata.name
    buckets = objectstore.buckets(pb)
    if storage.external is not None:
        external = storage.external
        key_id = secret(external.access_key_id.name, external.access_key_id.key)
        secret_key = secret(external.secret_access_key.name, external.secret_access_key.key)
        region, path_style = external.region, external.force_path_style
        missing = external.access_key_id if key_id is None else external.secret_access_key
        field: str | None = "spec.objectStorage.external." + (
            "accessKeyId" if key_id is None else "secretAccessKey"
        )
    else:
        keys = naming.objectstore_secret(name)
        key_id = secret(keys, credentials.ACCESS_KEY_ID)
        secret_key = secret(keys, credentials.SECRET_ACCESS_KEY)
        region, path_style = objectstore.MANAGED_REGION, True
        missing = models.SecretKeyRef(name=keys, key=credentials.ACCESS_KEY_ID)
        field = None
    if key_id is None or secret_key is None:
        return _missing(missing.name, missing.key, field)
    # The operator's CA for the managed endpoint, or the user's caBundle: only that CA.
    verify: bool | str = True
    if (ref := objectstore.ca_ref(pb)) is not None:
        ca = secret(ref.name, ref.key)
        if ca is None:
            external_ca = storage.external is not None
            return _missing(
                ref.name, ref.key, "spec.objectStorage.external.caBundle" if external_ca else None
            )
        verify = ca_bundle(ca)
    return probes.ObjectStoreTarget(
        endpoint=objectstore.endpoint(pb),
        region=region,
        access_key_id=key_id,
        secret_access_key=secret_key,
        buckets=(buckets.assets, buckets.backups),
        backups_bucket=buckets.backups,
        force_path_style=path_style,
        verify_tls=verify,
    )


def ca_bundle(pem: str) -> str:
    """A file holding `pem`, for boto3's `verify=`: named by its content, so each CA is
    written once and a new one (after the Secret was rotated) gets a file of its own."""
    digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"pulsebase-objectstore-ca-{digest}.pem"
    if not path.exists():
        # Written aside and renamed, so a concurrent reader never sees half a file.
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.partial")
        partial.write_text(pem)
        partial.replace(path)
    return str(path)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def secret_reader(kube: Kube, namespace: str) -> SecretReader:
    """Read Secret keys through the API, each Secret once per round."""
    cache: dict[str, Mapping[str, str] | None] = {}

    def read(name: str, key: str) -> str | None:
        if name not in cache:
            found = kube.get("v1", "Secret", namespace, name)
            cache[name] = (found or {}).get("data") if found is not None else None
        data = cache[name]
        if not data or key not in data:
            return None
        try:
            return base64.b64decode(data[key]).decode()
        except UnicodeDecodeError:
            # Not chained: the error's repr would carry the secret's bytes into the log.
            raise UnreadableSecretError(
                f"Not probed: key {key} of Secret {name} is not UTF-8 text."
            ) from None

    return read


def findings(
    *,
    readings: Mapping[str, probes.Reading],
    skipped: Mapping[str, str],
    now: float,
    interval_seconds: float,
) -> dict[str, readiness.Probed]:
    """What status shows per dependency: the readings, or why there is none."""
    found: dict[str, readiness.Probed] = {}
    for component, why in skipped.items():
        found[component] = readiness.Probed(
            healthy=None, reason="NotProbed", message=why, values={}
        )
    for component, reading in readings.items():
        age = now - reading.measured_at.timestamp()
        if age > STALE_AFTER_INTERVALS * interval_seconds:
            found[component] = readiness.Probed(
                healthy=None,
                reason="NoRecentProbe",
                message=f"The last probe result is {int(age)} s old.",
                values={},
            )
            continue
        values = {
            "healthy": reading.healthy,
            "measuredAt": reading.measured_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            **reading.values,
        }
        found[component] = readiness.Probed(
            healthy=reading.healthy, reason=reading.reason, message=reading.message, values=values
        )
    return found


@dataclass
class Round:
    """The newest probe round of one PulseBase."""

    readings: dict[str, probes.Reading]
    skipped: dict[str, str]
    interval_seconds: float
    # The backups bucket as read in this round; None with `backups_unobservable` saying why.
    backups: backups.Observed | None = None
    backups_unobservable: str | None = None
    # Why this round's configuration backup could not be written, if it could not.
    configuration_problem: str | None = None


class Readings:
    """The newest round per PulseBase, shared by the probe loops and the passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rounds: dict[tuple[str, str], Round] = {}

    def put(self, namespace: str, name: str, round_: Round) -> None:
        with self._lock:
            self._rounds[(namespace, name)] = round_

    def get(self, namespace: str, name: str) -> Round | None:
        with self._lock:
            return self._rounds.get((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._rounds.pop((namespace, name), None)


def probe_round(
    kube: Kube,
    pb: models.PulseBase,
    *,
    scope: Scope,
    previous: Round | None,
) -> Round:
    """Read the credentials, probe every target at once, return the readings."""
    interval = interval_of(pb)
    the_plan = plan(pb, scope=scope, secret=secret_reader(kube, pb.metadata.namespace))
    readings: dict[str, probes.Reading] = {}
    if the_plan.targets:
        readings = probes.run(
            the_plan.targets,
            timeout=timeout_for(interval),
            previous=previous.readings if previous else None,
        )
    found = Round(readings=readings, skipped=the_plan.skipped, interval_seconds=interval)
    target = the_plan.targets.get("objectStorage")
    storage = readings.get("objectStorage")
    if storage is not None and not storage.healthy:
        # Asking again would cost another timeout and say less than the probe did.
        found.backups_unobservable = f"The backups bucket is not read. {storage.message}"
    elif isinstance(target, probes.ObjectStoreTarget) and target.backups_bucket:
        observe_backups(pb, target=target, timeout=timeout_for(interval), into=found)
    elif "objectStorage" in the_plan.skipped:
        # Said for backups, not in the probes' words (they speak of the pods' readiness).
        found.backups_unobservable = (
            "The backups bucket is not read, because the object storage is not probed "
            f"({_scope_flag(the_plan.skipped['objectStorage'])}): no backup, recovery point "
            "or configuration backup is observed or written."
        )
    else:
        found.backups_unobservable = "The backups bucket is not read: no object storage is probed."
    return found


def _scope_flag(skipped: str) -> str:
    return "--probes=none" if "--probes=none" in skipped else "--probes=external"


def observe_backups(
    pb: models.PulseBase,
    *,
    target: probes.ObjectStoreTarget,
    timeout: float,
    into: Round,
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> None:
    """Read the backups bucket into `into`, and write this generation's configuration
    backup if the bucket holds none yet. Failures are recorded, never raised: a bucket
    that cannot be read leaves the stack reconciled as before."""
    measured_at = now()
    try:
        found = repository.read(target, timeout=timeout)
    except repository.RepositoryError as error:
        into.backups_unobservable = str(error)
        return
    try:
        sets = retention.backups_from_info(found.info) if found.info is not None else []
    except ValueError as error:
        into.backups_unobservable = f"The backup catalog in the bucket is not readable: {error}."
        return
    configuration = found.newest_configuration
    generation = pb.metadata.generation
    # With backups off nothing is written into the backups bucket, this neither.
    wanted = pb.spec.backup.enabled and generation is not None
    if wanted and generation not in found.configuration_generations:
        written = write_configuration(pb, target=target, timeout=timeout, now=measured_at)
        if isinstance(written, str):
            into.configuration_problem = written
        else:
            configuration = written
    into.backups = backups.Observed(
        measured_at=measured_at,
        sets=sets,
        newest_wal=found.newest_wal.modified if found.newest_wal else None,
        newest_vector_tables=(
            found.newest_vector_tables.modified if found.newest_vector_tables else None
        ),
        newest_configuration=configuration.modified if configuration else None,
        notes=found.notes,
    )


def write_configuration(
    pb: models.PulseBase,
    *,
    target: probes.ObjectStoreTarget,
    timeout: float,
    now: datetime.datetime,
) -> repository.Newest | str:
    """Write configuration/<time>-generation-<n>.json; what went wrong, as a sentence."""
    assert pb.metadata.generation is not None
    key = backups.configuration_key(pb.metadata.generation, now=now)
    try:
        document = backups.configuration_document(
            pb, stack.render(pb, served=ALL_OPTIONAL_KINDS).objects, now=now
        )
        repository.write_configuration(
            target,
            key=key,
            document=json.dumps(document, indent=1, sort_keys=True).encode(),
            timeout=timeout,
        )
    except (repository.RepositoryError, ValueError) as error:
        return f"The configuration backup of generation {pb.metadata.generation} failed: {error}"
    return repository.Newest(key=key, modified=now)


# The configuration backup holds every object the spec renders to, the optional kinds too.
ALL_OPTIONAL_KINDS = frozenset(kind.key for kind in stack.OPTIONAL_KINDS)


def status_values(found: Mapping[str, readiness.Probed]) -> dict[str, Any]:
    """status.health as the metrics collector reads it."""
    return {name: dict(p.values) for name, p in found.items() if p.values}


def backups_seen(found: Round | None, *, scope: Scope) -> backups.Seen | None:
    """What the pass reports about the backups bucket; None before the first round."""
    if scope is Scope.NONE:
        return backups.Seen(unobservable="The backups bucket is not read (--probes=none).")
    if found is None:
        return None
    return backups.Seen(
        observed=found.backups,
        unobservable=found.backups_unobservable,
        configuration_problem=found.configuration_problem,
    )
