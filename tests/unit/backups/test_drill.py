"""The pure parts of the drill check: the result's shape and size, and the recovery
point arithmetic."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from pulsebase_operator.api import models
from pulsebase_operator.backups import drill

T0 = datetime.datetime(2026, 12, 6, 5, 0, tzinfo=datetime.UTC)
SEGMENT = "15-1/0000000100000000/000000010000000000000007-" + "a" * 40 + ".zst"


def test_result_keys_are_those_of_drill_status_without_the_job() -> None:
    result = drill.Result(succeeded=True, recovery_time_seconds=1.5, marker_rows=3)
    keys = set(result.as_dict())
    status_keys = {f.alias or name for name, f in models.DrillStatus.model_fields.items()}
    assert keys == status_keys - {"job"}
    status = models.DrillStatus.model_validate({**json.loads(drill.encode(result)), "job": "j"})
    assert status.recovery_time_seconds == 1.5
    assert status.marker_rows == 3


def test_a_long_message_is_cut_so_the_whole_result_fits_4096_bytes() -> None:
    result = drill.Result(failed_step="restore", message="é" * 5000 + '"\\' * 1000)
    text = drill.encode(result)
    assert len(text.encode()) <= drill.MESSAGE_LIMIT
    decoded = json.loads(text)
    assert decoded["message"].endswith("...")
    assert decoded["failedStep"] == "restore"
    models.DrillStatus.model_validate({**decoded, "job": "j"})


def test_a_short_message_is_kept_whole() -> None:
    result = drill.Result(failed_step="restore", message="ERROR: [055]: missing")
    assert json.loads(drill.encode(result))["message"] == "ERROR: [055]: missing"


def test_newest_segment_time_ignores_history_backup_files_and_folders() -> None:
    listing = {
        "15-1": {"type": "path"},
        SEGMENT: {"type": "file", "size": 1, "time": T0.timestamp()},
        "15-1/0000000100000000/000000010000000000000006-" + "b" * 40: {
            "type": "file",
            "time": T0.timestamp() - 60,
        },
        "15-1/0000000100000000/000000010000000000000007.00000028.backup": {
            "type": "file",
            "time": T0.timestamp() + 600,
        },
        "15-1/00000002.history": {"type": "file", "time": T0.timestamp() + 900},
    }
    assert drill.newest_segment_time(listing) == T0
    assert drill.newest_segment_time({}) is None


def test_recovery_point_is_the_gap_to_the_later_of_replay_and_backup_end() -> None:
    replayed = T0 - datetime.timedelta(seconds=42.5)
    stop = T0 - datetime.timedelta(seconds=300)
    assert (
        drill.recovery_point_seconds(newest_segment=T0, last_replayed=replayed, backup_stop=stop)
        == 42.5
    )
    # Nothing replayed after the backup: the copy still holds what the backup holds.
    assert (
        drill.recovery_point_seconds(newest_segment=T0, last_replayed=None, backup_stop=stop) == 300
    )
    # A commit stamped after the segment's store time (clock skew) is no negative loss.
    later = T0 + datetime.timedelta(seconds=2)
    assert (
        drill.recovery_point_seconds(newest_segment=T0, last_replayed=later, backup_stop=None) == 0
    )
    assert (
        drill.recovery_point_seconds(newest_segment=None, last_replayed=T0, backup_stop=T0) is None
    )
    assert (
        drill.recovery_point_seconds(newest_segment=T0, last_replayed=None, backup_stop=None)
        is None
    )


def test_newest_backup_is_the_last_set_of_the_stanza() -> None:
    info = [
        {"name": "other", "backup": [{"label": "X"}]},
        {"name": "pulsebase", "backup": [{"label": "F"}, {"label": "F_I"}]},
    ]
    assert drill.newest_backup(info, stanza="pulsebase") == {"label": "F_I"}
    assert drill.newest_backup([{"name": "pulsebase", "backup": []}], stanza="pulsebase") is None


def test_a_failed_restore_is_reported_with_its_error_line_and_done_is_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "restore.log").write_text(
        "P00   INFO: restore command begin\n"
        "P00  ERROR: [055]: unable to open missing file '/pgbackrest/x/PG_VERSION' for read\n"
        "repo1-s3-key-secret=hunter2\n"
    )
    (tmp_path / "failed").write_text("restore\n")
    result = drill.run(drill.Drill(scratch=tmp_path, conn_params={}, deadline=5))
    assert result.succeeded is False
    assert result.failed_step == "restore"
    assert "ERROR: [055]: unable to open missing file" in result.message
    assert "hunter2" not in result.message
    assert (tmp_path / "done").exists()


def test_a_drill_past_its_deadline_fails_at_the_step_under_way(tmp_path: Path) -> None:
    ticks = iter(range(0, 1000, 10))
    result = drill.run(
        drill.Drill(
            scratch=tmp_path, conn_params={}, deadline=25, poll=0, clock=lambda: float(next(ticks))
        )
    )
    assert result.succeeded is False
    assert result.failed_step == "restore"
    assert "deadline of 25 s" in result.message
    assert (tmp_path / "done").exists()


def test_a_failed_file_that_is_not_utf_8_still_names_its_step(tmp_path: Path) -> None:
    (tmp_path / "failed").write_bytes(b"restore\xff\n")
    (tmp_path / "restore.log").write_bytes(b"P00  ERROR: [037]: no backup set \xfe\n")
    result = drill.run(drill.Drill(scratch=tmp_path, conn_params={}, deadline=5))
    assert result.succeeded is False
    assert result.failed_step == "restore\ufffd"
    assert (tmp_path / "done").exists()


def test_a_failed_entry_that_cannot_be_read_is_a_failed_restore_with_the_reason(
    tmp_path: Path,
) -> None:
    (tmp_path / "failed").mkdir()
    result = drill.run(drill.Drill(scratch=tmp_path, conn_params={}, deadline=5))
    assert result.succeeded is False
    assert result.failed_step == "restore"
    assert "failed file is unreadable" in result.message
    assert (tmp_path / "done").exists()


def test_an_unexpected_error_inside_the_drill_is_reported_at_its_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: drill.Drill, *, begun: float) -> None:
        raise KeyError("stop")

    monkeypatch.setattr(drill, "_wait_until_open", broken)
    result = drill.run(drill.Drill(scratch=tmp_path, conn_params={}, deadline=5))
    assert result.succeeded is False
    assert result.failed_step == "restore"
    assert result.message == "KeyError: 'stop'"
    assert result.finished is not None
    assert (tmp_path / "done").exists()
