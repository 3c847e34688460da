"""Physical backups with pgBackRest against a real PostgreSQL 15 and S3 over TLS: what a
user checks after a backup, a restore and an expiry."""

from __future__ import annotations

import datetime
import re
import threading
import time
from typing import Any

import pytest

from pulsebase_operator import backups
from pulsebase_operator.policy import backups as backup_policy
from pulsebase_operator.policy import retention
from tests.integration.backupbed import BackupBed
from tests.integration.servers import S3_ACCESS_KEY, S3_SECRET_KEY, Postgres, wait_until

TICK = 0.1  # seconds between the writer's rows: room for a target time between two


class Writer:
    """Inserts a row stamped with the server's clock every TICK seconds, until stopped."""

    def __init__(self, server: Postgres) -> None:
        self.server = server
        self.stop_event = threading.Event()
        self.failure: BaseException | None = None
        server.execute(
            "CREATE TABLE ticks (id bigserial PRIMARY KEY,"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        self.thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        try:
            with self.server.connect() as conn:
                while not self.stop_event.wait(TICK):
                    conn.execute("INSERT INTO ticks DEFAULT VALUES")
        except BaseException as error:
            self.failure = error

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
        assert self.failure is None, f"the writer failed: {self.failure!r}"


def rows(server: Postgres) -> list[tuple[int, datetime.datetime]]:
    return [(int(r[0]), r[1]) for r in server.execute("SELECT id, at FROM ticks ORDER BY id")]


def archive_segments(bed: BackupBed) -> list[str]:
    """The WAL segments in the repository's archive, by name, oldest first."""
    names = (key.rsplit("/", 1)[1] for key in bed.repo_keys() if "/archive/" in key)
    return sorted({name[:24] for name in names if re.fullmatch(r"[0-9A-F]{24}-.*", name)})


def segment_range(first: str, last: str) -> list[str]:
    """Every segment name from first to last (16 MB segments: 256 per log file)."""
    timeline, start, end = first[:8], int(first[8:], 16), int(last[8:], 16)
    return [
        f"{timeline}{n >> 8 << 32 | (n & 0xFF):016X}"
        for n in range(start >> 32 << 8 | (start & 0xFF), (end >> 32 << 8 | (end & 0xFF)) + 1)
    ]


def archive_everything(server: Postgres) -> None:
    """Close the current WAL segment and wait until archive_command has pushed it."""
    segment = server.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_until(
        lambda: bool(
            server.execute(
                "SELECT 1 FROM pg_stat_archiver WHERE last_archived_wal >= %s", [segment]
            )
        ),
        f"WAL segment {segment} to be archived",
    )


def start_restored(server: Postgres) -> None:
    server.start()
    # Connections open while WAL still replays (hot standby); the copy is the restored
    # database only once it has been promoted.
    wait_until(
        lambda: server.execute("SELECT pg_is_in_recovery()")[0][0] is False,
        f"{server.name} to finish recovery",
        timeout=120,
    )


def labels(info: dict[str, Any]) -> list[str]:
    return [entry["label"] for entry in info.get("backup") or []]


def test_point_in_time_restore_has_exactly_the_rows_before_the_target(
    backup_bed: BackupBed,
) -> None:
    source, stanza = backup_bed.primary, backup_bed.stanza
    with Writer(source):
        time.sleep(1)
        started = time.monotonic()
        full = backups.backup(stanza, kind="full")
        full_seconds = time.monotonic() - started
        time.sleep(1)
        started = time.monotonic()
        incr = backups.backup(stanza, kind="incr")
        incr_seconds = time.monotonic() - started
        time.sleep(1.5)
        written = rows(source)
        time.sleep(1)
    archive_everything(source)

    # A target between two rows written after the incremental backup finished, so the
    # restore needs that backup, its full one and the WAL after both.
    catalog = backups.info(stanza)
    assert labels(catalog) == [full, incr]
    incr_stopped = datetime.datetime.fromtimestamp(
        catalog["backup"][1]["timestamp"]["stop"], tz=datetime.UTC
    )
    after = [(i, at) for i, at in written if at > incr_stopped + datetime.timedelta(seconds=0.3)]
    (_, before_at), (_, after_at) = after[0], after[1]
    target = before_at + (after_at - before_at) / 2
    expected = [i for i, at in rows(source) if at < target]
    assert len(expected) < len(rows(source)), "rows after the target, or the test proves nothing"

    copy = backup_bed.restored()
    try:
        started = time.monotonic()
        backups.restore(stanza, data_dir=copy.data, target_time=target)
        start_restored(copy)
        restore_seconds = time.monotonic() - started

        assert [i for i, _ in rows(copy)] == expected
        # The copy is open for writes and does not archive into the source's stanza.
        copy.execute("INSERT INTO ticks DEFAULT VALUES")
        assert copy.execute("SHOW archive_mode")[0][0] == "off"
    finally:
        copy.remove()

    # The source was never touched: still the primary, still taking writes, all rows kept.
    assert source.execute("SELECT pg_is_in_recovery()")[0][0] is False
    assert rows(source)[: len(written)] == written
    size = catalog["backup"][0]["info"]["size"]
    print(
        f"\nfull backup {full_seconds:.1f} s, incremental {incr_seconds:.1f} s,"
        f" restore to a time and promote {restore_seconds:.1f} s,"
        f" database {size / 1e6:.1f} MB, {len(expected)} rows restored"
    )


def test_the_reach_status_gives_is_the_earliest_target_pgbackrest_restores(
    backup_bed: BackupBed,
) -> None:
    source, stanza = backup_bed.primary, backup_bed.stanza
    with Writer(source):
        time.sleep(1)
        backups.backup(stanza, kind="full")
        time.sleep(2.5)
    archive_everything(source)
    sets = retention.backups_from_info([backups.info(stanza)])
    reach = backup_policy.earliest_target(sets)
    assert reach == sets[0].stopped + datetime.timedelta(seconds=1)

    # Inside the second the set stopped in, pgBackRest finds no set to start from.
    copy = backup_bed.restored()
    try:
        inside = reach - datetime.timedelta(seconds=0.5)
        with pytest.raises(backups.BackupError) as caught:
            backups.restore(stanza, data_dir=copy.data, target_time=inside)
    finally:
        copy.remove()
    assert caught.value.step == "restore"
    assert "unable to find backup set with stop time less than" in caught.value.reason

    # At the reach it restores, and the copy holds the rows written up to it.
    copy = backup_bed.restored()
    try:
        backups.restore(stanza, data_dir=copy.data, target_time=reach)
        start_restored(copy)
        restored = rows(copy)
    finally:
        copy.remove()
    written = rows(source)
    # Each row is stamped when inserted and counts when committed, a moment later.
    settled = reach - datetime.timedelta(seconds=0.05)
    assert {i for i, at in written if at < settled} <= {i for i, _ in restored}
    assert all(at < reach for _, at in restored)
    assert len(restored) < len(written)


def test_expiry_follows_the_retention_policy_and_pgbackrest_agrees(
    backup_bed: BackupBed,
) -> None:
    stanza = backup_bed.stanza
    oldest = backups.backup(stanza, kind="full")
    chained = backups.backup(stanza, kind="full")
    incremental = backups.backup(stanza, kind="incr")
    newest = backups.backup(stanza, kind="full")
    assert incremental.startswith(f"{chained}_")

    # One day of fulls, no weeks: today's newest full stays, the incremental stays as
    # it is within the day, so does the full it builds on; the oldest full goes.
    policy = retention.Policy(daily=1, weekly=0)
    now = datetime.datetime.now(tz=datetime.UTC)
    decisions = backups.apply_retention(stanza, policy=policy, now=now)

    assert {d.label for d in decisions if d.action == "expire"} == {oldest}
    remaining = backups.info(stanza)
    assert labels(remaining) == [chained, incremental, newest]
    kept_incremental = remaining["backup"][1]
    assert kept_incremental["prior"] == chained
    assert kept_incremental["reference"] == [chained]
    assert not any(
        key.startswith(f"pgbackrest/backup/pulsebase/{oldest}/") for key in backup_bed.repo_keys()
    )
    # WAL from before the oldest kept backup is gone too; from it on, none is missing.
    (archive,) = remaining["archive"]
    assert archive["min"] == remaining["backup"][0]["archive"]["start"]
    assert archive_segments(backup_bed) == segment_range(archive["min"], archive["max"])

    # Planning again on what is left expires nothing more.
    again = backups.apply_retention(stanza, policy=policy, now=now)
    assert [d.action for d in again] == ["keep", "keep", "keep"]
    assert labels(backups.info(stanza)) == [chained, incremental, newest]


def test_restore_from_a_damaged_backup_fails_and_says_which_file(
    backup_bed: BackupBed,
) -> None:
    stanza = backup_bed.stanza
    full = backups.backup(stanza, kind="full")
    missing = f"pgbackrest/backup/pulsebase/{full}/pg_data/PG_VERSION"
    assert missing in backup_bed.repo_keys()
    backup_bed.s3.client().delete_object(Bucket=backup_bed.bucket, Key=missing)

    copy = backup_bed.restored()
    try:
        with pytest.raises(backups.BackupError) as caught:
            backups.restore(stanza, data_dir=copy.data)
    finally:
        copy.remove()

    error = caught.value
    assert error.step == "restore"
    assert "PG_VERSION" in error.reason
    assert "missing" in error.reason
    for secret in (S3_ACCESS_KEY, S3_SECRET_KEY):
        assert secret not in str(error)
