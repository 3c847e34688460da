"""`pulsebase-operator drill-check` as the drill pod runs it, against a scratch folder
laid out by hand: its exit code, stdout and termination message, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pulsebase_operator.api import models

CLI = [sys.executable, "-m", "pulsebase_operator.cli", "drill-check"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, check=False, timeout=60)


def test_a_failed_restore_exits_non_zero_with_one_json_line_and_the_termination_message(
    tmp_path: Path,
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "restore.log").write_text("P00  ERROR: [037]: unable to find backup set\n")
    (scratch / "failed").write_text("restore\n")
    termination = tmp_path / "termination-log"
    termination.touch()
    done = run(f"--scratch={scratch}", "--deadline=30", f"--termination-log={termination}")
    assert done.returncode == 1
    line = done.stdout.strip()
    assert termination.read_text() == line
    status = models.DrillStatus.model_validate({**json.loads(line), "job": "shop-drill-1"})
    assert status.succeeded is False
    assert status.failed_step == "restore"
    assert "unable to find backup set" in status.message
    assert (scratch / "done").exists()


def test_without_a_termination_file_only_stdout_is_written(tmp_path: Path) -> None:
    (tmp_path / "failed").write_text("start\n")
    (tmp_path / "postgres.log").write_text("FATAL:  could not map shared memory\n")
    missing = tmp_path / "no-such-file"
    done = run(f"--scratch={tmp_path}", "--deadline=30", f"--termination-log={missing}")
    assert done.returncode == 1
    assert json.loads(done.stdout)["failedStep"] == "start"
    assert "could not map shared memory" in json.loads(done.stdout)["message"]
    assert not missing.exists()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--marker-table=orders"], "schema.table"),
        (["--marker-table=public.orders;drop"], "schema.table"),
        (["--deadline=0"], "above zero"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(
    tmp_path: Path, args: list[str], complaint: str
) -> None:
    done = run(f"--scratch={tmp_path}", "--deadline=30", *args)
    assert done.returncode == 2
    assert complaint in done.stderr
    assert not (tmp_path / "done").exists()


def test_a_missing_scratch_folder_is_refused(tmp_path: Path) -> None:
    done = run(f"--scratch={tmp_path / 'nowhere'}", "--deadline=30")
    assert done.returncode == 2
    assert "is not a folder" in done.stderr


@pytest.mark.parametrize("kind", ["not utf-8", "a folder"])
def test_a_failed_file_it_cannot_read_as_text_still_gives_a_report(
    tmp_path: Path, kind: str
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if kind == "a folder":
        (scratch / "failed").mkdir()
    else:
        (scratch / "failed").write_bytes(b"\xff\xfe restore\n")
    termination = tmp_path / "termination-log"
    termination.touch()
    done = run(f"--scratch={scratch}", "--deadline=30", f"--termination-log={termination}")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert termination.read_text() == done.stdout.strip()
    assert report["succeeded"] is False
    assert report["failedStep"]
    assert (scratch / "done").exists()
