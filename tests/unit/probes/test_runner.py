from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog.testing

from pulsebase_operator import probes
from pulsebase_operator.probes import HttpTarget, PostgresTarget, Reading, RedisTarget, runner
from pulsebase_operator.probes.reading import now

POSTGRES = PostgresTarget(host="db", port=5432, database="app", user="u", password="secret-pw")
REDIS = RedisTarget(endpoints=(("cache", 6379),))
API = HttpTarget(url="http://api/healthz")


def reading(component: str, *, state: Any = None) -> Reading:
    return Reading(
        component=component,
        healthy=True,
        reason="Healthy",
        message="fine.",
        measured_at=now(),
        values={},
        state=state,
    )


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # lets the abandoned probe thread finish


def test_a_hung_probe_is_reported_as_a_timeout_without_holding_up_the_others(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    def hang(target: PostgresTarget, *, timeout: float, previous: Reading | None) -> Reading:
        release.wait(60)
        return reading("postgres")

    monkeypatch.setattr(probes.postgres, "probe", hang)
    monkeypatch.setattr(probes.redis, "probe", lambda t, **_: reading("redis"))
    monkeypatch.setattr(runner, "GRACE_SECONDS", 0.2)

    started = time.monotonic()
    readings = probes.run({"postgres": POSTGRES, "redis": REDIS}, timeout=0.3)

    assert time.monotonic() - started < 5  # far below the hang
    assert readings["redis"].healthy
    hung = readings["postgres"]
    assert (hung.healthy, hung.reason) == (False, "Timeout")
    assert hung.message == "PostgreSQL did not answer within 0.3 s."
    assert hung.values == probes.postgres.blank_values(POSTGRES)


def test_a_timed_out_probe_keeps_the_previous_state_for_the_next_rate(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    monkeypatch.setattr(probes.redis, "probe", lambda t, **_: release.wait(60))
    monkeypatch.setattr(runner, "GRACE_SECONDS", 0.1)
    before = reading("redis", state={"counters": 1})

    readings = probes.run({"redis": REDIS}, timeout=0.1, previous={"redis": before})

    assert readings["redis"].state == {"counters": 1}


def test_a_probe_that_raises_becomes_an_unhealthy_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(target: PostgresTarget, **_: Any) -> Reading:
        raise RuntimeError(f"bug while holding {target.password}")

    monkeypatch.setattr(probes.postgres, "probe", broken)

    with structlog.testing.capture_logs() as logs:
        failed = probes.run({"postgres": POSTGRES}, timeout=1)["postgres"]

    assert (failed.healthy, failed.reason) == (False, "ProbeFailed")
    assert "RuntimeError" in failed.message
    assert "secret-pw" not in failed.message
    [logged] = logs
    assert logged["error"] == "RuntimeError: bug while holding ***"
    assert "in broken" in logged["where"]


def test_each_reading_is_named_by_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probes.http, "probe", lambda t, **_: reading("api"))

    readings = probes.run({"api": API, "cdn": HttpTarget(url="http://cdn/")}, timeout=1)

    assert {key: r.component for key, r in readings.items()} == {"api": "api", "cdn": "cdn"}


def test_each_probe_gets_its_own_previous_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def record(target: HttpTarget, *, timeout: float, previous: Reading | None) -> Reading:
        seen[target.url] = previous.state if previous else None
        return reading("api")

    monkeypatch.setattr(probes.http, "probe", record)
    previous = {"api": reading("api", state="api-state")}

    probes.run({"api": API, "cdn": HttpTarget(url="http://cdn/")}, timeout=1, previous=previous)

    assert seen == {"http://api/healthz": "api-state", "http://cdn/": None}


def test_a_target_of_no_known_kind_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="no probe for postgres"):
        probes.run({"postgres": "postgresql://db"}, timeout=1)  # type: ignore[dict-item]


def test_targets_hide_their_secrets_from_repr() -> None:
    assert "secret-pw" not in repr(POSTGRES)
    assert "hunter2" not in repr(RedisTarget(endpoints=(), password="hunter2"))
