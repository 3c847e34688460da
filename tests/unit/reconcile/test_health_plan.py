"""Which dependencies a probe round reaches, with which credentials, and how the
readings turn into what status shows."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import cast

from pulsebase_operator import probes
from pulsebase_operator.api import models
from pulsebase_operator.kube.client import Kube
from pulsebase_operator.reconcile import health
from tests.unit.render.examples import (
    EXTERNAL_OBJECT_STORAGE,
    EXTERNAL_POSTGRES,
    EXTERNAL_REDIS,
    pulsebase,
)

SECRETS = {
    ("rds", "user"): "shop",
    ("rds", "pass"): "s3cret-db",
    ("elasticache", "token"): "s3cret-cache",
    ("aws", "id"): "AKIAEXAMPLE",
    ("aws", "secret"): "s3cret-key",
    ("shop-postgres-superuser", "password"): "super",
    ("shop-postgres-app", "database"): "pulsebase",
    ("shop-redis-auth", "password"): "cache",
    ("shop-objectstore-keys", "access-key-id"): "id",
    ("shop-objectstore-keys", "secret-access-key"): "key",
    ("shop-objectstore-tls", "ca.crt"): "-----BEGIN CERTIFICATE-----\nMIIB\n",
}


def reader(missing: frozenset[tuple[str, str]] = frozenset()) -> health.SecretReader:
    def read(name: str, key: str) -> str | None:
        return None if (name, key) in missing else SECRETS.get((name, key))

    return read


def external_stack() -> models.PulseBase:
    return pulsebase(
        postgres=EXTERNAL_POSTGRES,
        redis=EXTERNAL_REDIS,
        objectStorage=EXTERNAL_OBJECT_STORAGE,
    )


def test_external_dependencies_are_probed_with_the_credentials_the_spec_names() -> None:
    plan = health.plan(external_stack(), scope=health.Scope.EXTERNAL, secret=reader())

    postgres = plan.targets["postgres"]
    assert isinstance(postgres, probes.PostgresTarget)
    assert (postgres.host, postgres.port, postgres.database) == ("db.example.com", 6432, "shopdb")
    assert (postgres.user, postgres.password, postgres.sslmode) == (
        "shop",
        "s3cret-db",
        "verify-full",
    )
    redis = plan.targets["redis"]
    assert isinstance(redis, probes.RedisTarget)
    assert redis.endpoints == (("cache-1.example.com", 6380), ("cache-2.example.com", 6380))
    assert redis.tls and redis.password == "s3cret-cache"
    assert "objectStorage" in plan.targets
    # The API runs in the cluster, which --probes=external does not reach.
    assert "api" not in plan.targets and "api" in plan.skipped


def test_an_external_ipv6_database_is_probed_at_the_address_without_brackets() -> None:
    ipv6 = {**EXTERNAL_POSTGRES, "external": {**EXTERNAL_POSTGRES["external"], "host": "[::1]"}}
    pb = pulsebase(postgres=ipv6)
    target = health.plan(pb, scope=health.Scope.EXTERNAL, secret=reader()).targets["postgres"]
    assert isinstance(target, probes.PostgresTarget)
    assert target.host == "::1"


def test_an_external_redis_at_an_ipv6_address_is_probed_there() -> None:
    ipv6 = {
        **EXTERNAL_REDIS,
        "external": {**EXTERNAL_REDIS["external"], "endpoints": ["[::1]:6379"]},
    }
    target = health.plan(
        pulsebase(redis=ipv6), scope=health.Scope.EXTERNAL, secret=reader()
    ).targets["redis"]
    assert isinstance(target, probes.RedisTarget)
    assert target.endpoints == (("::1", 6379),)


def test_the_managed_object_storage_waits_for_its_ca() -> None:
    missing = frozenset({("shop-objectstore-tls", "ca.crt")})
    plan = health.plan(pulsebase(), scope=health.Scope.ALL, secret=reader(missing))
    assert "objectStorage" not in plan.targets
    assert "shop-objectstore-tls" in plan.skipped["objectStorage"]


def test_an_external_object_storage_uses_the_system_trust_store() -> None:
    pb = pulsebase(objectStorage=EXTERNAL_OBJECT_STORAGE)
    target = health.plan(pb, scope=health.Scope.EXTERNAL, secret=reader()).targets
    storage = target["objectStorage"]
    assert isinstance(storage, probes.ObjectStoreTarget) and storage.verify_tls is True


def test_an_external_ca_bundle_is_what_the_probe_verifies_with() -> None:
    external = {**EXTERNAL_OBJECT_STORAGE["external"], "caBundle": {"name": "corp", "key": "ca"}}
    pb = pulsebase(objectStorage={**EXTERNAL_OBJECT_STORAGE, "external": external})
    secrets = {**SECRETS, ("corp", "ca"): "corporate CA"}
    plan = health.plan(pb, scope=health.Scope.EXTERNAL, secret=lambda n, k: secrets.get((n, k)))
    storage = plan.targets["objectStorage"]
    assert isinstance(storage, probes.ObjectStoreTarget) and isinstance(storage.verify_tls, str)
    assert Path(storage.verify_tls).read_text() == "corporate CA"
    missing = health.plan(pb, scope=health.Scope.EXTERNAL, secret=reader())
    assert "corp" in missing.skipped["objectStorage"]


def test_ca_bundles_are_written_once_per_content() -> None:
    first = health.ca_bundle("one")
    assert health.ca_bundle("one") == first
    assert health.ca_bundle("two") != first
    assert Path(health.ca_bundle("two")).read_text() == "two"


def test_managed_dependencies_are_skipped_with_a_reason_under_external_scope() -> None:
    plan = health.plan(pulsebase(), scope=health.Scope.EXTERNAL, secret=reader())
    assert plan.targets == {}
    assert set(plan.skipped) == {"postgres", "redis", "objectStorage", "api"}
    assert "--probes=external" in plan.skipped["postgres"]


def test_managed_dependencies_are_probed_through_their_services_under_all() -> None:
    plan = health.plan(pulsebase(), scope=health.Scope.ALL, secret=reader())
    postgres = plan.targets["postgres"]
    assert isinstance(postgres, probes.PostgresTarget)
    assert postgres.host == "shop-postgres-rw.prod.svc" and postgres.user == "postgres"
    assert postgres.volume_bytes == 10 * 2**30  # the default 10Gi volume
    storage = plan.targets["objectStorage"]
    assert isinstance(storage, probes.ObjectStoreTarget)
    assert storage.buckets == ("shop-assets", "shop-backups")
    assert storage.backups_bucket == "shop-backups"
    assert storage.endpoint == "https://shop-objectstore.prod.svc:8333"
    # boto3 verifies the managed endpoint against the CA from the Secret, written to a file.
    assert isinstance(storage.verify_tls, str)
    assert Path(storage.verify_tls).read_text() == SECRETS[("shop-objectstore-tls", "ca.crt")]
    api = plan.targets["api"]
    assert isinstance(api, probes.HttpTarget) and api.url == "http://shop-api.prod.svc/readyz"


def test_a_missing_credential_is_reported_without_probing_and_names_the_key() -> None:
    plan = health.plan(
        external_stack(), scope=health.Scope.EXTERNAL, secret=reader(frozenset({("rds", "pass")}))
    )
    assert "postgres" not in plan.targets
    assert plan.skipped["postgres"] == (
        "Not probed: Secret rds has no key pass yet (spec.postgres.external.password)."
    )


def test_a_missing_ca_bundle_names_the_field_that_points_at_it() -> None:
    storage = {
        **EXTERNAL_OBJECT_STORAGE,
        "external": {
            **EXTERNAL_OBJECT_STORAGE["external"],
            "caBundle": {"name": "corp-ca", "key": "ca.pem"},
        },
    }
    plan = health.plan(
        pulsebase(objectStorage=storage), scope=health.Scope.EXTERNAL, secret=reader()
    )
    assert plan.skipped["objectStorage"] == (
        "Not probed: Secret corp-ca has no key ca.pem yet (spec.objectStorage.external.caBundle)."
    )


def reading(healthy: bool, *, age_seconds: float = 0) -> probes.Reading:
    at = datetime.datetime(2026, 12, 4, 10, 0, tzinfo=datetime.UTC)
    return probes.Reading(
        component="postgres",
        healthy=healthy,
        reason="Healthy" if healthy else "Unreachable",
        message="PostgreSQL answered." if healthy else "PostgreSQL refused the connection.",
        measured_at=at - datetime.timedelta(seconds=age_seconds),
        values={"latencySeconds": 0.002},
    )


NOW = datetime.datetime(2026, 12, 4, 10, 0, tzinfo=datetime.UTC).timestamp()


def test_readings_become_status_values_with_the_time_measured() -> None:
    found = health.findings(
        readings={"postgres": reading(True)}, skipped={}, now=NOW, interval_seconds=30
    )
    assert found["postgres"].healthy is True
    assert found["postgres"].values == {
        "healthy": True,
        "measuredAt": "2026-12-04T10:00:00Z",
        "latencySeconds": 0.002,
    }


def test_a_stale_reading_is_unknown_rather_than_current() -> None:
    found = health.findings(
        readings={"postgres": reading(False, age_seconds=120)},
        skipped={},
        now=NOW,
        interval_seconds=30,
    )
    assert found["postgres"].healthy is None
    assert found["postgres"].reason == "NoRecentProbe"


def test_the_timeout_always_ends_a_round_before_the_next() -> None:
    assert health.timeout_for(5) == 2.5
    assert health.timeout_for(3600) == health.MAX_TIMEOUT_SECONDS


class SecretsApi:
    """Answers `get` for Secrets as the API server would: values base64-encoded."""

    def __init__(self, secrets: dict[str, dict[str, bytes]]) -> None:
        self.secrets = secrets

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        found = self.secrets.get(name)
        if found is None:
            return None
        return {"data": {k: base64.b64encode(v).decode() for k, v in found.items()}}


def test_a_credential_that_is_not_text_names_its_key_and_the_others_are_still_probed() -> None:
    # Secret data is bytes; a key that is not UTF-8 must not end the whole round.
    api = SecretsApi(
        {
            "rds": {"user": b"shop", "pass": b"pw"},
            "elasticache": {"token": b"t"},
            "aws": {"id": b"AKIAEXAMPLE", "secret": b"\xff\xfe-not-text"},
        }
    )
    read = health.secret_reader(cast(Kube, api), "prod")
    plan = health.plan(external_stack(), scope=health.Scope.EXTERNAL, secret=read)
    assert set(plan.targets) == {"postgres", "redis"}
    assert plan.skipped["objectStorage"] == (
        "Not probed: key secret of Secret aws is not UTF-8 text."
    )
