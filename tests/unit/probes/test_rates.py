from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsebase_operator.probes.rates import hit_ratio, interval_means, weighted_percentile

values = st.floats(min_value=0, max_value=1e6, allow_nan=False)
samples = st.lists(st.tuples(values, st.integers(min_value=1, max_value=10_000)), min_size=1)
quantiles = st.floats(min_value=0.01, max_value=1.0)


def test_the_p95_of_mostly_fast_calls_is_the_slow_tail_once_it_passes_five_percent() -> None:
    assert weighted_percentile([(0.001, 94), (2.0, 6)], 0.95) == 2.0
    assert weighted_percentile([(0.001, 96), (2.0, 4)], 0.95) == 0.001


def test_weights_count_calls_not_statements() -> None:
    # One statement called a thousand times outweighs nine called once each.
    means = [(0.5, 1)] * 9 + [(0.01, 1000)]
    assert weighted_percentile(means, 0.95) == 0.01


def test_no_weight_means_no_percentile() -> None:
    assert weighted_percentile([], 0.95) is None
    assert weighted_percentile([(1.0, 0)], 0.95) is None


@pytest.mark.parametrize("q", [0, -0.1, 1.01])
def test_quantiles_outside_the_unit_interval_are_refused(q: float) -> None:
    with pytest.raises(ValueError, match="q must be"):
        weighted_percentile([(1.0, 1)], q)


@given(samples, quantiles)
def test_the_percentile_splits_the_weight_at_q(pairs: list[tuple[float, int]], q: float) -> None:
    result = weighted_percentile(pairs, q)
    assert result in {value for value, _ in pairs}
    total = sum(w for _, w in pairs)
    at_or_below = sum(w for v, w in pairs if v <= result)
    below = sum(w for v, w in pairs if v < result)
    assert at_or_below >= q * total
    assert below < q * total


@given(samples, quantiles, st.integers(min_value=2, max_value=50), st.randoms())
def test_order_and_a_common_weight_factor_do_not_matter(
    pairs: list[tuple[float, int]], q: float, factor: int, rng: random.Random
) -> None:
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    scaled = [(v, w * factor) for v, w in shuffled]
    assert weighted_percentile(scaled, q) == weighted_percentile(pairs, q)


@given(st.lists(values, min_size=1, max_size=200), quantiles)
def test_with_equal_weights_it_is_the_nearest_rank_percentile(
    observed: list[float], q: float
) -> None:
    rank = max(1, math.ceil(q * len(observed)))
    # q * n computed in floats may land a hair above an integer; accept either neighbour.
    candidates = {sorted(observed)[rank - 1], sorted(observed)[max(0, rank - 2)]}
    assert weighted_percentile([(v, 1) for v in observed], q) in candidates


def test_the_hit_ratio_covers_only_the_interval() -> None:
    # Since start: 10 hits, 90 misses. Between the probes: 3 hits, 1 miss.
    assert hit_ratio({"a": (7, 89)}, {"a": (10, 90)}) == 0.75


def test_the_hit_ratio_sums_over_sources() -> None:
    before = {"a": (0, 0), "b": (100, 100)}
    after = {"a": (3, 0), "b": (100, 101)}
    assert hit_ratio(before, after) == 0.75


def test_a_restarted_or_new_source_is_left_out() -> None:
    before = {"old": (1000, 10), "kept": (5, 5)}
    after = {"old": (2, 1), "new": (50, 0), "kept": (6, 5)}
    assert hit_ratio(before, after) == 1.0


def test_no_lookups_between_probes_give_no_ratio() -> None:
    assert hit_ratio({"a": (5, 5)}, {"a": (5, 5)}) is None
    assert hit_ratio({}, {"a": (5, 5)}) is None


counters = st.tuples(st.integers(0, 10**12), st.integers(0, 10**12))
deltas = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6))


@given(st.dictionaries(st.text(max_size=8), st.tuples(counters, deltas), max_size=6))
def test_the_hit_ratio_is_hits_over_lookups_of_the_interval(
    sources: dict[str, tuple[tuple[int, int], tuple[int, int]]],
) -> None:
    before = {name: start for name, (start, _) in sources.items()}
    after = {name: (start[0] + d[0], start[1] + d[1]) for name, (start, d) in sources.items()}
    hits = sum(d[0] for _, d in sources.values())
    lookups = hits + sum(d[1] for _, d in sources.values())
    ratio = hit_ratio(before, after)
    if lookups == 0:
        assert ratio is None
    else:
        assert ratio == pytest.approx(hits / lookups)
        assert 0.0 <= ratio <= 1.0


def test_interval_means_divide_the_added_time_by_the_added_calls() -> None:
    before = {"q": (10, 1000.0)}
    after = {"q": (14, 1200.0), "new": (2, 30.0)}
    assert sorted(interval_means(before, after)) == [(0.015, 2), (0.05, 4)]


def test_statements_without_new_calls_or_reset_since_are_left_out() -> None:
    before = {"idle": (5, 50.0), "reset": (100, 1000.0)}
    after = {"idle": (5, 50.0), "reset": (3, 9.0)}
    assert interval_means(before, after) == []
