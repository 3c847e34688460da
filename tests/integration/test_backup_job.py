"""What the backup Jobs run, with pgBackRest as a local process against the backup bed:
full and incremental backups, retention after a full one, and the streamed upload."""

from __future__ import annotations

import concurrent.futures
import datetime
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pulsebase_operator import backups
from pulsebase_operator.api import models
from pulsebase_operator.backups import job, process
from pulsebase_operator.backups.errors import BackupError
from pulsebase_operator.policy import retention
from pulsebase_operator.reconcile import backup_job
from tests.integration.backupbed import BackupBed, TlsS3Server
from tests.integration.servers import PG_SUPERUSER_PASSWORD


def test_full_then_incremental_then_retention_after_the_next_full(
    backup_bed: BackupBed,
) -> None:
    started = time.monotonic()
    events: list[Mapping[str, Any]] = []
    policy = retention.Policy(daily=1, weekly=0)

    # The stanza Job on a stanza that exists already is a no-op.
    job.run(backup_bed.stanza, kind="stanza", policy=policy, log=events.append)

    first = job.run(backup_bed.stanza, kind="full", policy=policy, log=events.append)
    incremental = job.run(backup_bed.stanza, kind="incr", policy=policy, log=events.append)
    assert first.label is not None and incremental.label is not None
    assert incremental.label.startswith(f"{first.label}_")
    assert incremental.decisions == []  # no retention after an incremental backup
    assert first.expired == []  # one full backup: nothing to expire yet

    # Tomorrow's full backup: yesterday's full and its incremental leave the one-day
    # window and are expired. The clock is moved, not the backups.
    tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    events.clear()
    second = job.run(
        backup_bed.stanza, kind="full", policy=policy, log=events.append, now=lambda: tomorrow
    )
    by_label = {d.label: d for d in second.decisions}
    assert by_label[first.label].action == "expire"
    assert by_label[incremental.label].action == "expire"
    assert by_label[second.label].action == "keep"
    # Newest first, so the incremental goes before the full backup it builds on.
    assert second.expired == [incremental.label, first.label]

    # pgBackRest's own catalog agrees: only the new full backup is left.
    catalog = backups.info(backup_bed.stanza)
    assert [entry["label"] for entry in catalog["backup"]] == [second.label]
    # And the WAL from before it is expired: the archive starts where the backup did.
    (archive,) = catalog["archive"]
    assert archive["min"] == catalog["backup"][0]["archive"]["start"]

    # A full backup makes sure of the stanza first; then each decision is logged with
    # its reason, then each expiry.
    assert [e["event"] for e in events][:2] == ["stanza ready", "backup taken"]
    decisions = [e for e in events if e["event"] == "retention decision"]
    assert {e["label"] for e in decisions} == {first.label, incremental.label, second.label}
    assert all(e["reason"] for e in decisions)
    expired = [e["label"] for e in events if e["event"] == "backup expired"]
    assert expired == second.expired
    assert {"event": "archive expired", "fullBackupsWithUnbrokenWal": 1} in events
    seconds = {e["event"]: e["seconds"] for e in events if "seconds" in e}
    print(
        f"\nstanza check {seconds['stanza ready']} s, full backup with the catalog reads"
        f" {seconds['backup taken']} s; whole test {time.monotonic() - started:.1f} s"
    )


def test_backups_list_shows_every_set_of_the_real_catalog_with_its_decision(
    backup_bed: BackupBed,
) -> None:
    policy = retention.Policy(daily=1, weekly=0)
    first = job.run(backup_bed.stanza, kind="full", policy=policy, log=lambda _: None)
    incremental = job.run(backup_bed.stanza, kind="incr", policy=policy, log=lambda _: None)
    entry = backups.info(backup_bed.stanza)

    rows = backup_job.catalog_rows(entry, policy=policy)
    assert [(r["label"], r["type"], r["action"]) for r in rows] == [
        (first.label, "full", "keep"),
        (incremental.label, "incr", "keep"),
    ]
    assert all(r["reason"] and r["sizeBytes"] > 0 and not r["failed"] for r in rows)
    # Out of the one-day window, the newest full set and its chain are still kept.
    later = backup_job.catalog_rows(
        entry, policy=policy, now=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
    )
    assert [r["action"] for r in later] == ["keep", "keep"]
    table = backup_job.format_rows(rows).splitlines()
    assert table[0].split() == ["LABEL", "TYPE", "STOPPED", "SIZE", "ACTION", "REASON"]
    assert table[1].startswith(str(first.label)) and " full " in table[1]
    assert [e["label"] for e in backups.info(backup_bed.stanza)["backup"]] == [
        first.label,
        incremental.label,
    ]


