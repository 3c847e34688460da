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
