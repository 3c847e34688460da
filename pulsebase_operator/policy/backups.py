"""What the backups bucket and the drill Jobs say about recoverability: status.backup and
the BackupsHealthy condition.

Pure: the catalog, the newest objects, the drill and the current time come in as
arguments. The rules a person reads in the condition:

- the recovery point exposure (now minus the newest archived WAL segment, measured when
  the bucket was read) must not exceed spec.backup.rpo;
- a full backup is overdue once the newest good one is older than twice the longest
  gap between two runs of its schedule plus an hour (daily: 49 h; weekly: 14 days and
  an hour). Twice, so one missed run is a warning from the alert
  (PulseBaseFullBackupTooOld, at one gap plus two hours) and not yet a failed
  condition; the hour covers a backup that takes long. A schedule restricted by day of
  month or month is taken as monthly (a gap of 31 days);
- the last drill must have succeeded, and one must have succeeded within drill.maxAge
  (only while drills are enabled).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulsebase_operator.api import models, schedules
from pulsebase_operator.api.quantity import parse_duration
from pulsebase_operator.policy import retention

CONDITION = "BackupsHealthy"
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
FULL_OVERDUE_SLACK = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Observed:
    """The backups bucket as read at `measured_at`."""

    measured_at: datetime.datetime
    sets: Sequence[retention.Backup]
    newest_wal: datetime.datetime | None
    newest_vector_tables: datetime.datetime | None
    newest_configuration: datetime.datetime | None
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class Seen:
    """One probe round's view of the bucket, or why there is none."""

    observed: Observed | None = None
    unobservable: str | None = None
    configuration_problem: str | None = None


def assess(
    pb: models.PulseBase,
    seen: Seen | None,
    *,
    drill: models.DrillStatus | None,
    previous: models.BackupStatus | None,
) -> tuple[models.BackupStatus | None, tuple[bool | None, str, str]]:
    """status.backup and BackupsHealthy for one pass. Both change only with a new reading
    of the bucket or a new drill, never with the passing of time alone, so a pass that
    finds nothing new writes nothing: every age is taken at the reading's time."""
    if seen is None or seen.observed is None:
        kept = previous.model_copy(update={"last_drill": drill}) if previous else None
        if kept is None and drill is not None:
            kept = models.BackupStatus(last_drill=drill)
        why = seen.unobservable if seen else None
        return kept, health(pb, None, unobservable=why)
    status = backup_status(pb, seen.observed, drill=drill)
    true, reason, message = health(pb, status, now=seen.observed.measured_at)
    if seen.observed.notes:
        message = f"{message} {_capital('; '.join(seen.observed.notes))}."
    if seen.configuration_problem and true is not False:
        true, reason, message = False, "ConfigurationBackupFailed", seen.configuration_problem
    elif seen.configuration_problem:
        message = f"{message} {seen.configuration_problem}"
    return status, (true, reason, message)


def stamp(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str | None) -> datetime.datetime | None:
    """A time in the one form `stamp` writes; None for anything else."""
    if not text or not STAMP.fullmatch(text):
        return None
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


def recoverable_from(body: Mapping[str, Any]) -> datetime.datetime | None:
    """The source's status.backup.recoverableFrom; None when absent or not in the form
    the operator writes (a status edited by hand refuses nothing). A YAML file read
    offline holds it as a time with its zone when it is not quoted."""
    status = body.get("status")
    backup = status.get("backup") if isinstance(status, Mapping) else None
    value = backup.get("recoverableFrom") if isinstance(backup, Mapping) else None
    if isinstance(value, datetime.datetime):
        try:
            return value.astimezone(datetime.UTC) if value.tzinfo is not None else None
        except OverflowError:  # year 1 or 9999 with an offset
            return None
    return parse_stamp(value) if isinstance(value, str) else None


def retention_policy(pb: models.PulseBase) -> retention.Policy:
    spec = pb.spec.backup
    return retention.Policy(
        daily=spec.retention.daily, weekly=spec.retention.weekly, time_zone=spec.time_zone
    )