def test_an_expiry_that_fails_after_a_good_backup_is_a_retention_error(
    backup_bed: BackupBed,
) -> None:
    policy = retention.Policy(daily=1, weekly=0)
    first = job.run(backup_bed.stanza, kind="full", policy=policy, log=lambda _: None)
    assert first.label is not None

    # A runner that runs everything but refuses expire: the backup stands, retention fails.
    def refusing(
        args: Sequence[str], *, step: str, env: Mapping[str, str], timeout: float
    ) -> process.Result:
        if "expire" in args:
            return process.Finished(returncode=1, out="", err="ERROR: [099]: expire refused\n")
        return process.run(
            args,
            step=step,
            env=env,
            timeout=timeout,
            user=backup_bed.stanza.run_as,
            group=_gid(backup_bed.stanza.run_as),
        )

    stanza = backups.Stanza(
        name=backup_bed.stanza.name, config=backup_bed.stanza.config, runner=refusing
    )
    tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    with pytest.raises(job.RetentionError) as raised:
        job.run(stanza, kind="full", policy=policy, log=lambda _: None, now=lambda: tomorrow)
    assert raised.value.step.startswith("retention after ")
    assert "ERROR: [099]: expire refused" in raised.value.reason
    labels = [entry["label"] for entry in backups.info(backup_bed.stanza)["backup"]]
    assert len(labels) == 2 and labels[0] == first.label


