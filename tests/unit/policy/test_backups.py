"""status.backup, BackupsHealthy and the configuration backup document, from plain
readings of the backups bucket."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from pulsebase_operator.api import models, schedules
from pulsebase_operator.policy import backups, retention
from pulsebase_operator.render import stack

from ..render.examples import pulsebase

NOW = datetime.datetime(2026, 12, 4, 10, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
SECOND = datetime.timedelta(seconds=1)
ZONE = datetime.timezone(datetime.timedelta(hours=5, minutes=45))


def full(label: str, stopped: datetime.datetime, *, failed: bool = False) -> retention.Backup:
    return retention.Backup(label=label, kind="full", stopped=stopped, prior=None, failed=failed)


def incr(label: str, stopped: datetime.datetime, prior: str) -> retention.Backup:
    return retention.Backup(label=label, kind="incr", stopped=stopped, prior=prior, failed=False)


def drill(**fields: Any) -> models.DrillStatus:
    values: dict[str, Any] = {
        "job": "shop-drill-29001",
        "succeeded": True,
        "finished": "2026-11-30T05:12:00Z",
        "recoveryTimeSeconds": 190.0,
        **fields,
    }
    return models.DrillStatus.model_validate(values)


def observed(
    sets: list[retention.Backup], *, wal_age: float | None = 40.0, **newest: Any
) -> backups.Observed:
    return backups.Observed(
        measured_at=NOW,
        sets=sets,
        newest_wal=NOW - datetime.timedelta(seconds=wal_age) if wal_age is not None else None,
        newest_vector_tables=newest.get("vectors"),
        newest_configuration=newest.get("configuration"),
    )


HEALTHY_SETS = [
    full("F1", NOW - 50 * HOUR),
    full("F2", NOW - 26 * HOUR),
    incr("F2_I1", NOW - 2 * HOUR, "F2"),
    full("F3", NOW - 9 * HOUR, failed=True),
]


def test_status_takes_the_newest_good_set_of_each_kind_and_the_exposure_at_reading() -> None:
    vectors = NOW - 7 * HOUR
    status = backups.backup_status(
        pulsebase(), observed(HEALTHY_SETS, vectors=vectors), drill=drill()
    )
    assert status.last_full == "2026-12-03T08:00:00Z"  # F3 failed, so F2
    assert status.last_incremental == "2026-12-04T08:00:00Z"
    assert status.last_vector_tables == "2026-12-04T03:00:00Z"
    assert status.last_successful == "2026-12-04T08:00:00Z"
    assert status.recovery_point_exposure_seconds == 40
    assert status.last_drill == drill()


def test_no_restore_to_a_time_reaches_before_the_oldest_set_ended() -> None:
    # pgBackRest needs a set stopped before the target, in whole seconds, and takes one
    # with page errors (F0) too.
    sets = [full("F0", NOW - 80 * HOUR + 0.4 * SECOND, failed=True), *HEALTHY_SETS]
    status = backups.backup_status(pulsebase(), observed(sets), drill=None)
    assert status.recoverable_from == "2026-12-01T02:00:01Z"
    # Whatever the retention: it names no window, only where none can start earlier.
    one_day = pulsebase(backup={"retention": {"daily": 1}, "timeZone": "Asia/Kathmandu"})
    assert backups.backup_status(one_day, observed(sets), drill=None).recoverable_from == (
        "2026-12-01T02:00:01Z"
    )
    assert backups.backup_status(pulsebase(), observed([]), drill=None).recoverable_from is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"backup": {"recoverableFrom": "2026-11-03T02:00:14Z"}}, "2026-11-03T02:00:14+00:00"),
        ({"backup": {"recoverableFrom": "2026-11-03 02:00:14"}}, None),
        ({"backup": {"recoverableFrom": "2026-11-03t02:00:14z"}}, None),
        ({"backup": {"recoverableFrom": "2026-1-3T2:0:14Z"}}, None),
        ({"backup": {"recoverableFrom": NOW.astimezone(ZONE)}}, "2026-12-04T10:00:00+00:00"),
        ({"backup": {"recoverableFrom": NOW.replace(tzinfo=None)}}, None),
        ({"backup": {"recoverableFrom": datetime.datetime.min.replace(tzinfo=ZONE)}}, None),
        ({"backup": {"recoverableFrom": 1764727214}}, None),
        ({"backup": "edited"}, None),
        ({"backup": {}}, None),
        ("edited", None),
        (None, None),
    ],
    ids=[
        "written",
        "other-format",
        "lower-case",
        "unpadded",
        "yaml-time-with-zone",
        "yaml-time-without-zone",
        "yaml-time-out-of-range",
        "number",
        "backup-not-a-map",
        "absent",
        "status-not-a-map",
        "no-status",
    ],
)
def test_the_oldest_backup_is_read_only_in_the_form_status_holds_it(
    status: Any, expected: str | None
) -> None:
    body = {"metadata": {"name": "shop"}, "status": status}
    found = backups.recoverable_from(body)
    assert (found.isoformat() if found else None) == expected


def test_counts_per_tier_come_from_the_retention_plan() -> None:
    counts = backups.counts(
        pulsebase(backup={"retention": {"daily": 2, "weekly": 0}}), HEALTHY_SETS, now=NOW
    )
    # F1 is two calendar days old, outside a 2-day window; F2 is yesterday's.
    assert counts == {"daily": 1, "weekly": 0, "full": 2, "incr": 1}


def test_the_same_reading_gives_the_same_status_whenever_the_pass_runs() -> None:
    seen = backups.Seen(observed=observed(HEALTHY_SETS))
    pb = pulsebase()
    first = backups.assess(pb, seen, drill=drill(), previous=None)
    again = backups.assess(pb, seen, drill=drill(), previous=first[0])
    assert first == again


def test_healthy_message_reads_as_one_sentence() -> None:
    pb = pulsebase()
    status = backups.backup_status(pb, observed(HEALTHY_SETS), drill=drill())
    assert backups.health(pb, status, now=NOW) == (
        True,
        "Healthy",
        "Newest full backup 26 h old; newest WAL archived 40 s ago; "
        "last drill restored in 3 m 10 s, 4 days ago.",
    )


def test_a_full_backup_older_than_twice_its_schedule_plus_an_hour_is_overdue() -> None:
    pb = pulsebase()  # daily at 01:00: allowed 49 h
    assert backups.full_backup_allowance(pb) == 49 * HOUR
    late = [full("F1", NOW - 50 * HOUR)]
    status = backups.backup_status(pb, observed(late), drill=drill())
    true, reason, message = backups.health(pb, status, now=NOW)
    assert (true, reason) == (False, "FullBackupOverdue")
    assert message.startswith("Newest full backup 50 h old, older than its schedule allows (49 h)")


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("0 1 * * *", datetime.timedelta(days=1)),
        ("0 1,13 * * *", 12 * HOUR),
        ("0 1 * * 0", datetime.timedelta(days=7)),
        ("0 1 * * 7", datetime.timedelta(days=7)),
        ("30 2 * * 1-5", datetime.timedelta(days=3)),  # Friday to Monday
        ("*/30 * * * 6", datetime.timedelta(days=6, minutes=30)),
        ("0 1 1 * *", datetime.timedelta(days=31)),
    ],
)
def test_longest_gap_between_runs(schedule: str, gap: datetime.timedelta) -> None:
    assert schedules.longest_gap(schedule) == gap


def test_a_weekly_full_schedule_allows_two_weeks_and_an_hour() -> None:
    pb = pulsebase(backup={"schedules": {"full": "0 1 * * 0"}})
    assert backups.full_backup_allowance(pb) == datetime.timedelta(days=14, hours=1)


@pytest.mark.parametrize(
    ("wal_age", "reason"),
    [(16 * 60 + 1, "RecoveryPointObjectiveExceeded"), (None, "NoArchivedWal")],
)
def test_wal_older_than_the_rpo_or_missing_fails(wal_age: float | None, reason: str) -> None:
    pb = pulsebase()
    status = backups.backup_status(pb, observed(HEALTHY_SETS, wal_age=wal_age), drill=drill())
    true, found, message = backups.health(pb, status, now=NOW)
    assert (true, found) == (False, reason)
    if wal_age:
        assert "Newest WAL archived 16 m 1 s ago, more than the 15m recovery point" in message


def test_a_failed_drill_says_which_step_and_why() -> None:
    pb = pulsebase()
    failed = drill(succeeded=False, failedStep="marker", message="table shop.orders is empty")
    status = backups.backup_status(pb, observed(HEALTHY_SETS), drill=failed)
    true, reason, message = backups.health(pb, status, now=NOW)
    assert (true, reason) == (False, "DrillFailed")
    assert message.startswith(
        "The last drill (shop-drill-29001) failed at marker: table shop.orders is empty; "
    )


def test_no_successful_drill_within_max_age_fails() -> None:
    pb = pulsebase(backup={"drill": {"maxAge": "72h"}})
    status = backups.backup_status(pb, observed(HEALTHY_SETS), drill=drill())
    true, reason, message = backups.health(pb, status, now=NOW)
    assert (true, reason) == (False, "DrillTooOld")
    assert "longer than drill.maxAge (72h)" in message


def test_without_drills_enabled_no_drill_is_needed() -> None:
    pb = pulsebase(backup={"drill": {"enabled": False}})
    status = backups.backup_status(pb, observed(HEALTHY_SETS), drill=None)
    assert backups.health(pb, status, now=NOW)[:2] == (True, "Healthy")


def test_unobservable_is_unknown_and_keeps_the_last_status() -> None:
    pb = pulsebase()
    previous = backups.backup_status(pb, observed(HEALTHY_SETS), drill=None)
    seen = backups.Seen(unobservable="The backups bucket is not read (--probes=none).")
    status, condition = backups.assess(pb, seen, drill=drill(), previous=previous)
    assert condition == (None, "NotObserved", "The backups bucket is not read (--probes=none).")
    assert status == previous.model_copy(update={"last_drill": drill()})


def test_disabled_backups_say_so() -> None:
    pb = pulsebase(backup={"enabled": False})
    assert backups.assess(pb, None, drill=None, previous=None)[1][:2] == (False, "Disabled")


def test_a_failed_configuration_backup_turns_the_condition_false() -> None:
    seen = backups.Seen(
        observed=observed(HEALTHY_SETS), configuration_problem="The configuration backup failed."
    )
    _, condition = backups.assess(pulsebase(), seen, drill=drill(), previous=None)
    assert condition == (False, "ConfigurationBackupFailed", "The configuration backup failed.")


def test_configuration_key_sorts_by_time_and_names_the_generation() -> None:
    assert (
        backups.configuration_key(7, now=NOW) == "configuration/20261204T100000Z-generation-7.json"
    )


def test_configuration_document_holds_spec_metadata_and_non_secret_objects() -> None:
    pb = models.PulseBase.from_body(
        {
            "metadata": {"name": "shop", "namespace": "prod", "uid": "u-1", "generation": 3},
            "spec": {"version": "2.4.1", "api": {"replicas": 5}},
        }
    )
    objects = stack.render(pb).objects
    document = backups.configuration_document(pb, objects, now=NOW)
    assert document["metadata"] == {
        "name": "shop",
        "namespace": "prod",
        "uid": "u-1",
        "generation": 3,
    }
    assert document["spec"]["api"]["replicas"] == 5
    assert document["spec"]["version"] == "2.4.1"
    assert document["writtenAt"] == "2026-12-04T10:00:00Z"
    assert len(document["objects"]) == len(objects)
    assert not [o for o in document["objects"] if o["kind"] == "Secret"]


def test_a_secret_among_the_objects_is_refused_not_written() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-db"}, "data": {}}
    with pytest.raises(ValueError, match="no Secret, and got shop-db"):
        backups.configuration_document(pulsebase(), [secret], now=NOW)


def test_what_the_reading_could_not_cover_is_said_in_the_message() -> None:
    reading = observed(HEALTHY_SETS)
    noted = backups.Observed(
        **{**reading.__dict__, "notes": ["only the first 20 pages of vector-tables/ were listed"]}
    )
    _, (true, _, message) = backups.assess(
        pulsebase(), backups.Seen(observed=noted), drill=drill(), previous=None
    )
    assert true is True
    assert message.endswith(". Only the first 20 pages of vector-tables/ were listed.")
