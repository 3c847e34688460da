"""Rates from cumulative counters: the arithmetic behind the hit ratio and the query p95.

Servers count hits, misses, calls and time from their start, so a ratio of the raw totals
describes the whole uptime and hardly moves. Each function here takes the counters of the
previous probe and of this one and describes only the interval between them. A counter
that went down belongs to a restarted or reset source and is left out rather than read as
negative traffic. Pure, so the edge cases are unit tests.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def weighted_percentile(samples: Iterable[tuple[float, int]], q: float) -> float | None:
    """The smallest value v with at least fraction `q` of the total weight at or below v.

    `samples` are (value, weight) pairs; pairs with a weight of zero or less count for
    nothing. None when no weight is left.
    """
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], not {q}")
    kept = sorted((value, weight) for value, weight in samples if weight > 0)
    total = sum(weight for _, weight in kept)
    if total == 0:
        return None
    # Integer weights, so the running sum is exact; only the threshold is a float.
    threshold = q * total
    running = 0
    for value, weight in kept:
        running += weight
        if running >= threshold:
            return value
    return kept[-1][0]  # only reached through rounding of q * total


def hit_ratio(
    previous: Mapping[K, tuple[int, int]], current: Mapping[K, tuple[int, int]]
) -> float | None:
    """hits / (hits + misses) between two probes, summed over sources.

    Both mappings hold (hits, misses) per source (a server process). Sources seen only
    once, or whose counters went down, are left out. None when nothing was counted.
    """
    hits = misses = 0
    for source, (now_hits, now_misses) in current.items():
        if source not in previous:
            continue
        then_hits, then_misses = previous[source]
        if now_hits < then_hits or now_misses < then_misses:
            continue
        hits += now_hits - then_hits
        misses += now_misses - then_misses
    if hits + misses == 0:
        return None
    return hits / (hits + misses)


def interval_means(
    previous: Mapping[K, tuple[int, float]], current: Mapping[K, tuple[int, float]]
) -> list[tuple[float, int]]:
    """(mean seconds per call, calls) of each statement over the interval.

    Both mappings hold (calls, total milliseconds) per statement. A statement absent
    before was first run inside the interval, so all its calls count.
    """
    means = []
    for key, (calls, total_ms) in current.items():
        then_calls, then_ms = previous.get(key, (0, 0.0))
        delta_calls = calls - then_calls
        delta_ms = total_ms - then_ms
        if delta_calls <= 0 or delta_ms < 0 or not math.isfinite(delta_ms):
            continue
        means.append((delta_ms / delta_calls / 1000.0, delta_calls))
    return means