def test_a_streamed_upload_lands_whole_and_a_failed_one_leaves_nothing(
    s3_tls_server: TlsS3Server,
) -> None:
    client = s3_tls_server.client()
    bucket = "streamed"
    client.create_bucket(Bucket=bucket)
    # More than one multipart part (8 MB), in chunks the size an exec stream delivers.
    payload = os.urandom(64 * 1024) * 200

    def whole(sink: Any) -> None:
        for start in range(0, len(payload), 64 * 1024):
            sink(payload[start : start + 64 * 1024])

    backup_job.stream_into(client, bucket=bucket, key="vector-tables/a.dump", produce=whole)
    body = client.get_object(Bucket=bucket, Key="vector-tables/a.dump")["Body"].read()
    assert body == payload

    def failing(sink: Any) -> None:
        whole(sink)
        raise BackupError(step="dump vector tables", reason="pg_dump: error: query failed")

    with pytest.raises(BackupError) as raised:
        backup_job.stream_into(client, bucket=bucket, key="vector-tables/b.dump", produce=failing)
    assert raised.value.step == "dump vector tables"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["vector-tables/a.dump"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # The upload failing on its own (no such bucket) is the error reported; the producer
    # stops instead of waiting for a reader forever.
    with pytest.raises(BackupError) as raised:
        backup_job.stream_into(client, bucket="no-such-bucket", key="x.dump", produce=whole)
    assert raised.value.step == "upload vector tables"
    assert "NoSuchBucket" in raised.value.reason
    assert not [t for t in threading.enumerate() if t.name == "pg_dump"]


def _gid(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid


class LocalPrimary:
    """The exec transport, replaced by a local process: pg_dump of the pgvector server,
    its stdout handed on in chunks as the exec stream hands them."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.commands: list[list[str]] = []

    def stream(
        self, args: Sequence[str], *, step: str, timeout: float, on_stdout: Any
    ) -> tuple[int, str]:
        command = [str(self.server.bindir / "pg_dump"), *args[1:]]
        self.commands.append(command)
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PGPASSWORD": PG_SUPERUSER_PASSWORD},
        )
        assert child.stdout is not None and child.stderr is not None
        for chunk in iter(lambda: child.stdout.read(64 * 1024), b""):  # type: ignore[union-attr]
            on_stdout(chunk)
        err = child.stderr.read().decode()
        return child.wait(timeout=timeout), err


def test_the_vector_job_streams_a_dump_that_restores_and_uploads_nothing_on_failure(
    pgvector_server: Any, s3_tls_server: TlsS3Server, tmp_path: Any
) -> None:
    from tests.integration.test_vectors import ROWS, add_embeddings, new_database, run_tool

    db = new_database(pgvector_server)
    db.execute("CREATE EXTENSION vector")
    fresh = new_database(pgvector_server)
    client = s3_tls_server.client()
    pb = models.PulseBase.from_body(
        {
            "metadata": {"name": f"v{uuid.uuid4().hex[:8]}", "namespace": "prod"},
            "spec": {"version": "2.4.1"},
        }
    )
    bucket = f"{pb.metadata.name}-backups"
    client.create_bucket(Bucket=bucket)
    connection_args = [
        "--host=127.0.0.1",
        f"--port={pgvector_server.port}",
        "--username=postgres",
        f"--dbname={db.name}",
    ]
    events: list[Mapping[str, Any]] = []
    try:
        # No vector table yet: nothing is uploaded, and the job says so.
        primary = LocalPrimary(pgvector_server)
        nothing = backup_job.dump_to_bucket(
            pb,
            in_primary=primary,  # type: ignore[arg-type]
            emit=events.append,
            s3=client,
            conn_params=db.params(),
            connection_args=connection_args,
        )
        assert nothing is None and primary.commands == []
        assert events[-1]["event"] == "no vector tables"
        assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

        add_embeddings(db)
        # A dump from two years before is past the weekly window; the note beside it is
        # no dump, and stays.
        old_dump, note = "vector-tables/20241201T030000Z.dump", "vector-tables/README.txt"
        for seeded in (old_dump, note):
            client.put_object(Bucket=bucket, Key=seeded, Body=b"seeded")
        # 03:00:07 UTC, given in another offset: the key is in UTC whatever the clock's.
        moment = datetime.datetime(
            2026, 12, 4, 6, 0, 7, tzinfo=datetime.timezone(datetime.timedelta(hours=3))
        )
        key = backup_job.dump_to_bucket(
            pb,
            in_primary=primary,  # type: ignore[arg-type]
            emit=events.append,
            s3=client,
            now=moment,
            conn_params=db.params(),
            connection_args=connection_args,
        )
        assert key == "vector-tables/20261204T030007Z.dump"
        assert {"event": "dump expired", "key": old_dump} in events
        assert all(e.get("label") != note for e in events)
        # The same arguments as dump_vector_tables, to stdout.
        (command,) = primary.commands
        assert "--format=custom" in command and "--extension=vector" in command
        assert not any(arg.startswith("--file") for arg in command)
        dump = tmp_path / "from-bucket.dump"
        dump.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())

        fresh.execute("CREATE SCHEMA media")
        run_tool(
            pgvector_server,
            "pg_restore",
            "--exit-on-error",
            "--no-owner",
            "-d",
            fresh.name,
            str(dump),
        )
        for count in ("SELECT count(*) FROM docs", 'SELECT count(*) FROM media."Images"'):
            assert fresh.execute(count) == [(ROWS,)]
        query = "SELECT id, embedding::text FROM docs ORDER BY id"
        assert fresh.execute(query) == db.execute(query)

        # pg_dump failing (a database that is not there) leaves no object behind.
        broken = [*connection_args[:-1], "--dbname=no_such_database"]
        with pytest.raises(BackupError) as raised:
            backup_job.dump_to_bucket(
                pb,
                in_primary=primary,  # type: ignore[arg-type]
                emit=events.append,
                s3=client,
                now=moment + datetime.timedelta(hours=1),
                conn_params=db.params(),
                connection_args=broken,
            )
        assert raised.value.step == "dump vector tables"
        assert "no_such_database" in raised.value.reason
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert keys == [key, note]
    finally:
        for database in (db, fresh):
            pgvector_server.execute(f"DROP DATABASE {database.name} WITH (FORCE)")


def test_vector_dumps_keep_one_a_day_then_one_a_week_and_nothing_else_is_touched(
    s3_tls_server: TlsS3Server,
) -> None:
    client = s3_tls_server.client()
    bucket = f"dumps-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    now = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
    # Eight dumps a day for 150 days: more than a page of keys and a DeleteObjects batch.
    stamps = [
        now - datetime.timedelta(days=day, hours=1 + hour)
        for day in range(150)
        for hour in range(0, 24, 3)
    ]
    dumps = {f"vector-tables/{at:%Y%m%dT%H%M%SZ}.dump": at for at in stamps}
    foreign = ["vector-tables/README.txt", "vector-tables/20261399T000000Z.dump", "other.dump"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"d"), [*dumps, *foreign]
            )
        )
    policy = retention.Policy(daily=30, weekly=8)

    events: list[Mapping[str, Any]] = []
    expired = backup_job.expire_dumps(
        client, bucket=bucket, policy=policy, now=now, emit=events.append
    )
    left = set(_keys(client, bucket))
    assert set(foreign) <= left
    kept = {dumps[k] for k in left - set(foreign)}
    assert len(expired) == len(dumps) - len(kept) and not left & set(expired)
    # The newest dump of each of the last 30 days, then at most one per older ISO week.
    recent = sorted(at for at in kept if (now.date() - at.date()).days < 30)
    assert len(recent) == 30 and len({at.date() for at in recent}) == 30
    assert all(at == max(s for s in stamps if s.date() == at.date()) for at in recent)
    older = [at for at in kept if at not in recent]
    assert 1 <= len(older) <= 8 and len({at.isocalendar()[:2] for at in older}) == len(older)
    assert min(stamps) not in kept
    decided = [e for e in events if e["event"] == "retention decision"]
    assert len(decided) == len(dumps) and all(e["tier"] == "vector-tables" for e in decided)

    # Planned again, nothing more goes.
    assert (
        backup_job.expire_dumps(client, bucket=bucket, policy=policy, now=now, emit=events.append)
        == []
    )
    assert set(_keys(client, bucket)) == left

    # A bucket that is gone: the step is named; the caller's dump stands.
    with pytest.raises(job.RetentionError) as raised:
        backup_job.expire_dumps(
            client, bucket=f"{bucket}-gone", policy=policy, now=now, emit=events.append
        )
    assert raised.value.step == "expire vector-table dumps"
    assert "NoSuchBucket" in raised.value.reason


def _keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]
