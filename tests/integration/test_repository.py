"""The backup repository read straight from the bucket, against what pgBackRest wrote
there itself: real pgBackRest, PostgreSQL 15 and S3 over TLS."""

from __future__ import annotations

import datetime
import time
from typing import Any

from pulsebase_operator import backups
from pulsebase_operator.probes import ObjectStoreTarget, repository
from tests.integration.backupbed import REPO_PATH, BackupBed
from tests.integration.servers import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY
from tests.integration.test_backups import archive_everything

FIELDS = ("label", "type", "prior", "reference", "timestamp", "error")


def target(bed: BackupBed) -> ObjectStoreTarget:
    return ObjectStoreTarget(
        endpoint=bed.s3.endpoint,
        region=S3_REGION,
        access_key_id=S3_ACCESS_KEY,
        secret_access_key=S3_SECRET_KEY,
        buckets=(bed.bucket,),
        backups_bucket=bed.bucket,
        verify_tls=str(bed.s3.ca_file),
    )


def comparable(sets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            field: (
                {"start": s["timestamp"]["start"], "stop": s["timestamp"]["stop"]}
                if field == "timestamp"
                else bool(s.get(field))
                if field == "error"
                else s.get(field)
            )
            for field in FIELDS
        }
        for s in sets
    ]


def test_sets_and_newest_wal_match_what_pgbackrest_reports(backup_bed: BackupBed) -> None:
    assert REPO_PATH.strip("/") == repository.REPO_PREFIX
    stanza = backup_bed.stanza
    first = backups.backup(stanza, kind="full")
    backups.backup(stanza, kind="incr")
    backup_bed.primary.execute("CREATE TABLE marks (at timestamptz DEFAULT now())")
    backup_bed.primary.execute("INSERT INTO marks DEFAULT VALUES")
    archive_everything(backup_bed.primary)
    pushed = time.time()

    found = repository.read(target(backup_bed), timeout=5.0)

    assert found.info is not None
    (stanza_entry,) = found.info
    expected = backups.info(stanza)["backup"]
    assert comparable(stanza_entry["backup"]) == comparable(expected)
    assert stanza_entry["backup"][0]["label"] == first
    assert found.newest_wal is not None
    behind = pushed - found.newest_wal.modified.timestamp()
    print(f"newest archived WAL stamped {behind:.1f} s before the archiver reported it")
    assert abs(behind) < 10, found.newest_wal
    assert found.newest_vector_tables is None
    assert found.newest_configuration is None
    assert found.notes == []


def test_a_lost_backup_info_is_read_from_its_copy(backup_bed: BackupBed) -> None:
    backups.backup(backup_bed.stanza, kind="full")
    expected = backups.info(backup_bed.stanza)["backup"]
    key = f"{repository.REPO_PREFIX}/backup/{repository.STANZA}/backup.info"
    backup_bed.s3.client().delete_object(Bucket=backup_bed.bucket, Key=key)

    found = repository.read(target(backup_bed), timeout=5.0)

    assert found.info is not None
    assert comparable(found.info[0]["backup"]) == comparable(expected)


def test_configuration_documents_are_found_by_generation(backup_bed: BackupBed) -> None:
    now = datetime.datetime.now(datetime.UTC)
    keys = [f"configuration/{now:%Y%m%dT%H%M%SZ}-generation-{n}.json" for n in (1, 2)]
    for key in keys:
        repository.write_configuration(target(backup_bed), key=key, document=b"{}", timeout=5.0)
    # Not a configuration document: ignored.
    backup_bed.s3.client().put_object(Bucket=backup_bed.bucket, Key="configuration/x", Body=b"")

    found = repository.read(target(backup_bed), timeout=5.0)

    assert found.configuration_generations == {1, 2}
    assert found.newest_configuration is not None
    assert found.newest_configuration.key in keys
