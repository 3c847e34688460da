"""Per-PulseBase health series on /metrics, from the live probes' last readings.

A custom collector rather than labelled gauges: each scrape renders what the store
holds now, so forgetting a PulseBase (deleted, or no longer watched) removes all its
series at once, and a value a probe could not measure is simply absent instead of a
stale number. Every series carries `namespace` and `pulsebase` as labels of its own;
the scrape needs `honorLabels: true` to keep them.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

BASE_LABELS = ("namespace", "pulsebase")


@dataclass(frozen=True)
class Series:
    """One metric family: where its samples come from in a PulseBase's readings."""

    name: str
    help: str
    extra_labels: tuple[str, ...] = ()
    counter: bool = False


# The names the dashboard and the alert rules may use; a test holds them to this list.
SERIES: tuple[Series, ...] = (
    Series("pulsebase_ready", "1 while the PulseBase is Ready, else 0."),
    Series(
        "pulsebase_dependency_up",
        "1 while the live probe of a dependency succeeds, else 0.",
        ("component",),
    ),
    Series(
        "pulsebase_probe_latency_seconds",
        "Round-trip time of the last probe of a dependency.",
        ("component",),
    ),
    Series(
        "pulsebase_postgres_replication_lag_seconds",
        "Replay lag of a PostgreSQL replica, in seconds.",
        ("member",),
    ),
    Series(
        "pulsebase_postgres_replication_lag_bytes",
        "WAL a PostgreSQL replica has not replayed yet, in bytes.",
        ("member",),
    ),
    Series("pulsebase_postgres_connections", "Backends connected to PostgreSQL."),
    Series("pulsebase_postgres_max_connections", "PostgreSQL max_connections."),
    Series("pulsebase_postgres_database_size_bytes", "Size of the API's database."),
    Series(
        "pulsebase_postgres_query_p95_seconds",
        "Calls-weighted 95th percentile of statement mean times between two probes.",
    ),
    Series(
        "pulsebase_redis_cache_hit_ratio",
        "Keyspace hits / (hits + misses) between two probes, 0 to 1.",
    ),
    Series("pulsebase_redis_memory_used_bytes", "Memory Redis uses, summed over primaries."),
    Series("pulsebase_redis_memory_max_bytes", "Redis maxmemory, summed over primaries."),
    Series(
        "pulsebase_redis_evicted_keys_total",
        "Keys Redis evicted for memory since its nodes started.",
        counter=True,
    ),
    Series("pulsebase_redis_cluster_slots_ok", "Hash slots served by a healthy node."),
    Series(
        "pulsebase_objectstorage_newest_backup_age_seconds",
        "Age of the newest object in the backups bucket.",
    ),
    Series(
        "pulsebase_objectstorage_bucket_versioning_enabled",
        "1 when versioning is enabled on a bucket, else 0.",
        ("bucket",),
    ),
    Series(
        "pulsebase_volume_used_bytes",
        "Bytes used on a data volume, as the dependency reports it.",
        ("volume",),
    ),
    Series("pulsebase_volume_capacity_bytes", "Capacity of a data volume.", ("volume",)),
    Series(
        "pulsebase_backup_last_success_timestamp_seconds",
        "Unix time the newest good backup of a kind finished "
        "(full, incr, vector-tables, configuration).",
        ("kind",),
    ),
    Series(
        "pulsebase_backup_rpo_exposure_seconds",
        "Age of the newest archived WAL segment known, at the scrape: the writes a "
        "restore now would lose.",
    ),
    Series("pulsebase_backup_sets", "Good backup sets per retention tier.", ("tier",)),
    Series(
        "pulsebase_drill_last_success_timestamp_seconds",
        "Unix time the newest successful restore drill finished.",
    ),
    Series("pulsebase_drill_succeeded", "1 when the newest restore drill succeeded, else 0."),
    Series(
        "pulsebase_drill_recovery_time_seconds",
        "How long the newest restore drill took until the copy accepted queries.",
    ),
    Series(
        "pulsebase_drill_recovery_point_seconds",
        "How far the newest drill's copy lay behind the newest archived WAL.",
    ),
)
BY_NAME = {series.name: series for series in SERIES}

# name -> samples as (extra label values, value)
Samples = dict[str, list[tuple[tuple[str, ...], float]]]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


EXPOSURE = "pulsebase_backup_rpo_exposure_seconds"

# status.backup field -> the `kind` label of pulsebase_backup_last_success_timestamp_seconds
BACKUP_KINDS = {
    "lastFull": "full",
    "lastIncremental": "incr",
    "lastVectorTables": "vector-tables",
    "lastConfiguration": "configuration",
}


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def samples_from_backup(out: Samples, backup: Mapping[str, Any]) -> None:
    """Add the samples of a `status.backup` mapping to `out`."""

    def put(name: str, value: Any, *labels: str) -> None:
        number = _number(value)
        if number is not None:
            out[name].append((labels, number))

    for field, kind in BACKUP_KINDS.items():
        put("pulsebase_backup_last_success_timestamp_seconds", _timestamp(backup.get(field)), kind)
    put("pulsebase_backup_rpo_exposure_seconds", backup.get("recoveryPointExposureSeconds"))
    for tier, count in sorted((backup.get("counts") or {}).items()):
        put("pulsebase_backup_sets", count, str(tier))
    drill = backup.get("lastDrill")
    if isinstance(drill, Mapping):
        succeeded = drill.get("succeeded")
        put("pulsebase_drill_succeeded", succeeded)
        if succeeded is True:
            put("pulsebase_drill_last_success_timestamp_seconds", _timestamp(drill.get("finished")))
        put("pulsebase_drill_recovery_time_seconds", drill.get("recoveryTimeSeconds"))
        put("pulsebase_drill_recovery_point_seconds", drill.get("recoveryPointSeconds"))


