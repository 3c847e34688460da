"""What the backup Jobs run, with pgBackRest as a local process against the backup bed:
full and incremental backups, retention after a full one, and the streamed upload."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pulsebase_operator import backups
from pulsebase_operator.backups import job, process
from pulsebase_operator.backups.errors import BackupError
from pulsebase_operator.policy import retention
from pulsebase_operator.reconcile import backup_job
from tests.integration.backupbed import BackupBed, TlsS3Server


def test_full_then_incremental_then_retention_after_the_next_full(
    backup_bed: BackupBed,
) -> None:
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
    remaining = [entry["label"] for entry in backups.info(backup_bed.stanza)["backup"]]
    assert remaining == [second.label]

    # Each decision is logged with its reason, then each expiry.
    decisions = [e for e in events if e["event"] == "retention decision"]
    assert {e["label"] for e in decisions} == {first.label, incremental.label, second.label}
    assert all(e["reason"] for e in decisions)
    expired = [e["label"] for e in events if e["event"] == "backup expired"]
    assert expired == second.expired


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


def _gid(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid
