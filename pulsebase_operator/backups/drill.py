"""The check half of a restore drill: wait for the restored copy, measure it, report.

The restore container (render/drill.py) restores the newest backup into a scratch
directory and runs PostgreSQL there with its socket in that directory; this side, from
its own start, measures

- the recovery time: until the copy accepts queries and is out of recovery (promoted);
- the time until every HNSW and IVFFlat index is usable (vectors.check_vector_indexes);
- the recovery point: how far the data the copy holds lies behind the newest WAL the
  archive held when the drill began (see `recovery_point_seconds`);
- the marker table's row count, when one is named: missing or empty fails the drill.

The result is one JSON object with the keys of models.DrillStatus except `job`, short
enough for a termination message (`encode`). Every wait is bounded by the drill's
deadline; passing it fails the drill at the step that was under way.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pulsebase_operator.backups import vectors
from pulsebase_operator.backups.errors import BackupError
from pulsebase_operator.backups.pgbackrest import scrub

# Kubernetes keeps at most this many bytes of a termination message.
MESSAGE_LIMIT = 4096
POLL_SECONDS = 0.5
QUERY_TIMEOUT = 30.0

# A WAL segment in the archive: 24 hex digits, then pgBackRest's checksum suffix.
_SEGMENT = re.compile(r"(?:^|/)[0-9A-F]{24}-[0-9a-f]{40}(?:\.\w+)?$")
_ERROR_LINE = re.compile(r"\bERROR: \[\d+\]:.*$", re.MULTILINE)
_SERVER_ERROR = re.compile(r"\b(?:FATAL|PANIC):.*$", re.MULTILINE)
_RESTORED_SET = re.compile(r"restore backup set ([^\s,]+)")


@dataclasses.dataclass
class Result:
    succeeded: bool = False
    started: str | None = None
    finished: str | None = None
    backup_label: str | None = None
    recovery_time_seconds: float | None = None
    vector_indexes_usable_seconds: float | None = None
    recovery_point_seconds: float | None = None
    marker_rows: int | None = None
    failed_step: str | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        """camelCase keys, as models.DrillStatus reads them."""
        return {_camel(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}


class Stopped(Exception):  # noqa: N818 - a signal, not an error of ours
    """Raised from a signal handler: the pod is being stopped (the Job's deadline)."""


class DrillError(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


def encode(result: Result, *, limit: int = MESSAGE_LIMIT) -> str:
    """The result as one line of JSON of at most `limit` bytes; the message is cut to fit."""
    text = json.dumps(result.as_dict(), separators=(",", ":"))
    if len(text.encode()) <= limit:
        return text
    message = result.message
    # Each character cut may be several bytes once encoded, and escaped in JSON.
    while message and len(text.encode()) > limit:
        excess = len(text.encode()) - limit
        message = message[: max(0, len(message) - max(excess, 1) - 3)]
        text = json.dumps(
            dataclasses.replace(result, message=message + "...").as_dict(),
            separators=(",", ":"),
        )
    return text


# --- what the repository held ---------------------------------------------------------


def newest_segment_time(listing: Mapping[str, Any]) -> datetime.datetime | None:
    """When the newest WAL segment of a `repo-ls --recurse --output=json` listing of the
    archive was stored; None if it holds no segment."""
    times = [
        float(entry["time"])
        for path, entry in listing.items()
        if isinstance(entry, dict)
        and entry.get("type") == "file"
        and "time" in entry
        and _SEGMENT.search(path)
    ]
    if not times:
        return None
    return datetime.datetime.fromtimestamp(max(times), tz=datetime.UTC)


def newest_backup(info: Iterable[Any], *, stanza: str) -> dict[str, Any] | None:
    """The newest set in `pgbackrest info --output=json` for the stanza: what restore
    picks without --set."""
    for entry in info:
        if isinstance(entry, dict) and entry.get("name") == stanza:
            sets = entry.get("backup") or []
            return dict(sets[-1]) if sets else None
    return None


def recovery_point_seconds(
    *,
    newest_segment: datetime.datetime | None,
    last_replayed: datetime.datetime | None,
    backup_stop: datetime.datetime | None,
) -> float | None:
    """Seconds between the newest archived WAL segment's store time and the newest data
    the copy holds: the later of its last replayed commit and the end of the backup it
    was restored from (a copy holds at least what its backup holds, even when no
    transaction was replayed). Never negative; None when the archive held no segment or
    the copy's point is unknown.

    On a quiet database this grows with the quiet time, without any data being lost:
    the newest segment can be stored (by archive_timeout, or a backup's switch) long
    after the last commit it holds.
    """
    reached = max((t for t in (last_replayed, backup_stop) if t is not None), default=None)
    if newest_segment is None or reached is None:
        return None
    return round(max(0.0, (newest_segment - reached).total_seconds()), 3)


# --- the drill --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Drill:
    scratch: Path
    conn_params: Mapping[str, Any]
    deadline: float
    stanza: str = "pulsebase"
    marker_table: str | None = None
    vector_wait: float = 0.0
    poll: float = POLL_SECONDS
    clock: Callable[[], float] = time.monotonic


def run(drill: Drill) -> Result:
    """Wait for the copy, measure and check it; always writes `done` for the restore side."""
    result = Result(started=_now())
    begun = drill.clock()
    step = "restore"
    try:
        _wait_until_open(drill, begun=begun)
        result.recovery_time_seconds = round(drill.clock() - begun, 3)

        step = "recovery point"
        result.backup_label, result.recovery_point_seconds = _recovery_point(drill)

        if drill.marker_table:
            step = "marker table"
            result.marker_rows = _marker_rows(drill)

        step = "vector indexes"
        result.vector_indexes_usable_seconds = _vector_indexes(drill, begun=begun)
        result.succeeded = True
    except DrillError as failure:
        result.failed_step, result.message = failure.step, failure.reason
    except BackupError as error:
        result.failed_step, result.message = step, error.reason
    except psycopg.Error as error:
        result.failed_step, result.message = step, scrub(_first_line(error))
    except Stopped:
        result.failed_step = step
        result.message = "stopped before the drill finished (the Job's deadline passed?)"
    except Exception as error:  # whatever went wrong, a report is written
        result.failed_step = step
        result.message = scrub(f"{type(error).__name__}: {_first_line(error)}")
    finally:
        result.finished = _now()
        try:
            (drill.scratch / "done").touch()
        except OSError as error:
            # The restore side then waits for its deadline; the report still goes out.
            result.succeeded = False
            result.failed_step = result.failed_step or "report"
            note = f"cannot write {drill.scratch / 'done'}: {error.strerror}"
            result.message = f"{result.message}; {note}" if result.message else note
    return result


def _wait_until_open(drill: Drill, *, begun: float) -> None:
    """Until the copy is promoted and answers; fails as soon as the restore side says a
    step failed, and at the deadline."""
    last_error = ""
    while True:
        failed = drill.scratch / "failed"
        if failed.exists():
            try:
                step = failed.read_text(errors="replace").strip() or "restore"
            except OSError as error:
                raise DrillError(
                    "restore",
                    f"the restore side's {failed.name} file is unreadable: "
                    f"{error.strerror or type(error).__name__}",
                ) from None
            raise DrillError(step, _failure_reason(drill.scratch, step))
        # The socket's folder appears once the restore has finished.
        if (drill.scratch / "run").exists():
            try:
                with _connect(drill.conn_params) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is not None and row[0] is False:
                        return
                    last_error = "still replaying WAL"
            except psycopg.Error as error:
                last_error = _first_line(error)
        if drill.clock() - begun >= drill.deadline:
            step = "start" if (drill.scratch / "run").exists() else "restore"
            detail = f" ({scrub(last_error)})" if last_error else ""
            raise DrillError(step, f"not done within the deadline of {drill.deadline:g} s{detail}")
        time.sleep(drill.poll)


def _failure_reason(scratch: Path, step: str) -> str:
    if step == "start":
        text = _read(scratch / "postgres.log")
        lines = [m.strip() for m in _SERVER_ERROR.findall(text)]
    else:
        text = _read(scratch / "restore.log")
        lines = [m.strip() for m in _ERROR_LINE.findall(text)]
    if not lines:
        lines = [line.strip() for line in text.splitlines() if line.strip()][-1:]
    return scrub(" ".join(lines)) or f"{step} failed and wrote nothing"


def _recovery_point(drill: Drill) -> tuple[str | None, float | None]:
    try:
        info = json.loads(_read(drill.scratch / "info.json") or "[]")
        listing = json.loads(_read(drill.scratch / "archive.json") or "{}")
    except json.JSONDecodeError as error:
        raise DrillError(
            "recovery point", f"repository listing is not JSON ({error.msg})"
        ) from None
    backup = newest_backup(info if isinstance(info, list) else [], stanza=drill.stanza)
    restored = _RESTORED_SET.search(_read(drill.scratch / "restore.log"))
    label = restored.group(1) if restored else (backup or {}).get("label")
    stop = None
    if backup is not None and backup.get("label") == label:
        stop = datetime.datetime.fromtimestamp(backup["timestamp"]["stop"], tz=datetime.UTC)
    with _connect(drill.conn_params) as conn:
        row = conn.execute("SELECT pg_last_xact_replay_timestamp()").fetchone()
    replayed = row[0] if row else None
    point = recovery_point_seconds(
        newest_segment=newest_segment_time(listing if isinstance(listing, dict) else {}),
        last_replayed=replayed,
        backup_stop=stop,
    )
    return label, point


def _marker_rows(drill: Drill) -> int:
    assert drill.marker_table is not None
    schema, _, table = drill.marker_table.partition(".")
    with _connect(drill.conn_params) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [drill.marker_table])
        found = exists.fetchone()
        if not (found and found[0]):
            raise DrillError("marker table", f"{drill.marker_table} does not exist in the copy")
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        counted = conn.execute(query).fetchone()
    rows = int(counted[0]) if counted else 0
    if rows == 0:
        raise DrillError("marker table", f"{drill.marker_table} is empty in the copy")
    return rows


def _vector_indexes(drill: Drill, *, begun: float) -> float | None:
    """Seconds from the drill's start until every vector index was usable; None when
    there is no vector index."""
    offset = drill.clock() - begun
    # A physical restore carries each index as it was, so one that is not usable at the
    # first look stays so: waiting is only for `vector_wait`, zero by default.
    wait = max(0.0, min(drill.vector_wait, drill.deadline - offset))
    checks = vectors.check_vector_indexes(drill.conn_params, wait=wait, poll_interval=drill.poll)
    if not checks:
        return None
    unusable = [c for c in checks if not c.ok]
    if unusable:
        names = "; ".join(f"{c.schema}.{c.name}: {c.reason}" for c in unusable)
        raise DrillError("vector indexes", scrub(f"{len(unusable)} not usable: {names}"))
    slowest = max(c.usable_after or 0.0 for c in checks)
    return round(offset + slowest, 3)


# --- small pieces ------------------------------------------------------------------------


def _connect(conn_params: Mapping[str, Any]) -> psycopg.Connection[Any]:
    params = {"application_name": vectors.APPLICATION_NAME, "connect_timeout": 5, **conn_params}
    conn = psycopg.connect(**params, autocommit=True)
    conn.execute(
        "SELECT set_config('statement_timeout', %s, false)", [f"{int(QUERY_TIMEOUT * 1000)}ms"]
    )
    return conn


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:  # missing, a folder, unreadable: nothing to learn from it
        return ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)
