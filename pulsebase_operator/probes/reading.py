"""What one probe measured, and the reasons it can give.

A Reading is the whole outcome of probing one dependency once: healthy or not, a CamelCase
reason for the condition, one sentence for people, the measured values for
status.health.<component>, and an opaque `state` the next probe of the same target gets
back as `previous`. The state is what turns cumulative counters (cache hits, statement
times) into rates over the interval between two probes.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HEALTHY = "Healthy"
UNREACHABLE = "Unreachable"
TIMEOUT = "Timeout"
AUTHENTICATION_FAILED = "AuthenticationFailed"
PROBE_FAILED = "ProbeFailed"  # a fault in the probe itself, not in the dependency

TITLES = {
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "objectStorage": "Object storage",
    "api": "The API",
}


@dataclass(frozen=True)
class Reading:
    component: str  # "postgres" | "redis" | "objectStorage" | "api"
    healthy: bool
    reason: str  # CamelCase condition reason
    message: str  # one sentence for kubectl describe; never a secret
    measured_at: datetime.datetime  # UTC, aware
    values: Mapping[str, Any]  # camelCase keys, JSON-serialisable
    # Cumulative counters can be large and mean nothing to a reader, so they stay out of
    # repr and out of equality.
    state: Any = field(default=None, repr=False, compare=False)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def title(component: str) -> str:
    return TITLES.get(component, component)


def failed(
    component: str,
    *,
    reason: str,
    message: str,
    measured_at: datetime.datetime,
    values: Mapping[str, Any],
    previous: Reading | None,
) -> Reading:
    """An unhealthy Reading that keeps the previous state.

    A rate taken after an outage then spans the whole gap since the last good probe,
    instead of waiting one more probe interval for a fresh baseline.
    """
    return Reading(
        component=component,
        healthy=False,
        reason=reason,
        message=message,
        measured_at=measured_at,
        values=values,
        state=previous.state if previous is not None else None,
    )


def seconds(value: float) -> float:
    # Microseconds are more than any probe can resolve; the rest is noise in status.
    return round(value, 6)


def duration(value: float) -> str:
    """A measured time for a sentence: "3 ms", "1.2 s"."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"
