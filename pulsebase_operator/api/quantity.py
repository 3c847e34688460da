"""Kubernetes resource quantities and Go-style durations, parsed without a client.

The CRD checks the same formats on the API server (patterns plus CEL's quantity and
duration libraries); these parsers let the models give the same answer offline, for
`pulsebase-operator render` and for the tests.
"""

from __future__ import annotations

import re
from decimal import Decimal

# The grammar of resource.Quantity, restricted to non-negative values.
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# A Go duration as CEL's duration() accepts it, without a sign: "90s", "1h30m", "500ms".
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(QUANTITY_PATTERN)
_NUMBER_AND_SUFFIX = re.compile(r"^([0-9.]+)(.*)$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)")
_SECONDS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}


def parse_quantity(text: str) -> Decimal:
    """The value of a quantity in base units (bytes, cores); ValueError if malformed."""
    if not _QUANTITY.fullmatch(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity such as 512Mi, 10Gi or 250m")
    match = _NUMBER_AND_SUFFIX.match(text)
    assert match is not None  # the full pattern matched, so this one does too
    number, suffix = Decimal(match.group(1)), match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))  # exponent form: 1e3, 5E-2


def parse_duration(text: str) -> Decimal:
    """The length of a Go-style duration in seconds; ValueError if malformed."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m or 1h30m")
    return sum(
        (Decimal(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text)),
        start=Decimal(0),
    )
