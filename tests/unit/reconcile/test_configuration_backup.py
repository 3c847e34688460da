"""When a probe round writes the configuration backup, and what it records when it cannot."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from pulsebase_operator import probes
from pulsebase_operator.api import models
from pulsebase_operator.probes import repository
from pulsebase_operator.reconcile import health

NOW = datetime.datetime(2026, 12, 4, 10, 0, tzinfo=datetime.UTC)
TARGET = probes.ObjectStoreTarget(
    endpoint="https://s3.example.com",
    region="eu-west-1",
    access_key_id="AKIAEXAMPLE",
    secret_access_key="hidden-secret",
    buckets=("shop-assets", "shop-backups"),
    backups_bucket="shop-backups",
)


def pulsebase(generation: int, **spec: Any) -> models.PulseBase:
    return models.PulseBase.from_body(
        {
            "metadata": {"name": "shop", "namespace": "prod", "uid": "u", "generation": generation},
            "spec": {"version": "2.4.1", **spec},
        }
    )


class Bucket:
    def __init__(self, generations: set[int], *, refuse: bool = False) -> None:
        self.generations, self.refuse = generations, refuse
        self.written: dict[str, dict[str, Any]] = {}

    def read(self, target: probes.ObjectStoreTarget, *, timeout: float) -> repository.Repository:
        return repository.Repository(
            info=[{"name": "pulsebase", "backup": []}],
            newest_wal=None,
            newest_vector_tables=None,
            newest_configuration=None,
            configuration_generations=frozenset(self.generations),
        )

    def write(
        self, target: probes.ObjectStoreTarget, *, key: str, document: bytes, timeout: float
    ) -> None:
        if self.refuse:
            raise repository.RepositoryError("Could not write: AccessDenied.")
        self.written[key] = json.loads(document)


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Bucket:
    found = Bucket({1})
    monkeypatch.setattr(repository, "read", found.read)
    monkeypatch.setattr(repository, "write_configuration", found.write)
    return found


def observe(pb: models.PulseBase) -> health.Round:
    into = health.Round(readings={}, skipped={}, interval_seconds=30)
    health.observe_backups(pb, target=TARGET, timeout=2, into=into, now=lambda: NOW)
    return into


def test_a_new_generation_is_written_once(bucket: Bucket) -> None:
    found = observe(pulsebase(2))
    assert list(bucket.written) == ["configuration/20261204T100000Z-generation-2.json"]
    assert (
        bucket.written["configuration/20261204T100000Z-generation-2.json"]["metadata"]["generation"]
        == 2
    )
    assert found.backups is not None and found.backups.newest_configuration == NOW
    assert found.configuration_problem is None


def test_a_generation_already_in_the_bucket_is_not_written_again(bucket: Bucket) -> None:
    observe(pulsebase(1))
    assert bucket.written == {}


def test_nothing_is_written_while_backups_are_off(bucket: Bucket) -> None:
    observe(pulsebase(2, backup={"enabled": False}))
    assert bucket.written == {}


def test_a_refused_write_is_recorded_and_the_reading_kept(bucket: Bucket) -> None:
    bucket.refuse = True
    found = observe(pulsebase(2))
    assert found.configuration_problem == (
        "The configuration backup of generation 2 failed: Could not write: AccessDenied."
    )
    assert found.backups is not None and found.backups.newest_configuration is None


def test_an_unreachable_object_storage_is_not_asked_again_for_backups(
    monkeypatch: pytest.MonkeyPatch, bucket: Bucket
) -> None:
    def no_read(*_: Any, **__: Any) -> None:
        raise AssertionError("the bucket was read although the probe had failed")

    down = probes.Reading(
        component="objectStorage",
        healthy=False,
        reason="Unreachable",
        message="Could not reach object storage: connection refused.",
        measured_at=NOW,
        values={},
    )
    monkeypatch.setattr(repository, "read", no_read)
    monkeypatch.setattr(
        health, "plan", lambda *_, **__: health.Plan(targets={"objectStorage": TARGET}, skipped={})
    )
    monkeypatch.setattr(probes, "run", lambda *_, **__: {"objectStorage": down})
    found = health.probe_round(None, pulsebase(2), scope=health.Scope.ALL, previous=None)  # type: ignore[arg-type]
    assert found.backups is None
    assert found.backups_unobservable == (
        "The backups bucket is not read. Could not reach object storage: connection refused."
    )
    assert bucket.written == {}
