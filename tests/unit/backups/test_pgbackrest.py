"""The pgBackRest wrapper's own logic: error reasons, masking, and the order of expiry."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from pulsebase_operator.backups import pgbackrest


def test_reason_is_pgbackrest_error_line_without_its_time_stamp() -> None:
    err = (
        "2026-12-04 02:02:17.970 P00 ERROR: [055]: unable to open missing file"
        " '/pgbackrest/backup/db/20261204-020247F/pg_data/PG_VERSION' for read\n"
    )
    reason = pgbackrest._reason("", err, returncode=55, secrets=())
    assert reason.startswith("ERROR: [055]: unable to open missing file")


def test_reason_masks_secrets_given_and_key_shaped_options() -> None:
    err = "ERROR: [031]: bad repo1-s3-key-secret=hunter2 for key AKIAXYZ in s3-key=AKIAXYZ"
    reason = pgbackrest._reason("", err, returncode=31, secrets=["AKIAXYZ"])
    assert "hunter2" not in reason
    assert "AKIAXYZ" not in reason
    assert "repo1-s3-key-secret=***" in reason


def test_reason_falls_back_to_the_last_line_then_the_exit_code() -> None:
    assert pgbackrest._reason("one\ntwo\n", "", returncode=1, secrets=()) == "two"
    assert pgbackrest._reason("", "", returncode=3, secrets=()) == "pgbackrest exited with 3"


def test_secrets_are_the_env_values_named_like_keys() -> None:
    stanza = pgbackrest.Stanza(
        name="db",
        env={"PGBACKREST_REPO1_S3_KEY_SECRET": "s3cr3t", "PGBACKREST_REPO1_S3_REGION": "eu"},
    )
    assert pgbackrest._secrets(stanza) == ["s3cr3t"]
    assert "s3cr3t" not in repr(stanza)


def test_dependent_sets_sort_after_the_full_set_they_build_on() -> None:
    labels = ["20261204-010000F", "20261204-010000F_20261204-020000I", "20261203-010000F"]
    ordered = sorted(labels, key=pgbackrest._label_order, reverse=True)
    assert ordered == [
        "20261204-010000F_20261204-020000I",
        "20261204-010000F",
        "20261203-010000F",
    ]


def test_target_time_is_written_in_utc_with_an_explicit_offset() -> None:
    moment = datetime.datetime(
        2026, 12, 4, 3, 4, 5, 678, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert pgbackrest._postgres_time(moment) == "2026-12-04 01:04:05.000678+00"


def test_backup_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        pgbackrest.backup(pgbackrest.Stanza(name="db"), kind="weekly")  # type: ignore[arg-type]


def test_restore_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    folder = tmp_path
    (folder / "PG_VERSION").write_text("15\n")
    with pytest.raises(pgbackrest.BackupError, match="not empty"):
        pgbackrest.restore(pgbackrest.Stanza(name="db"), data_dir=folder)


def test_a_missing_program_is_a_backup_error_naming_the_step() -> None:
    stanza = pgbackrest.Stanza(name="db", binary="/nonexistent/pgbackrest")
    with pytest.raises(pgbackrest.BackupError, match=r"^info failed: cannot run pgbackrest"):
        pgbackrest.info(stanza)


def test_a_deadline_stops_the_command_and_says_so(tmp_path: Path) -> None:
    slow = tmp_path / "pgbackrest"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    stanza = pgbackrest.Stanza(name="db", binary=str(slow))
    with pytest.raises(pgbackrest.BackupError, match=r"no answer within 0\.5 s") as caught:
        pgbackrest.info(stanza, timeout=0.5)
    assert caught.value.timed_out