def samples_from_health(
    *, ready: bool, health: Mapping[str, Any], backup: Mapping[str, Any] | None = None
) -> Samples:
    """Turn a `status.health` mapping (component -> measured values) and `status.backup`
    into samples."""
    out: Samples = {series.name: [] for series in SERIES}
    samples_from_backup(out, backup or {})

    def put(name: str, value: Any, *labels: str) -> None:
        number = _number(value)
        if number is not None:
            out[name].append((labels, number))

    put("pulsebase_ready", ready)
    for component, values in health.items():
        if not isinstance(values, Mapping) or "healthy" not in values:
            continue
        put("pulsebase_dependency_up", values.get("healthy"), component)
        put("pulsebase_probe_latency_seconds", values.get("latencySeconds"), component)

    postgres = health.get("postgres") or {}
    for member in postgres.get("members") or []:
        member_name = str(member.get("name") or member.get("address") or "unknown")
        put("pulsebase_postgres_replication_lag_seconds", member.get("lagSeconds"), member_name)
        put("pulsebase_postgres_replication_lag_bytes", member.get("lagBytes"), member_name)
    put("pulsebase_postgres_connections", postgres.get("connections"))
    put("pulsebase_postgres_max_connections", postgres.get("maxConnections"))
    put("pulsebase_postgres_database_size_bytes", postgres.get("databaseBytes"))
    put("pulsebase_postgres_query_p95_seconds", postgres.get("queryP95Seconds"))
    if postgres.get("volumeBytes") is not None:
        put("pulsebase_volume_used_bytes", postgres.get("databaseBytes"), "postgres")
        put("pulsebase_volume_capacity_bytes", postgres.get("volumeBytes"), "postgres")

    redis = health.get("redis") or {}
    put("pulsebase_redis_cache_hit_ratio", redis.get("hitRatio"))
    put("pulsebase_redis_memory_used_bytes", redis.get("memoryUsedBytes"))
    put("pulsebase_redis_memory_max_bytes", redis.get("memoryMaxBytes"))
    put("pulsebase_redis_evicted_keys_total", redis.get("evictedKeys"))
    put("pulsebase_redis_cluster_slots_ok", redis.get("slotsOk"))

    storage = health.get("objectStorage") or {}
    put("pulsebase_objectstorage_newest_backup_age_seconds", storage.get("newestBackupAgeSeconds"))
    for bucket, state in (storage.get("buckets") or {}).items():
        enabled = isinstance(state, Mapping) and state.get("versioning") == "Enabled"
        put("pulsebase_objectstorage_bucket_versioning_enabled", enabled, str(bucket))
    return out


class HealthStore(Collector):
    """The newest samples of each PulseBase, rendered on every scrape."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._by_resource: dict[tuple[str, str], Samples] = {}
        # Unix time of the newest archived WAL segment seen, per PulseBase. The exposure
        # is measured from it at each scrape, so it keeps growing while the bucket
        # cannot be read: an archive nobody can see is not trusted to be current.
        self._newest_wal: dict[tuple[str, str], float] = {}

    def update(
        self,
        *,
        namespace: str,
        name: str,
        ready: bool,
        health: Mapping[str, Any],
        backup: Mapping[str, Any] | None = None,
        newest_wal: float | None = None,
    ) -> None:
        samples = samples_from_health(ready=ready, health=health, backup=backup)
        with self._lock:
            self._by_resource[(namespace, name)] = samples
            if newest_wal is not None:
                self._newest_wal[(namespace, name)] = newest_wal

    def forget(self, *, namespace: str, name: str) -> None:
        with self._lock:
            self._by_resource.pop((namespace, name), None)
            self._newest_wal.pop((namespace, name), None)

    def known(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._by_resource)

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        with self._lock:
            snapshot = dict(self._by_resource)
            for key, wal in self._newest_wal.items():
                if key in snapshot:
                    exposure: list[tuple[tuple[str, ...], float]] = [
                        ((), max(0.0, round(now - wal, 3)))
                    ]
                    snapshot[key] = {**snapshot[key], EXPOSURE: exposure}
        for series in SERIES:
            labels = [*BASE_LABELS, *series.extra_labels]
            family: CounterMetricFamily | GaugeMetricFamily
            if series.counter:
                # The family is named without _total; its sample gets the suffix.
                name = series.name.removesuffix("_total")
                family = CounterMetricFamily(name, series.help, labels=labels)
            else:
                family = GaugeMetricFamily(series.name, series.help, labels=labels)
            for (namespace, pulsebase), samples in sorted(snapshot.items()):
                for extra, value in samples.get(series.name, []):
                    family.add_metric([namespace, pulsebase, *extra], value)
            yield family


STORE = HealthStore()


def register(registry: CollectorRegistry = REGISTRY) -> HealthStore:
    registry.register(STORE)
    return STORE
