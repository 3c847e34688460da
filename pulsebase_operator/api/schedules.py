"""How far apart the runs of a five-field cron expression lie: the shortest gap, which
the models bound, and the longest, for deciding when a run is missing. The expression
is shape-checked by the models already (numbers, lists, ranges and steps; no names or
macros)."""

from __future__ import annotations

import datetime
import itertools


def longest_gap(expression: str) -> datetime.timedelta:
    """The longest time between two runs of a (shape-checked) five-field cron expression,
    for deciding when a run is missing. Day of month and month are not walked: a
    schedule restricted by them is taken as monthly, an upper bound."""
    minute, hour, day, month, weekday = expression.split()
    if day != "*" or month != "*":
        return datetime.timedelta(days=31)
    days = {d % 7 for d in _expand(weekday, 0, 7)}
    runs = sorted(
        d * 1440 + h * 60 + m
        for d in range(14)
        if d % 7 in days
        for h in _expand(hour, 0, 23)
        for m in _expand(minute, 0, 59)
    )
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    return datetime.timedelta(minutes=max(gaps, default=7 * 1440))


# The most days each month can have; February's 29 happens once in four years.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def problem(expression: str) -> str | None:
    """What makes a shape-checked expression wrong though it parses: a range that runs
    backwards (the CronJob controller refuses it), or days of the month no chosen month
    has (it would never run). None when there is nothing."""
    for field in expression.split():
        for item in field.split(","):
            first, _, last = item.partition("/")[0].partition("-")
            if last and int(last) < int(first):
                return f"the range {first}-{last} runs backwards; write the smaller number first"
    _, _, day, month, weekday = expression.split()
    if day != "*" and weekday == "*":
        days, months = _expand(day, 1, 31), _expand(month, 1, 12)
        if not any(d <= _MONTH_DAYS[m - 1] for m in months for d in days):
            return "never runs: no month it names has the days of the month it names"
    return None


def shortest_interval_minutes(expression: str) -> int:
    """The shortest time between two runs, in minutes, over any two days that both run:
    days only ever remove runs, so no gap can be shorter."""
    minute, hour = expression.split()[:2]
    minutes, hours = _expand(minute, 0, 59), _expand(hour, 0, 23)
    runs = sorted(day * 1440 + h * 60 + m for day in (0, 1) for h in hours for m in minutes)
    return min((b - a for a, b in itertools.pairwise(runs)), default=1440)


def _expand(field: str, low: int, high: int) -> list[int]:
    values: set[int] = set()
    for item in field.split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            first, last = low, high
        else:
            first_text, _, last_text = body.partition("-")
            first = int(first_text)
            last = int(last_text) if last_text else (high if step_text else first)
        values.update(range(first, last + 1, step))
    return sorted(v for v in values if low <= v <= high)