def earliest_target(sets: Sequence[retention.Backup]) -> datetime.datetime | None:
    """A second after the oldest set in the catalog stopped: no restore to a time reaches
    an earlier moment. pgBackRest starts from the newest set that stopped before the
    target, comparing whole seconds (the integration test shows it), and its 2.45
    restore code skips no set for page errors, so those count here too (read, not run).

    A lower bound, not the whole window: from the oldest backup of the daily window on
    the archive is unbroken, while older sets keep only the WAL that makes each of them
    consistent, and a target among them runs out of WAL after the set before it. Which
    sets those are depends on the policy of the last expiry, not of this reading, so
    they are not refused here."""
    if not sets:
        return None
    oldest = min(s.stopped for s in sets)
    return oldest.replace(microsecond=0) + datetime.timedelta(seconds=1)


def counts(
    pb: models.PulseBase, sets: Sequence[retention.Backup], *, now: datetime.datetime
) -> dict[str, int]:
    """Good sets per tier: `daily` and `weekly` as the retention plan keeps them, and the
    `full` and `incr` totals."""
    decisions = retention.plan(sets, policy=retention_policy(pb), now=now)
    good = [s for s in sets if not s.failed]
    return {
        "daily": sum(1 for d in decisions if d.action == "keep" and "(daily)" in d.reason),
        "weekly": sum(1 for d in decisions if d.action == "keep" and "(weekly)" in d.reason),
        "full": sum(1 for s in good if s.kind == "full"),
        "incr": sum(1 for s in good if s.kind != "full"),
    }


def backup_status(
    pb: models.PulseBase,
    observed: Observed,
    *,
    drill: models.DrillStatus | None,
) -> models.BackupStatus:
    """status.backup from one reading of the bucket. The exposure is taken at the time
    the bucket was read, so it changes only with a new reading, never between passes."""
    good = [s for s in observed.sets if not s.failed]
    fulls = [s.stopped for s in good if s.kind == "full"]
    increments = [s.stopped for s in good if s.kind != "full"]
    physical = max(fulls + increments, default=None)
    candidates = [t for t in (physical, observed.newest_vector_tables) if t is not None]
    exposure = None
    if observed.newest_wal is not None:
        exposure = max(0, int((observed.measured_at - observed.newest_wal).total_seconds()))
    return models.BackupStatus(
        last_full=stamp(max(fulls, default=None)),
        last_incremental=stamp(max(increments, default=None)),
        last_vector_tables=stamp(observed.newest_vector_tables),
        last_configuration=stamp(observed.newest_configuration),
        last_successful=stamp(max(candidates, default=None)),
        recovery_point_exposure_seconds=exposure,
        recoverable_from=stamp(earliest_target(observed.sets)),
        counts=counts(pb, observed.sets, now=observed.measured_at),
        last_drill=drill,
    )


def full_backup_allowance(pb: models.PulseBase) -> datetime.timedelta:
    return 2 * schedules.longest_gap(pb.spec.backup.schedules.full) + FULL_OVERDUE_SLACK


