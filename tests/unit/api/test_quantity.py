from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsebase_operator.api.quantity import parse_duration, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10Gi", 10 * 2**30),
        ("500m", Decimal("0.5")),
        ("1", 1),
        ("1.5G", Decimal("1.5e9")),
        ("2e3", 2000),
        ("128974848", 128974848),
        ("129M", Decimal("129e6")),
    ],
)
def test_quantities_parse_like_kubernetes(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["50GB", "-1Gi", "Gi", "", "1.2.3", "10 Gi"])
def test_malformed_quantities_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("1h30m", 5400), ("500ms", Decimal("0.5")), ("24h", 86400)]
)
def test_durations_parse_like_go(text: str, seconds: Decimal) -> None:
    assert parse_duration(text) == Decimal(seconds)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["Ki", "Mi", "Gi"]))
def test_binary_suffixes_scale_by_powers_of_two(n: int, suffix: str) -> None:
    scale = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[suffix]
    assert parse_quantity(f"{n}{suffix}") == n * scale
