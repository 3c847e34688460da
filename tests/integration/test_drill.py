"""Restore drills end to end on the backup test bed: the drill ConfigMap's own script
restores the newest backup with pgBackRest, and `pulsebase-operator drill-check` measures
and checks the copy, as the two containers of the drill pod do.

pgBackRest 2.45 does not back up PostgreSQL 16, the only version here with pgvector, so
the vector-index part of the check runs against a physical copy of the pgvector server
made with pg_basebackup and promoted the way a restore is, not against a pgBackRest
restore (docs/backups.md says so too).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pulsebase_operator import backups
from pulsebase_operator.render import drill as rendered
from tests.integration.backupbed import BackupBed
from tests.integration.servers import (
    PG_SUPERUSER_PASSWORD,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    Postgres,
    _group_of,
    _owned_tempdir,
)
from tests.integration.test_backups import Writer, archive_everything, rows
from tests.unit.render.examples import pulsebase

ARCHIVE_TIMEOUT = 300  # seconds; longer than a drill here, so unarchived WAL stays so
DEADLINE = 120.0
QUIET = 3.0


@dataclass
class DrillRun:
    result: dict[str, Any]
    check_returncode: int
    restore_returncode: int
    scratch: Path


def script() -> str:
    """The script exactly as the drill ConfigMap carries it."""
    data: dict[str, str] = rendered.config_map(pulsebase())["data"]
    return data[rendered.SCRIPT_KEY]


@contextlib.contextmanager
def scratch_folder(user: str | None) -> Iterator[Path]:
    folder = _owned_tempdir("pulsebase-drill-", user)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def drill_check(scratch: Path, *extra: str, dbname: str = "postgres") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pulsebase_operator.cli",
            "drill-check",
            f"--scratch={scratch}",
            f"--deadline={DEADLINE:g}",
            f"--dbname={dbname}",
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(check: subprocess.Popen[str]) -> tuple[dict[str, Any], int]:
    out, _ = check.communicate(timeout=DEADLINE + 60)
    lines = out.strip().splitlines()
    assert lines, "drill-check printed nothing"
    assert len(lines[-1].encode()) <= 4096
    return json.loads(lines[-1]), check.returncode


def run_drill(bed: BackupBed, scratch: Path, *extra: str) -> DrillRun:
    """Both containers at once, as in the pod: the script as the database's owner, the
    check as ourselves."""
    user = bed.primary.user
    env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "SCRATCH": str(scratch),
        "CONFIG": str(bed.stanza.config),
        "STANZA": bed.stanza.name,
        "PGBIN": str(bed.primary.bindir),
    }
    restore = subprocess.Popen(
        ["bash", "-c", script()],
        env=env,
        user=user,
        group=_group_of(user),
        start_new_session=True,
        cwd="/",
    )
    try:
        check = drill_check(scratch, *extra)
        result, check_rc = finish(check)
        restore_rc = restore.wait(timeout=120)
    finally:
        # The script's PostgreSQL runs in the script's process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(restore.pid, signal.SIGKILL)
    return DrillRun(result, check_rc, restore_rc, scratch)


def archive_keys(bed: BackupBed) -> list[str]:
    return [key for key in bed.repo_keys() if key.startswith("pgbackrest/archive/")]


def test_drill_restores_the_newest_backup_and_measures_time_and_point(
    backup_bed: BackupBed,
) -> None:
    source, stanza = backup_bed.primary, backup_bed.stanza
    source.execute(f"ALTER SYSTEM SET archive_timeout = '{ARCHIVE_TIMEOUT}s'")
    source.execute("SELECT pg_reload_conf()")
    with Writer(source):
        time.sleep(1)
        backups.backup(stanza, kind="full")
        time.sleep(1)
        incr = backups.backup(stanza, kind="incr")
        time.sleep(1)
    # A quiet spell between the last commit and the segment's push: the recovery point
    # then measures it (S3 stores times to the second, so it reads a little less).
    time.sleep(QUIET)
    archive_everything(source)
    archived = rows(source)
    # Rows in WAL not archived yet: a restore now cannot have them.
    for _ in range(3):
        source.execute("INSERT INTO ticks DEFAULT VALUES")
    before = backups.info(stanza)
    keys_before = set(archive_keys(backup_bed))

    with scratch_folder(source.user) as scratch:
        run = run_drill(backup_bed, scratch, "--marker-table=public.ticks")
        restore_log = (scratch / "restore.log").read_text()

    result = run.result
    assert result["succeeded"] is True, result
    assert run.check_returncode == 0
    assert run.restore_returncode == 0, restore_log
    assert result["failedStep"] is None
    assert result["backupLabel"] == incr
    assert 0 < result["recoveryTimeSeconds"] < DEADLINE
    # The copy holds every archived row and none of the three after them.
    assert result["markerRows"] == len(archived)
    # The segment holding the last archived row was pushed QUIET seconds after it was
    # committed, well within archive_timeout.
    assert QUIET - 1.5 <= result["recoveryPointSeconds"] <= QUIET + 10
    assert result["recoveryPointSeconds"] <= ARCHIVE_TIMEOUT + 10
    assert result["vectorIndexesUsableSeconds"] is None  # PostgreSQL 15 here: no pgvector
    assert result["started"] <= result["finished"]

    # The source was not touched: its catalog is the same, its archive gained only its
    # own timeline's WAL, and it still takes writes as the primary.
    after = backups.info(stanza)
    assert after["backup"] == before["backup"]
    assert after["archive"][0]["min"] == before["archive"][0]["min"]
    assert keys_before <= set(archive_keys(backup_bed))
    # A file name starts with its timeline; the copy's promotion made timeline 2 and
    # its history file, neither of which may be in the source's archive.
    files = [
        key.rsplit("/", 1)[-1]
        for key in archive_keys(backup_bed)
        if not key.rsplit("/", 1)[-1].startswith("archive.info")
    ]
    assert files
    assert [name for name in files if not name.startswith("00000001")] == []
    assert [name for name in files if name.endswith(".history")] == []
    assert source.execute("SELECT pg_is_in_recovery()")[0][0] is False
    print(
        f"\ndrill: recovery {result['recoveryTimeSeconds']} s,"
        f" recovery point {result['recoveryPointSeconds']} s, {result['markerRows']} rows"
    )


def test_drill_from_a_damaged_backup_fails_at_restore_with_the_reason(
    backup_bed: BackupBed,
) -> None:
    stanza = backup_bed.stanza
    backup_bed.primary.execute("CREATE TABLE marker AS SELECT 1 AS one")
    full = backups.backup(stanza, kind="full")
    missing = f"pgbackrest/backup/pulsebase/{full}/pg_data/PG_VERSION"
    backup_bed.s3.client().delete_object(Bucket=backup_bed.bucket, Key=missing)

    with scratch_folder(backup_bed.primary.user) as scratch:
        run = run_drill(backup_bed, scratch, "--marker-table=public.marker")
        started_server = (scratch / "run").exists()

    assert run.result["succeeded"] is False
    assert run.result["failedStep"] == "restore"
    assert "PG_VERSION" in run.result["message"]
    assert "ERROR: [" in run.result["message"]
    for secret in (S3_ACCESS_KEY, S3_SECRET_KEY):
        assert secret not in run.result["message"]
    assert run.check_returncode != 0
    assert run.restore_returncode != 0
    assert not started_server
    assert run.result["recoveryTimeSeconds"] is None


def test_drill_with_a_missing_marker_table_fails_at_that_step(backup_bed: BackupBed) -> None:
    backups.backup(backup_bed.stanza, kind="full")
    archive_everything(backup_bed.primary)
    with scratch_folder(backup_bed.primary.user) as scratch:
        run = run_drill(backup_bed, scratch, "--marker-table=public.nowhere")
    assert run.result["succeeded"] is False
    assert run.result["failedStep"] == "marker table"
    assert "public.nowhere does not exist" in run.result["message"]
    # The copy did come up: what was measured before the failing step is reported.
    assert run.result["recoveryTimeSeconds"] > 0
    assert run.check_returncode != 0
    assert run.restore_returncode == 0


# --- vector indexes, on PostgreSQL 16 with pgvector -----------------------------------


def start_physical_copy(server: Postgres, scratch: Path) -> subprocess.Popen[bytes]:
    """A pg_basebackup of `server` in scratch/pgdata, promoted at the end of its WAL and
    served only on a socket in scratch/run: what the drill's restore side leaves."""
    user = server.user
    data = scratch / "pgdata"
    subprocess.run(
        [
            str(server.bindir / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres"),
            *("-D", str(data), "-X", "stream", "-c", "fast", "--no-sync"),
        ],
        env={**os.environ, "PGPASSWORD": PG_SUPERUSER_PASSWORD},
        user=user,
        group=_group_of(user),
        check=True,
        timeout=120,
    )
    (data / "recovery.signal").touch()
    (scratch / "run").mkdir(mode=0o700)
    (scratch / "pg_hba.conf").write_text("local all all trust\n")
    for path in (data / "recovery.signal", scratch / "run", scratch / "pg_hba.conf"):
        if user:
            shutil.chown(path, user, _group_of(user))
    log = (scratch / "postgres.log").open("w")
    return subprocess.Popen(
        [
            str(server.bindir / "postgres"),
            *("-D", str(data), "-c", "listen_addresses=", "-c", "archive_mode=off"),
            # Recovery needs a restore_command; this archive is empty, so recovery
            # replays the WAL pg_basebackup copied and then promotes.
            *("-c", "restore_command=false"),
            *("-c", f"unix_socket_directories={scratch / 'run'}"),
            *("-c", f"hba_file={scratch / 'pg_hba.conf'}"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        user=user,
        group=_group_of(user),
        start_new_session=True,
    )


@pytest.mark.parametrize("damage", [False, True], ids=["usable", "invalid index"])
def test_drill_check_times_vector_indexes_on_a_restored_pgvector_copy(
    pgvector_server: Postgres, damage: bool
) -> None:
    from tests.integration.test_vectors import add_embeddings, new_database

    db = new_database(pgvector_server)
    try:
        db.execute("CREATE EXTENSION vector")
        add_embeddings(db)
        if damage:
            # What a failed CREATE INDEX CONCURRENTLY leaves behind, copied as it is.
            db.execute(
                "UPDATE pg_index SET indisvalid = false"
                " WHERE indexrelid = 'docs_embedding_hnsw'::regclass"
            )
        with scratch_folder(pgvector_server.user) as scratch:
            server = start_physical_copy(pgvector_server, scratch)
            try:
                result, returncode = finish(
                    drill_check(scratch, "--marker-table=public.docs", dbname=db.name)
                )
                server_log = (scratch / "postgres.log").read_text()
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGINT)
                server.wait(timeout=60)
    finally:
        pgvector_server.execute(f"DROP DATABASE {db.name} WITH (FORCE)")

    assert result["recoveryTimeSeconds"] is not None, (result, server_log)
    assert result["recoveryTimeSeconds"] > 0
    assert result["markerRows"] > 0
    if damage:
        assert result["succeeded"] is False
        assert result["failedStep"] == "vector indexes"
        assert "docs_embedding_hnsw" in result["message"]
        assert returncode != 0
    else:
        assert result["succeeded"] is True, result
        assert returncode == 0
        usable = result["vectorIndexesUsableSeconds"]
        assert result["recoveryTimeSeconds"] <= usable < DEADLINE
        # No pgBackRest repository here: nothing to measure the point against.
        assert result["recoveryPointSeconds"] is None
