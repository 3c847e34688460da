"""One run of a scheduled backup: create the stanza, or take a backup and, after a full
one, expire the sets the retention policy says to expire, then the WAL nothing kept
needs.

This is what the backup Jobs do once they know where pgBackRest runs; the Stanza's
runner says where (a local process in the tests, the primary's pod in the cluster). Each
step reports one event to `log` (facts only; the caller writes them as JSON lines), each
retention decision with its reason among them. A failed step raises BackupError naming
it; a failed expiry after a good backup says so, since the backup itself stands.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pulsebase_operator.backups import pgbackrest
from pulsebase_operator.backups.errors import BackupError
from pulsebase_operator.policy import retention

JobKind = Literal["stanza", "full", "incr"]
JOB_KINDS: tuple[str, ...] = ("stanza", "full", "incr")

Log = Callable[[Mapping[str, Any]], None]
Clock = Callable[[], datetime.datetime]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Outcome:
    kind: str
    label: str | None = None  # the backup taken
    decisions: list[retention.Decision] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)


class RetentionError(BackupError):
    """The backup succeeded, then planning or expiring failed."""


def run(
    stanza: pgbackrest.Stanza,
    *,
    kind: str,
    policy: retention.Policy,
    log: Log,
    now: Clock = _utc_now,
) -> Outcome:
    if kind not in JOB_KINDS:
        raise ValueError(f"kind must be one of {', '.join(JOB_KINDS)}, not {kind!r}")

    # stanza-create is a no-op on a valid stanza, so the Job may run on every change.
    if kind == "stanza":
        started = time.monotonic()
        pgbackrest.stanza_create(stanza)
        log({"event": "stanza ready", "stanza": stanza.name, "seconds": _since(started)})
        return Outcome(kind=kind)

    # Before a full backup the stanza is made sure of too: the stanza Job runs once, and
    # a stanza lost since (a bucket emptied, a Job that gave up before the primary was
    # up) would otherwise fail every backup until someone noticed.
    if kind == "full":
        started = time.monotonic()
        pgbackrest.stanza_create(stanza)
        log({"event": "stanza ready", "stanza": stanza.name, "seconds": _since(started)})

    started = time.monotonic()
    label = pgbackrest.backup(stanza, kind="full" if kind == "full" else "incr")
    log({"event": "backup taken", "kind": kind, "label": label, "seconds": _since(started)})
    if kind != "full":
        return Outcome(kind=kind, label=label)

    # Retention after a full backup only: that is when a day's or a week's slot changes
    # hands, and an expiry never runs beside a backup of the same stanza.
    try:
        decisions = pgbackrest.plan_retention(stanza, policy=policy, now=now())
        for decision in decisions:
            log({"event": "retention decision", **decision.as_dict()})
        expired = pgbackrest.expire(
            stanza, labels=[d.label for d in decisions if d.action == "expire"]
        )
        for expired_label in expired:
            log({"event": "backup expired", "label": expired_label})
        fulls = pgbackrest.expire_archive(stanza, policy=policy, now=now())
        log({"event": "archive expired", "fullBackupsWithUnbrokenWal": fulls})
    except BackupError as error:
        raise RetentionError(
            step=f"retention after {label}", reason=error.reason, timed_out=error.timed_out
        ) from None
    return Outcome(kind=kind, label=label, decisions=decisions, expired=expired)


def _since(started: float) -> float:
    return round(time.monotonic() - started, 1)
