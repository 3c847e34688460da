"""Restore drill figures on a generated database of at least 1 GB.

Starts the backup test bed (S3 over TLS, PostgreSQL 15 archiving through pgBackRest),
fills a table with wide rows by `INSERT ... SELECT generate_series` until the database
holds the requested size, takes a full backup, then runs a drill exactly as the drill
pod does (the drill ConfigMap's script plus `pulsebase-operator drill-check`) and,
separately, pgBackRest's bare `restore` of the same backup into a new folder: the floor
the drill's recovery time compares with.

Needs the Debian packages postgresql-15, pgbackrest and nginx, and moto from the test
extras. Everything lives in temporary folders outside the checkout, removed at the end.

    python hack/bench_backups.py [--gigabytes 1.0]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pulsebase_operator import backups  # noqa: E402
from pulsebase_operator.render import drill as rendered  # noqa: E402
from tests.integration.backupbed import TlsS3Server, start_backup_bed  # noqa: E402
from tests.integration.servers import _group_of, _owned_tempdir  # noqa: E402
from tests.unit.render.examples import pulsebase  # noqa: E402

ROW_BYTES = 1900  # one wide row, below the 2 kB at which TOAST would compress it
BATCH_ROWS = 100_000  # about 200 MB a statement
DEADLINE = 3600


def fill(server: object, *, target: int) -> float:
    """Insert batches of wide, poorly compressible rows until the database has `target`
    bytes; the seconds it took."""
    execute = server.execute  # type: ignore[attr-defined]
    execute("CREATE TABLE filler (id bigint, payload text) WITH (autovacuum_enabled = off)")
    execute("CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
    started = time.monotonic()
    first = 0
    while execute("SELECT pg_database_size(current_database())")[0][0] < target:
        # md5 chains: text that zstd cannot shrink much, like real data.
        execute(
            "INSERT INTO filler SELECT g, repeat(md5(g::text) || md5((g + 1)::text), %s)"
            " FROM generate_series(%s, %s) g",
            [ROW_BYTES // 64, first, first + BATCH_ROWS - 1],
        )
        first += BATCH_ROWS
    return time.monotonic() - started


def drill(bed: object, scratch: Path) -> dict[str, object]:
    primary, stanza = bed.primary, bed.stanza  # type: ignore[attr-defined]
    env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "SCRATCH": str(scratch),
        "CONFIG": str(stanza.config),
        "STANZA": stanza.name,
        "PGBIN": str(primary.bindir),
    }
    script = rendered.config_map(pulsebase())["data"][rendered.SCRIPT_KEY]
    restore = subprocess.Popen(
        ["bash", "-c", script],
        env=env,
        user=primary.user,
        group=_group_of(primary.user),
        start_new_session=True,
        cwd="/",
    )
    try:
        check = subprocess.run(
            [
                sys.executable,
                "-m",
                "pulsebase_operator.cli",
                "drill-check",
                f"--scratch={scratch}",
                f"--deadline={DEADLINE}",
                "--marker-table=public.ticks",
            ],
            capture_output=True,
            text=True,
            timeout=DEADLINE + 60,
            check=False,
        )
        restore.wait(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(restore.pid, signal.SIGKILL)
    result: dict[str, object] = json.loads(check.stdout.strip().splitlines()[-1])
    return result


def repository_bytes(bed: object) -> int:
    client = bed.s3.client()  # type: ignore[attr-defined]
    total = 0
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bed.bucket)  # type: ignore[attr-defined]
    for page in pages:
        total += sum(int(item["Size"]) for item in page.get("Contents", []))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0, help="database size (default 1)")
    args = parser.parse_args()
    target = int(args.gigabytes * 1024**3)

    s3 = TlsS3Server.start()
    bed = None
    try:
        bed = start_backup_bed(s3)
        fill_seconds = fill(bed.primary, target=target)
        size = int(bed.primary.execute("SELECT pg_database_size(current_database())")[0][0])
        cluster = int(
            bed.primary.execute("SELECT sum(pg_database_size(oid)) FROM pg_database")[0][0]
        )

        started = time.monotonic()
        label = backups.backup(bed.stanza, kind="full")
        backup_seconds = time.monotonic() - started
        # Commits after the backup, then a switch: the drill replays WAL past the set,
        # and the recovery point is that of a database taking writes.
        for _ in range(20):
            bed.primary.execute("INSERT INTO ticks DEFAULT VALUES")
            time.sleep(0.1)
        segment = bed.primary.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        while not bed.primary.execute(
            "SELECT 1 FROM pg_stat_archiver WHERE last_archived_wal >= %s", [segment]
        ):
            time.sleep(0.5)

        # The bare restore first, the drill after it: neither gets a cache the other
        # warmed for it more than once.
        floor = bed.restored("floor")
        try:
            started = time.monotonic()
            backups.restore(bed.stanza, data_dir=floor.data)
            restore_seconds = time.monotonic() - started
        finally:
            floor.remove()

        scratch = _owned_tempdir("pulsebase-bench-drill-", bed.primary.user)
        try:
            result = drill(bed, scratch)
            # The script writes pg_hba.conf right after pgBackRest has finished, and the
            # archive listing right before it starts.
            written = {n: (scratch / n).stat().st_mtime for n in ("archive.json", "pg_hba.conf")}
            in_drill = written["pg_hba.conf"] - written["archive.json"]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

        print(
            f"database                {size / 1e9:.2f} GB ({cluster / 1e9:.2f} GB cluster),"
            f" generated in {fill_seconds:.0f} s"
        )
        print(f"full backup             {backup_seconds:.1f} s, set {label}")
        print(
            f"repository              {repository_bytes(bed) / 1e9:.2f} GB (zstd off, as the bed)"
        )
        print(
            f"drill                   succeeded={result['succeeded']} "
            f"failedStep={result['failedStep']} {result['message']}"
        )
        print(f"  recovery time         {result['recoveryTimeSeconds']} s")
        print(f"  of which restore      {in_drill:.1f} s (pgBackRest in the script)")
        print(f"  recovery point        {result['recoveryPointSeconds']} s")
        print(f"  vector indexes usable {result['vectorIndexesUsableSeconds']} (none: no pgvector)")
        print(f"  marker rows           {result['markerRows']}")
        print(f"pgBackRest restore only {restore_seconds:.1f} s (the floor)")
        return 0 if result["succeeded"] else 1
    finally:
        if bed is not None:
            bed.remove()
        s3.remove()


if __name__ == "__main__":
    sys.exit(main())
