"""Calendar retention of physical backups: which to keep, which to expire, and why.

The policy keeps the newest good full backup of each of the last `daily` calendar days
and of each of the last `weekly` ISO weeks, both counted in the given time zone. Around
that it holds four promises, each a property test:

- the newest good backup is never expired;
- a kept backup never loses a backup it depends on (its `prior` chain);
- failed backups never count as a day's or a week's backup;
- applying the plan and planning again expires nothing more.

WAL in the archive is kept unbroken from the oldest good backup of the daily window
(`continuous_archive_fulls`), and beyond that only where an older kept backup needs it
to be consistent.

Differential and incremental backups are kept while they fall within the daily window
and their whole chain is kept, so point-in-time recovery works across that window. A
backup stamped later than `now` (clock skew between the database host and the
operator) is kept and said to be.

The input is pgBackRest's own catalog (`pgbackrest info --output=json`), so the same
function serves the operator and `pulsebase-operator retention plan`. The vector-table
dumps are counted by the same calendar: each is a full backup with no chain, stamped
with the time in its object key (`dumps_from_keys`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Backup:
    label: str
    kind: str  # full, diff or incr
    stopped: datetime.datetime  # when the backup finished (UTC)
    prior: str | None  # the backup this one depends on
    failed: bool


@dataclass(frozen=True)
class Decision:
    label: str
    action: str  # keep or expire
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "action": self.action, "reason": self.reason}


# The bounds of spec.backup.retention; a window of zero days would leave only the
# newest backup.
DAILY_RANGE = (1, 366)
WEEKLY_RANGE = (0, 520)


@dataclass(frozen=True)
class Policy:
    daily: int = 30
    weekly: int = 52
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        for name, value, (low, high) in (
            ("daily", self.daily, DAILY_RANGE),
            ("weekly", self.weekly, WEEKLY_RANGE),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, not {value}")


def backups_from_info(info: Any) -> list[Backup]:
    """Every backup of every stanza in `pgbackrest info --output=json` output;
    ValueError naming the first entry that is not shaped like pgBackRest's."""
    return [backup for _, backups in backups_by_stanza(info) for backup in backups]


def backups_by_stanza(info: Any) -> list[tuple[str | None, list[Backup]]]:
    """The backups of each stanza in `pgbackrest info --output=json` output, with the
    stanza's name; each stanza is planned on its own. ValueError as backups_from_info."""
    if not isinstance(info, list):
        raise ValueError("the catalog must be a JSON list of stanzas, as pgbackrest info prints")
    found = []
    for s, stanza in enumerate(info):
        if not isinstance(stanza, Mapping):
            raise ValueError(f"stanza {s} is not an object")
        entries = stanza.get("backup") or []
        if not isinstance(entries, list):
            raise ValueError(f"stanza {s}: backup is not a list")
        backups = []
        for b, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("label"), str):
                raise ValueError(f"backup {b} of stanza {s} has no label")
            backups.append(_backup(entry))
        name = stanza.get("name")
        found.append((name if isinstance(name, str) else None, backups))
    return found


# Every time zone can show a time before this one (9999-01-01 UTC) as a local date.
_LAST_SECOND = 253370764800

# A logical dump as the vector job names it under its prefix: the UTC time it started.
_DUMP_NAME = re.compile(r"(?P<stamp>[0-9]{8}T[0-9]{6}Z)\.dump")


def dumps_from_keys(keys: Iterable[str], *, prefix: str) -> list[Backup]:
    """The dumps among object keys, as full backups stamped with the time in their name.
    A key not named the way the dump job names it is no dump: it is left out, and so is
    never expired."""
    found = []
    for key in keys:
        match = _DUMP_NAME.fullmatch(key[len(prefix) :]) if key.startswith(prefix) else None
        if match is None:
            continue
        try:
            stamp = datetime.datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ")
        except ValueError:  # 20261399T..., shaped like a time but none
            continue
        stopped = stamp.replace(tzinfo=datetime.UTC)
        # Outside 1970 to 9998 no dump was written, and some zones cannot show the time.
        if not 0 <= stopped.timestamp() < _LAST_SECOND:
            continue
        found.append(Backup(label=key, kind="full", stopped=stopped, prior=None, failed=False))
    return found


def _backup(entry: Mapping[str, Any]) -> Backup:
    label = entry["label"]
    stamp = entry.get("timestamp")
    # Taken as 1970, a backup without a time would be the oldest, and planned first.
    if not isinstance(stamp, Mapping) or (stamp.get("stop") is None and stamp.get("start") is None):
        raise ValueError(f"backup {label} has no start or stop time")
    seconds = stamp["stop"] if stamp.get("stop") is not None else stamp["start"]
    try:
        if isinstance(seconds, bool):
            raise TypeError(f"{seconds} is not a number")
        if not 0 <= seconds < _LAST_SECOND:
            raise ValueError(f"{seconds} is outside 1970 to 9998")
        stopped = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (AttributeError, TypeError, ValueError, OverflowError, OSError) as error:
        raise ValueError(f"timestamp of {label} is not a time in seconds: {error}") from None
    prior = entry.get("prior")
    return Backup(
        label=label,
        kind=str(entry.get("type", "full")),
        stopped=stopped,
        prior=prior if isinstance(prior, str) else None,
        failed=bool(entry.get("error")),
    )