def health(
    pb: models.PulseBase,
    status: models.BackupStatus | None,
    *,
    now: datetime.datetime | None = None,
    unobservable: str | None = None,
) -> tuple[bool | None, str, str]:
    """BackupsHealthy as (true, reason, message) at `now`, the time the bucket was read;
    without a status, `unobservable` says why the bucket could not be read (Unknown)."""
    spec = pb.spec.backup
    if not spec.enabled:
        return False, "Disabled", "spec.backup.enabled is false: no backups are taken."
    if unobservable is not None or status is None or now is None:
        return None, "NotObserved", unobservable or "The backups bucket has not been read yet."

    problems: list[tuple[str, str]] = []
    facts: list[str] = []

    last_full = parse_stamp(status.last_full)
    allowance = full_backup_allowance(pb)
    if last_full is None:
        problems.append(("NoFullBackup", "No full backup exists yet"))
    else:
        age = now - last_full
        if age > allowance:
            problems.append(
                (
                    "FullBackupOverdue",
                    f"Newest full backup {_span(age)} old, older than its schedule allows "
                    f"({_span(allowance)})",
                )
            )
        else:
            facts.append(f"newest full backup {_span(age)} old")

    exposure = status.recovery_point_exposure_seconds
    rpo = parse_duration(spec.rpo)
    if exposure is None:
        problems.append(("NoArchivedWal", "No WAL has been archived yet"))
    elif exposure > rpo:
        problems.append(
            (
                "RecoveryPointObjectiveExceeded",
                f"Newest WAL archived {_span(datetime.timedelta(seconds=exposure))} ago, "
                f"more than the {spec.rpo} recovery point objective",
            )
        )
    else:
        facts.append(f"newest WAL archived {_span(datetime.timedelta(seconds=exposure))} ago")

    if spec.drill.enabled:
        drill = status.last_drill
        finished = parse_stamp(drill.finished) if drill else None
        if drill is not None and not drill.succeeded:
            where = f" at {drill.failed_step}" if drill.failed_step else ""
            why = f": {drill.message}" if drill.message else ""
            problems.append(("DrillFailed", f"The last drill ({drill.job}) failed{where}{why}"))
        elif drill is None or finished is None:
            problems.append(("NoDrill", "No restore drill has succeeded yet"))
        elif now - finished > datetime.timedelta(seconds=int(parse_duration(spec.drill.max_age))):
            problems.append(
                (
                    "DrillTooOld",
                    f"The last successful drill finished {_span(now - finished)} ago, longer "
                    f"than drill.maxAge ({spec.drill.max_age})",
                )
            )
        else:
            took = drill.recovery_time_seconds
            restored = (
                f"restored in {_span(datetime.timedelta(seconds=took))}"
                if took is not None
                else "succeeded"
            )
            facts.append(f"last drill {restored}, {_span(now - finished)} ago")

    if problems:
        reason = problems[0][0]
        text = "; ".join([p[1] for p in problems] + facts)
        return False, reason, _capital(text) + "."
    return True, "Healthy", _capital("; ".join(facts)) + "."


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _span(delta: datetime.timedelta) -> str:
    """A duration as a person says it: 40 s, 3 m 10 s, 26 h, 4 days."""
    total = max(0, int(delta.total_seconds()))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} m {secs} s" if secs else f"{minutes} m"
    if total < 72 * 3600:
        hours, rest = divmod(total, 3600)
        minutes = rest // 60
        return f"{hours} h {minutes} m" if minutes and hours < 10 else f"{hours} h"
    return f"{total // 86400} days"


# --- configuration backups ------------------------------------------------------

CONFIGURATION_PREFIX = "configuration/"


def configuration_key(generation: int, *, now: datetime.datetime) -> str:
    moment = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{CONFIGURATION_PREFIX}{moment}-generation-{generation}.json"


def configuration_document(
    pb: models.PulseBase, objects: Sequence[Mapping[str, Any]], *, now: datetime.datetime
) -> dict[str, Any]:
    """What `configuration/<time>-generation-<n>.json` holds: the spec as applied and the
    non-secret objects it renders to. Secrets are generated in the cluster and never
    rendered; one that slipped into `objects` is refused here, not written."""
    secrets = [o for o in objects if o.get("kind") == "Secret"]
    if secrets:
        names = ", ".join(str(o.get("metadata", {}).get("name")) for o in secrets)
        raise ValueError(f"a configuration backup must hold no Secret, and got {names}")
    meta = pb.metadata
    return {
        "apiVersion": pb.api_version,
        "kind": pb.kind,
        "writtenAt": stamp(now),
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "generation": meta.generation,
        },
        "spec": pb.spec.model_dump(mode="json", by_alias=True),
        "objects": [dict(o) for o in objects],
    }
