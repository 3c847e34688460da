"""The health series a scrape shows for each PulseBase, and their removal."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pulsebase_operator.telemetry import health

HEALTH = {
    "postgres": {
        "healthy": True,
        "latencySeconds": 0.004,
        "members": [{"name": "shop-postgres-1", "lagBytes": 1024, "lagSeconds": 0.5}],
        "connections": 12,
        "maxConnections": 100,
        "databaseBytes": 2_000_000,
        "volumeBytes": 10_000_000,
        "queryP95Seconds": None,
    },
    "redis": {"healthy": False, "hitRatio": 0.75, "evictedKeys": 3, "slotsOk": 16384},
    "objectStorage": {
        "healthy": True,
        "buckets": {"shop-assets": {"versioning": "Enabled"}, "b": {"versioning": "Disabled"}},
    },
    "measuredAt": "2026-12-04T10:00:00Z",
}


def scrape(store: health.HealthStore) -> str:
    registry = CollectorRegistry()
    registry.register(store)
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def at(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset({"namespace": "prod", "pulsebase": "shop", **labels}.items())


def test_a_probed_pulsebase_shows_its_measured_values() -> None:
    store = health.HealthStore()
    store.update(namespace="prod", name="shop", ready=True, health=HEALTH)
    text = scrape(store)
    found = samples(text)

    assert found[("pulsebase_ready", at())] == 1
    assert found[("pulsebase_dependency_up", at(component="redis"))] == 0
    assert found[("pulsebase_dependency_up", at(component="postgres"))] == 1
    assert found[("pulsebase_probe_latency_seconds", at(component="postgres"))] == 0.004
    member = at(member="shop-postgres-1")
    assert found[("pulsebase_postgres_replication_lag_bytes", member)] == 1024
    assert found[("pulsebase_postgres_replication_lag_seconds", member)] == 0.5
    assert found[("pulsebase_redis_cache_hit_ratio", at())] == 0.75
    types = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert types["pulsebase_redis_evicted_keys"] == "counter"
    assert found[("pulsebase_redis_evicted_keys_total", at())] == 3
    assert found[("pulsebase_volume_used_bytes", at(volume="postgres"))] == 2_000_000
    assert found[("pulsebase_volume_capacity_bytes", at(volume="postgres"))] == 10_000_000
    versioning = "pulsebase_objectstorage_bucket_versioning_enabled"
    assert found[(versioning, at(bucket="shop-assets"))] == 1
    assert found[(versioning, at(bucket="b"))] == 0


def test_a_value_not_measured_is_absent_rather_than_zero() -> None:
    store = health.HealthStore()
    store.update(namespace="prod", name="shop", ready=True, health=HEALTH)
    text = scrape(store)

    assert "pulsebase_postgres_query_p95_seconds{" not in text
    assert "pulsebase_redis_memory_used_bytes{" not in text


def test_forgetting_a_pulsebase_removes_every_series_of_it() -> None:
    store = health.HealthStore()
    store.update(namespace="prod", name="shop", ready=True, health=HEALTH)
    store.update(namespace="prod", name="blog", ready=False, health={})
    store.forget(namespace="prod", name="shop")
    text = scrape(store)

    assert 'pulsebase="shop"' not in text
    assert 'pulsebase_ready{namespace="prod",pulsebase="blog"} 0.0' in text


def test_every_family_follows_the_naming_conventions() -> None:
    for series in health.SERIES:
        assert series.name.startswith("pulsebase_")
        assert series.counter == series.name.endswith("_total"), series.name


BACKUP = {
    "lastFull": "2026-12-03T01:00:08Z",
    "lastIncremental": "2026-12-04T09:30:04Z",
    "lastConfiguration": "2026-12-04T08:12:00Z",
    "lastSuccessful": "2026-12-04T09:30:04Z",
    "recoveryPointExposureSeconds": 40,
    "counts": {"daily": 2, "weekly": 1, "full": 2, "incr": 5},
    "lastDrill": {
        "job": "shop-drill-29001",
        "succeeded": True,
        "finished": "2026-11-29T05:03:10Z",
        "recoveryTimeSeconds": 190.0,
        "recoveryPointSeconds": 12.0,
    },
}


def test_status_backup_becomes_backup_and_drill_series() -> None:
    store = health.HealthStore()
    store.update(namespace="prod", name="shop", ready=True, health={}, backup=BACKUP)
    found = samples(scrape(store))

    last = "pulsebase_backup_last_success_timestamp_seconds"
    assert found[(last, at(kind="full"))] == 1796259608
    assert found[(last, at(kind="incr"))] == 1796376604
    assert found[(last, at(kind="configuration"))] == 1796371920
    assert (last, at(kind="vector-tables")) not in found  # none taken yet
    assert found[("pulsebase_backup_rpo_exposure_seconds", at())] == 40
    assert found[("pulsebase_backup_sets", at(tier="daily"))] == 2
    assert found[("pulsebase_backup_sets", at(tier="incr"))] == 5
    assert found[("pulsebase_drill_succeeded", at())] == 1
    assert found[("pulsebase_drill_last_success_timestamp_seconds", at())] == 1795928590
    assert found[("pulsebase_drill_recovery_time_seconds", at())] == 190
    assert found[("pulsebase_drill_recovery_point_seconds", at())] == 12


def test_a_failed_drill_has_no_success_time() -> None:
    failed = {**BACKUP, "lastDrill": {"job": "shop-drill-2", "succeeded": False}}
    store = health.HealthStore()
    store.update(namespace="prod", name="shop", ready=True, health={}, backup=failed)
    found = samples(scrape(store))
    assert found[("pulsebase_drill_succeeded", at())] == 0
    assert ("pulsebase_drill_last_success_timestamp_seconds", at()) not in found


def test_the_exposure_grows_from_the_newest_wal_known_even_without_new_readings() -> None:
    now = [1796376604.0]
    store = health.HealthStore(clock=lambda: now[0])
    store.update(
        namespace="prod", name="shop", ready=True, health={}, backup=BACKUP, newest_wal=now[0] - 40
    )
    exposure = ("pulsebase_backup_rpo_exposure_seconds", at())
    assert samples(scrape(store))[exposure] == 40
    # The bucket cannot be read for 20 minutes: passes bring no WAL time, the age grows.
    now[0] += 1200
    store.update(namespace="prod", name="shop", ready=True, health={}, backup=BACKUP)
    assert samples(scrape(store))[exposure] == 1240
    store.forget(namespace="prod", name="shop")
    assert exposure not in samples(scrape(store))
