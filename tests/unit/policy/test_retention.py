"""Calendar retention: the promises hold for any catalog, and the calendar edges."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsebase_operator.policy import retention
from pulsebase_operator.policy.retention import Backup, Policy

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def full(label: str, at: dt.datetime, failed: bool = False) -> Backup:
    return Backup(label=label, kind="full", stopped=at, prior=None, failed=failed)


def incr(label: str, at: dt.datetime, prior: str) -> Backup:
    return Backup(label=label, kind="incr", stopped=at, prior=prior, failed=False)


def actions(decisions: list[retention.Decision]) -> dict[str, str]:
    return {d.label: d.action for d in decisions}


def test_one_full_backup_per_day_for_the_daily_window_then_one_per_week() -> None:
    backups = [full(f"F{day}", NOW - dt.timedelta(days=day, hours=1)) for day in range(120)]
    kept = {
        label
        for label, a in actions(
            retention.plan(backups, policy=Policy(daily=30, weekly=8), now=NOW)
        ).items()
        if a == "keep"
    }
    assert {f"F{day}" for day in range(30)} <= kept
    older = kept - {f"F{day}" for day in range(30)}
    assert 1 <= len(older) <= 8  # one per ISO week beyond the daily window
    assert "F119" not in kept


def test_the_newest_of_two_backups_on_one_day_is_the_one_kept() -> None:
    morning = full("morning", dt.datetime(2026, 11, 10, 6, tzinfo=UTC))
    evening = full("evening", dt.datetime(2026, 11, 10, 20, tzinfo=UTC))
    newest = full("today", NOW - dt.timedelta(hours=1))
    result = actions(
        retention.plan([morning, evening, newest], policy=Policy(daily=30, weekly=0), now=NOW)
    )
    assert result == {"morning": "expire", "evening": "keep", "today": "keep"}


def test_failed_backups_never_stand_for_their_day() -> None:
    good = full("good", dt.datetime(2026, 12, 1, 1, tzinfo=UTC))
    failed = full("failed", dt.datetime(2026, 12, 1, 23, tzinfo=UTC), failed=True)
    decisions = {d.label: d for d in retention.plan([good, failed], policy=Policy(), now=NOW)}
    assert decisions["good"].action == "keep"
    assert decisions["failed"].action == "expire"
    assert decisions["failed"].reason == "failed backup"


def test_days_are_counted_in_the_policy_time_zone_across_a_dst_change() -> None:
    # 2026-10-25 ends summer time in Berlin; 22:30 UTC on the 24th is 00:30 on the 25th.
    late = full("late", dt.datetime(2026, 10, 24, 22, 30, tzinfo=UTC))
    early = full("early", dt.datetime(2026, 10, 24, 20, 0, tzinfo=UTC))
    now = dt.datetime(2026, 10, 26, 12, tzinfo=UTC)
    berlin = actions(
        retention.plan(
            [early, late], policy=Policy(daily=5, weekly=0, time_zone="Europe/Berlin"), now=now
        )
    )
    utc = actions(retention.plan([early, late], policy=Policy(daily=5, weekly=0), now=now))
    assert berlin == {"early": "keep", "late": "keep"}  # two local days
    assert utc == {"early": "expire", "late": "keep"}  # one UTC day


def test_iso_weeks_run_across_new_year() -> None:
    # 2026-12-31 (Thursday) and 2027-01-02 (Saturday) are both in ISO week 2026-W53.
    thursday = full("thu", dt.datetime(2026, 12, 31, 3, tzinfo=UTC))
    saturday = full("sat", dt.datetime(2027, 1, 2, 3, tzinfo=UTC))
    now = dt.datetime(2027, 3, 1, tzinfo=UTC)
    newest = full("newest", now - dt.timedelta(hours=1))
    decisions = {
        d.label: d
        for d in retention.plan(
            [thursday, saturday, newest], policy=Policy(daily=1, weekly=52), now=now
        )
    }
    assert decisions["sat"].action == "keep"
    assert "2026-W53" in decisions["sat"].reason
    assert decisions["thu"].action == "expire"


def test_a_long_outage_keeps_the_newest_backup_whatever_its_age() -> None:
    old = full("old", NOW - dt.timedelta(days=800))
    older = full("older", NOW - dt.timedelta(days=900))
    result = actions(retention.plan([older, old], policy=Policy(daily=7, weekly=4), now=NOW))
    assert result == {"older": "expire", "old": "keep"}


def test_a_backup_stamped_in_the_future_is_kept() -> None:
    skewed = full("skewed", NOW + dt.timedelta(minutes=10))
    decisions = retention.plan([skewed], policy=Policy(), now=NOW)
    assert decisions[0].action == "keep"
    assert "clock skew" in decisions[0].reason


def test_reads_pgbackrest_info_json() -> None:
    info = [
        {
            "name": "pulsebase",
            "backup": [
                {
                    "label": "20261201-010000F",
                    "type": "full",
                    "prior": None,
                    "error": False,
                    "timestamp": {"start": 1764550800, "stop": 1764551400},
                },
                {
                    "label": "20261201-010000F_20261201-020000I",
                    "type": "incr",
                    "prior": "20261201-010000F",
                    "error": True,
                    "timestamp": {"start": 1764554400, "stop": 1764554500},
                },
            ],
        }
    ]
    backups = retention.backups_from_info(info)
    assert [(b.label, b.kind, b.failed) for b in backups] == [
        ("20261201-010000F", "full", False),
        ("20261201-010000F_20261201-020000I", "incr", True),
    ]
    assert backups[0].stopped == dt.datetime.fromtimestamp(1764551400, tz=UTC)


@st.composite
def catalogs(draw: st.DrawFn) -> list[Backup]:
    count = draw(st.integers(min_value=0, max_value=40))
    minutes = sorted(
        draw(st.lists(st.integers(0, 400 * 24 * 60), min_size=count, max_size=count, unique=True))
    )
    backups: list[Backup] = []
    for i, minute in enumerate(minutes):
        at = NOW - dt.timedelta(minutes=400 * 24 * 60 - minute)
        kind = draw(st.sampled_from(["full", "full", "incr", "diff"]))
        fulls = [b for b in backups if b.kind == "full"]
        if kind != "full" and fulls:
            prior = backups[-1].label if kind == "incr" else fulls[-1].label
            backups.append(Backup(f"B{i}", kind, at, prior, draw(st.booleans())))
        else:
            backups.append(Backup(f"B{i}", "full", at, None, draw(st.booleans())))
    return backups


policies = st.builds(
    Policy,
    daily=st.integers(1, 40),
    weekly=st.integers(0, 60),
    time_zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
)


@settings(max_examples=300, deadline=None)
@given(catalogs(), policies)
def test_the_promises_hold_for_any_catalog(backups: list[Backup], policy: Policy) -> None:
    decisions = retention.plan(backups, policy=policy, now=NOW)
    by_label = {b.label: b for b in backups}
    kept = {d.label for d in decisions if d.action == "keep"}
    assert len(decisions) == len(backups)

    # The newest good backup is never expired.
    good = [b for b in backups if not b.failed]
    if good:
        assert max(good, key=lambda b: b.stopped).label in kept

    # A kept backup keeps its whole chain.
    for label in kept:
        prior = by_label[label].prior
        while prior is not None and prior in by_label:
            assert prior in kept, f"{label} is kept but {prior} it needs is not"
            prior = by_label[prior].prior

    # Failed backups never stand for a day or a week.
    for decision in decisions:
        if by_label[decision.label].failed and decision.action == "keep":
            assert "needed by" in decision.reason

    # Idempotent: planning again over what is left expires nothing more.
    again = retention.plan([by_label[k] for k in kept], policy=policy, now=NOW)
    assert all(d.action == "keep" for d in again)


def test_a_catalog_whose_chain_loops_is_planned_and_keeps_the_loop() -> None:
    # Only a damaged catalog has one; the plan must still end.
    backups = [
        incr("A", NOW - dt.timedelta(hours=2), prior="B"),
        incr("B", NOW - dt.timedelta(hours=1), prior="A"),
    ]
    assert actions(retention.plan(backups, policy=Policy(), now=NOW)) == {
        "A": "keep",
        "B": "keep",
    }


@pytest.mark.parametrize(
    "entry",
    [
        {"label": "F"},
        {"label": "F", "timestamp": []},
        {"label": "F", "timestamp": {}},
        {"label": "F", "timestamp": {"start": None, "stop": None}},
    ],
    ids=["missing", "a list", "empty", "null"],
)
def test_a_backup_without_a_time_is_refused_not_taken_for_1970(entry: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="backup F has no start or stop time"):
        retention.backups_from_info([{"backup": [entry]}])


def test_a_backup_stamped_at_the_end_of_the_calendar_is_refused() -> None:
    entry = {"label": "F", "timestamp": {"stop": 253402300799}}
    with pytest.raises(ValueError, match="timestamp of F is not a time in seconds"):
        retention.backups_from_info([{"backup": [entry]}])


@pytest.mark.parametrize("now", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_current_time_at_the_ends_of_the_calendar_is_a_value_error(now: str) -> None:
    backups = [full("F", NOW)]
    with pytest.raises(ValueError, match="too close to the ends of the calendar"):
        retention.plan(backups, policy=Policy(), now=dt.datetime.fromisoformat(now))


PREFIX = "vector-tables/"


@given(st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9998, 12, 31)))
def test_a_dump_key_carries_its_time_to_the_second(moment: dt.datetime) -> None:
    at = moment.replace(microsecond=0, tzinfo=UTC)
    (dump,) = retention.dumps_from_keys([f"{PREFIX}{at:%Y%m%dT%H%M%SZ}.dump"], prefix=PREFIX)
    assert (dump.stopped, dump.kind, dump.prior, dump.failed) == (at, "full", None, False)


@pytest.mark.parametrize(
    "key",
    [
        "vector-tables/README.txt",
        "vector-tables/20261399T030000Z.dump",  # shaped like a time, but none
        "vector-tables/20261204T030000Z.dump.partial",
        "vector-tables/old/20261204T030000Z.dump",
        "configuration/20261204T030000Z.dump",
        "20261204T030000Z.dump",
        "vector-tables/20201204T030007Z.dump\n",  # S3 keys may end in a newline
        "vector-tables/00010101T000000Z.dump",  # no dump was written before 1970
    ],
)
def test_a_key_not_named_as_the_dump_job_names_it_is_no_dump(key: str) -> None:
    assert retention.dumps_from_keys([key], prefix=PREFIX) == []


def test_a_dump_stamped_before_1970_never_stops_the_plan_in_a_zone_west_of_utc() -> None:
    keys = ["vector-tables/00010101T000000Z.dump", "vector-tables/20261204T030000Z.dump"]
    dumps = retention.dumps_from_keys(keys, prefix=PREFIX)
    decisions = retention.plan(dumps, policy=Policy(time_zone="America/New_York"), now=NOW)
    assert actions(decisions) == {"vector-tables/20261204T030000Z.dump": "keep"}


def test_stanzas_are_planned_apart_and_errors_name_the_stanza() -> None:
    def stanza(name: str, label: str, stop: int) -> dict[str, Any]:
        entry = {"label": label, "type": "full", "timestamp": {"start": stop, "stop": stop}}
        return {"name": name, "backup": [entry]}

    info = [
        stanza("a", "20261201-010000F", 1764550800),
        stanza("b", "20261202-010000F", 1764637200),
    ]
    by_stanza = retention.backups_by_stanza(info)
    assert [(name, [b.label for b in found]) for name, found in by_stanza] == [
        ("a", ["20261201-010000F"]),
        ("b", ["20261202-010000F"]),
    ]
    with pytest.raises(ValueError, match="backup 0 of stanza 1 has no label"):
        retention.backups_by_stanza([info[0], {"backup": [{}]}])


def test_wal_stays_unbroken_from_the_oldest_full_backup_of_the_daily_window() -> None:
    backups = [full(f"F{day}", NOW - dt.timedelta(days=day, hours=1)) for day in range(60)]
    policy = Policy(daily=7, weekly=8)
    kept = [
        b
        for b in backups
        if actions(retention.plan(backups, policy=policy, now=NOW))[b.label] == "keep"
    ]
    # Seven days of fulls; the weekly ones before them keep only their own WAL.
    assert len(kept) > 7
    assert retention.continuous_archive_fulls(kept, policy=policy, now=NOW) == 7


def test_an_incremental_in_the_window_reaches_back_to_its_full_before_it() -> None:
    base = full("F", NOW - dt.timedelta(days=3))
    backups = [
        full("old", NOW - dt.timedelta(days=9)),
        base,
        incr("I", NOW - dt.timedelta(hours=20), prior="F"),
        full("today", NOW - dt.timedelta(hours=2)),
    ]
    assert retention.continuous_archive_fulls(backups, policy=Policy(daily=2), now=NOW) == 2


def test_after_a_long_outage_wal_stays_unbroken_from_the_newest_backup() -> None:
    backups = [full("a", NOW - dt.timedelta(days=90)), full("b", NOW - dt.timedelta(days=80))]
    assert retention.continuous_archive_fulls(backups, policy=Policy(daily=7), now=NOW) == 1
    assert retention.continuous_archive_fulls([], policy=Policy(), now=NOW) == 0


def test_the_window_for_unbroken_wal_is_counted_in_the_policys_time_zone() -> None:
    # 10:30 and 11:30 UTC on 2 December fall either side of midnight in Auckland (UTC+13).
    backups = [
        full("a", dt.datetime(2026, 12, 2, 10, 30, tzinfo=UTC)),
        full("b", dt.datetime(2026, 12, 2, 11, 30, tzinfo=UTC)),
        full("c", dt.datetime(2026, 12, 3, 11, 0, tzinfo=UTC)),
    ]
    auckland = Policy(daily=2, time_zone="Pacific/Auckland")
    assert retention.continuous_archive_fulls(backups, policy=auckland, now=NOW) == 2
    assert retention.continuous_archive_fulls(backups, policy=Policy(daily=2), now=NOW) == 3


def test_the_newest_good_backup_keeps_its_wal_when_a_newer_full_failed() -> None:
    # Long outage, then a failed full: the incremental before it replays from F2 on.
    backups = [
        full("F1", NOW - dt.timedelta(days=10)),
        full("F2", NOW - dt.timedelta(days=9)),
        incr("F2_I", NOW - dt.timedelta(days=8), prior="F2"),
        full("F3", NOW - dt.timedelta(days=7), failed=True),
    ]
    assert retention.continuous_archive_fulls(backups, policy=Policy(daily=1), now=NOW) == 2
    # With no good backup at all, only the newest full's WAL is counted on.
    failed = [full(b.label, b.stopped, failed=True) for b in backups if b.kind == "full"]
    assert retention.continuous_archive_fulls(failed, policy=Policy(daily=1), now=NOW) == 1


@settings(max_examples=300, deadline=None)
@given(catalogs(), policies)
def test_every_moment_of_the_window_keeps_its_wal_and_no_more_is_kept(
    backups: list[Backup], policy: Policy
) -> None:
    decisions = actions(retention.plan(backups, policy=policy, now=NOW))
    kept = [b for b in backups if decisions[b.label] == "keep"]
    by_label = {b.label: b for b in kept}
    fulls = sorted((b for b in kept if b.kind == "full"), key=lambda b: b.stopped)
    count = retention.continuous_archive_fulls(kept, policy=policy, now=NOW)
    assert count == 0 if not fulls else 1 <= count <= len(fulls)
    unbroken = {b.label for b in fulls[len(fulls) - count :]}

    def root(b: Backup) -> Backup | None:
        while b.kind != "full":
            if b.prior not in by_label:
                return None
            b = by_label[b.prior]
        return b

    zone = retention.zone(policy)
    start = NOW.astimezone(zone).date() - dt.timedelta(days=policy.daily - 1)
    good = sorted((b for b in kept if not b.failed), key=lambda b: b.stopped)
    anchors = [b for b in good if b.stopped.astimezone(zone).date() >= start] + good[-1:]
    roots = [r for b in anchors if (r := root(b)) is not None]
    # Each backup of the window, and the newest, replays from its full backup on.
    assert all(r.label in unbroken for r in roots)
    # One fewer would break one of them.
    if count > 1:
        assert fulls[len(fulls) - count].label in {r.label for r in roots}
