"""The object storage probe against moto's S3 server."""

from __future__ import annotations

import time
import uuid

import pytest

from pulsebase_operator.probes import Reading, objectstore
from tests.integration.servers import S3_SECRET_KEY, MotoServer

TIMEOUT = 2.0


def unique(name: str) -> str:
    # One server serves the whole run; every test makes buckets of its own.
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_buckets_are_reachable_with_their_versioning_state(s3_server: MotoServer) -> None:
    client = s3_server.client()
    plain, versioned, suspended = unique("plain"), unique("versioned"), unique("suspended")
    for bucket in (plain, versioned, suspended):
        client.create_bucket(Bucket=bucket)
    for bucket, status in (
        (versioned, "Enabled"),
        (suspended, "Enabled"),
        (suspended, "Suspended"),
    ):
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})

    reading = objectstore.probe(
        s3_server.target(buckets=(plain, versioned, suspended)), timeout=TIMEOUT
    )

    assert (reading.healthy, reading.reason) == (True, "Healthy")
    assert reading.values["buckets"] == {
        plain: {"reachable": True, "versioning": "Disabled"},
        versioned: {"reachable": True, "versioning": "Enabled"},
        suspended: {"reachable": True, "versioning": "Suspended"},
    }
    assert reading.values["latencySeconds"] > 0
    assert reading.values["newestBackupAgeSeconds"] is None  # no backups bucket given


def test_the_newest_backup_gives_the_backup_age(s3_server: MotoServer) -> None:
    client = s3_server.client()
    backups = unique("backups")
    client.create_bucket(Bucket=backups)
    target = s3_server.target(buckets=(), backups_bucket=backups)

    empty = objectstore.probe(target, timeout=TIMEOUT)
    client.put_object(Bucket=backups, Key="full/20261204-010000F/backup.manifest", Body=b"{}")
    stored = objectstore.probe(target, timeout=TIMEOUT)

    assert empty.healthy and empty.values["newestBackupAgeSeconds"] is None
    assert "no backup yet" in empty.message
    assert stored.healthy
    assert list(stored.values["buckets"]) == [backups]  # checked though not listed in buckets
    assert 0 <= stored.values["newestBackupAgeSeconds"] < 120


def test_a_long_listing_stops_at_the_page_cap_and_says_so(
    s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_server.client()
    backups = unique("many")
    client.create_bucket(Bucket=backups)
    for number in range(5):
        client.put_object(Bucket=backups, Key=f"wal/{number:08d}", Body=b"x")
    monkeypatch.setattr(objectstore, "LIST_PAGE_SIZE", 2)
    monkeypatch.setattr(objectstore, "MAX_LIST_PAGES", 1)

    reading = objectstore.probe(s3_server.target(backups_bucket=backups), timeout=TIMEOUT)

    assert reading.healthy
    assert reading.values["newestBackupAgeSeconds"] is not None
    assert f"backup age from the first 1 pages of {backups} only" in reading.message


def test_a_missing_bucket_is_named(s3_server: MotoServer) -> None:
    present, absent = unique("present"), unique("absent")
    s3_server.client().create_bucket(Bucket=present)

    reading = objectstore.probe(s3_server.target(buckets=(present, absent)), timeout=TIMEOUT)

    assert (reading.healthy, reading.reason) == (False, "BucketMissing")
    assert reading.values["buckets"][absent] == {"reachable": False, "versioning": None}
    assert reading.values["buckets"][present]["reachable"] is True
    assert absent in reading.message


def test_a_stopped_server_is_unreachable_and_a_restarted_one_healthy_again(
    s3_server_fresh: MotoServer,
) -> None:
    server = s3_server_fresh
    server.client().create_bucket(Bucket="media")
    target = server.target(buckets=("media",))
    healthy = objectstore.probe(target, timeout=TIMEOUT)

    server.stop()
    started = time.monotonic()
    stopped = objectstore.probe(target, timeout=TIMEOUT, previous=healthy)
    took = time.monotonic() - started

    # moto keeps its buckets in memory, so after a restart the bucket is made again, as
    # the operator's bucket job would.
    server.restart()
    server.client().create_bucket(Bucket="media")
    again: Reading = objectstore.probe(target, timeout=TIMEOUT, previous=stopped)

    assert healthy.healthy
    assert (stopped.healthy, stopped.reason) == (False, "Unreachable")
    assert took < TIMEOUT + 3  # refused at once; loose for busy machines
    assert S3_SECRET_KEY not in stopped.message
    assert (again.healthy, again.reason) == (True, "Healthy")
