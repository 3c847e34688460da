"""Probe every dependency of one stack at once, and give up on the slow ones in time.

Each probe runs in its own daemon thread. `run` waits until `timeout` plus a short grace
has passed and then reports whatever has not finished as a Timeout, without waiting
further: one hung dependency never holds up the readings of the others, nor the reconcile
pass that asked. A thread left behind ends when its own client timeouts fire; being a
daemon, it never keeps the process from exiting.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import structlog

from pulsebase_operator.probes import http, objectstore, postgres, redis
from pulsebase_operator.probes.reading import PROBE_FAILED, TIMEOUT, Reading, failed, now, title
from pulsebase_operator.probes.redaction import scrub
from pulsebase_operator.probes.targets import (
    HttpTarget,
    ObjectStoreTarget,
    PostgresTarget,
    RedisTarget,
    Target,
)

log = structlog.get_logger("pulsebase_operator.probes")

# Time for a probe that hit its client timeout to build and hand back its reading.
GRACE_SECONDS = 1.0


def run(
    targets: Mapping[str, Target],
    *,
    timeout: float,
    previous: Mapping[str, Reading] | None = None,
) -> dict[str, Reading]:
    """One Reading per component; never raises for a probe that fails or hangs."""
    previous = previous or {}
    measured_at = now()
    for component, target in targets.items():
        if not isinstance(target, PostgresTarget | RedisTarget | ObjectStoreTarget | HttpTarget):
            raise TypeError(f"no probe for {component}: {type(target).__name__}")

    done: dict[str, Reading] = {}
    lock = threading.Lock()

    def work(component: str, target: Target) -> None:
        reading = _probe_safely(
            component, target, timeout=timeout, previous=previous.get(component)
        )
        with lock:
            done[component] = reading

    threads = [
        threading.Thread(
            target=work, args=(component, target), name=f"probe-{component}", daemon=True
        )
        for component, target in targets.items()
    ]
    deadline = time.monotonic() + timeout + GRACE_SECONDS
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))

    with lock:
        finished = dict(done)
    readings = {}
    for component, target in targets.items():
        reading = finished.get(component)
        if reading is None:
            reading = failed(
                component,
                reason=TIMEOUT,
                message=f"{title(component)} did not answer within {timeout:g} s.",
                measured_at=measured_at,
                values=_blank_values(target),
                previous=previous.get(component),
            )
        # The key names the component; an HTTP probe serves the CDN as well as the API.
        readings[component] = replace(reading, component=component)
    return readings


def _probe_safely(
    component: str, target: Target, *, timeout: float, previous: Reading | None
) -> Reading:
    try:
        return _probe(target, timeout=timeout, previous=previous)
    except Exception as error:
        # A bug in a probe, not a dependency failure: report it and keep the others going.
        # No traceback with it: rendered with locals it could show a password.
        frame = traceback.extract_tb(error.__traceback__)[-1]
        log.warning(
            "probe failed unexpectedly",
            component=component,
            error=scrub(f"{type(error).__name__}: {error}", secrets=_secrets(target)),
            where=f"{frame.filename}:{frame.lineno} in {frame.name}",
        )
        return failed(
            component,
            reason=PROBE_FAILED,
            message=f"The {component} probe failed unexpectedly ({type(error).__name__}).",
            measured_at=now(),
            values=_blank_values(target),
            previous=previous,
        )


def _probe(target: Target, *, timeout: float, previous: Reading | None) -> Reading:
    # Looked up at call time, so a test can replace one module's probe.
    if isinstance(target, PostgresTarget):
        return postgres.probe(target, timeout=timeout, previous=previous)
    if isinstance(target, RedisTarget):
        return redis.probe(target, timeout=timeout, previous=previous)
    if isinstance(target, ObjectStoreTarget):
        return objectstore.probe(target, timeout=timeout, previous=previous)
    return http.probe(target, timeout=timeout, previous=previous)


def _secrets(target: Target) -> tuple[str | None, ...]:
    if isinstance(target, PostgresTarget):
        return (target.password,)
    if isinstance(target, RedisTarget):
        return (target.password,)
    if isinstance(target, ObjectStoreTarget):
        return (target.access_key_id, target.secret_access_key)
    return ()


def _blank_values(target: Target) -> dict[str, Any]:
    if isinstance(target, PostgresTarget):
        return postgres.blank_values(target)
    if isinstance(target, RedisTarget):
        return redis.blank_values(target)
    if isinstance(target, ObjectStoreTarget):
        return objectstore.blank_values(target)
    return http.blank_values(target)