def zone(policy: Policy) -> ZoneInfo:
    """The policy's time zone; ValueError when it is not a known IANA name."""
    try:
        return ZoneInfo(policy.time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:  # OSError: a folder
        raise ValueError(f"unknown time zone {policy.time_zone!r}") from error


def plan(backups: Iterable[Backup], *, policy: Policy, now: datetime.datetime) -> list[Decision]:
    """One decision per backup, oldest first; ValueError when `now` lies so close to the
    ends of the calendar that its days and weeks cannot be counted."""
    zone_ = zone(policy)
    ordered = sorted(backups, key=lambda b: (b.stopped, b.label))
    by_label = {b.label: b for b in ordered}
    try:
        today = now.astimezone(zone_).date()
        this_week = _week(today)
        window_start = today - datetime.timedelta(days=policy.daily - 1)
    except (OverflowError, ValueError):
        raise ValueError(
            f"the current time {now.isoformat()} is too close to the ends of the calendar"
        ) from None
    reasons: dict[str, str] = {}

    def keep(backup: Backup, reason: str) -> None:
        reasons.setdefault(backup.label, reason)

    good = [b for b in ordered if not b.failed]
    for backup in good:
        if backup.stopped > now:
            keep(backup, "finished after the current time (clock skew); kept to be safe")
    if good:
        keep(good[-1], "the newest good backup")

    # Calendar slots: the newest good full backup of each day and of each ISO week.
    fulls = [b for b in good if b.kind == "full" and b.stopped <= now]
    newest_of_day: dict[datetime.date, Backup] = {}
    newest_of_week: dict[tuple[int, int], Backup] = {}
    for backup in fulls:  # oldest first, so later ones overwrite
        local = backup.stopped.astimezone(zone_).date()
        newest_of_day[local] = backup
        newest_of_week[_week(local)] = backup
    for day, backup in sorted(newest_of_day.items(), reverse=True):
        age = (today - day).days
        if age < policy.daily:
            keep(backup, f"newest good full backup of {day.isoformat()} (daily)")
    for week, backup in sorted(newest_of_week.items(), reverse=True):
        if _weeks_between(week, this_week) < policy.weekly:
            keep(backup, f"newest good full backup of ISO week {week[0]}-W{week[1]:02d} (weekly)")

    # Differential and incremental backups inside the daily window, for recovery to
    # any moment in it; only where their chain survives.
    for backup in good:
        if backup.kind != "full" and backup.stopped.astimezone(zone_).date() >= window_start:
            keep(backup, "within the daily recovery window")

    # A kept backup keeps everything it depends on.
    for label in list(reasons):
        _keep_chain(by_label, label, reasons)

    decisions = []
    for backup in ordered:
        if backup.label in reasons:
            decisions.append(Decision(backup.label, "keep", reasons[backup.label]))
        elif backup.failed:
            decisions.append(Decision(backup.label, "expire", "failed backup"))
        else:
            decisions.append(
                Decision(backup.label, "expire", "outside the daily and weekly retention")
            )
    return decisions


def continuous_archive_fulls(
    backups: Iterable[Backup], *, policy: Policy, now: datetime.datetime
) -> int:
    """How many of the newest full backups keep unbroken WAL from their start on, the
    count pgBackRest's archive retention takes (`repo1-retention-archive`, type full).

    Enough for recovery to any moment from the oldest good backup of the daily window,
    and from the newest good backup however old it is; the older kept backups keep only
    the WAL that makes each of them consistent, which pgBackRest always keeps. 0 when
    there is no full backup: nothing to count from.

    Full backups are counted in the order they finished; pgBackRest counts them by
    label, the time each started. The two agree unless the database host's clock went
    back between two full backups, and then the chain that straddles the step may keep
    only its own WAL.
    """
    zone_ = zone(policy)
    ordered = sorted(backups, key=lambda b: (b.stopped, b.label))
    fulls = [b for b in ordered if b.kind == "full"]
    if not fulls:
        return 0
    by_label = {b.label: b for b in ordered}
    window_start = now.astimezone(zone_).date() - datetime.timedelta(days=policy.daily - 1)
    good = [b for b in ordered if not b.failed]
    anchors = [b for b in good if b.stopped.astimezone(zone_).date() >= window_start]
    anchors += good[-1:]
    roots = [root for b in anchors if (root := _chain_root(by_label, b)) is not None]
    if not roots:
        return 1
    oldest = min(roots, key=lambda b: (b.stopped, b.label))
    return sum(1 for b in fulls if (b.stopped, b.label) >= (oldest.stopped, oldest.label))


def _chain_root(by_label: Mapping[str, Backup], backup: Backup) -> Backup | None:
    """The full backup a backup's chain starts from; None when a link is missing."""
    current, seen = backup, {backup.label}
    while current.kind != "full":
        prior = by_label.get(current.prior or "")
        if prior is None or prior.label in seen:
            return None
        seen.add(prior.label)
        current = prior
    return current


def _keep_chain(by_label: Mapping[str, Backup], label: str, reasons: dict[str, str]) -> None:
    current = by_label.get(label)
    seen = {label}
    # A damaged catalog can hold a loop of priors; the walk ends where it closes.
    while current is not None and current.prior and current.prior not in seen:
        prior = by_label.get(current.prior)
        if prior is None:
            return  # its chain was expired before us; pgBackRest reports that itself
        reasons.setdefault(prior.label, f"needed by {label}")
        seen.add(prior.label)
        current = prior


def _week(day: datetime.date) -> tuple[int, int]:
    year, week, _ = day.isocalendar()
    return year, week


def _weeks_between(earlier: tuple[int, int], later: tuple[int, int]) -> int:
    first = datetime.date.fromisocalendar(earlier[0], earlier[1], 1)
    last = datetime.date.fromisocalendar(later[0], later[1], 1)
    return (last - first).days // 7
