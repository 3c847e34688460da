"""kopf wiring: one long-lived worker per PulseBase, woken by anything that matters.

kopf's change-detecting handlers (on.create/on.update) keep their own bookkeeping in
annotations, which would mean a write on every pass. Instead each PulseBase gets a
daemon that runs the same level-based pass (`stack.reconcile`) whenever it is woken: by
an event on the PulseBase itself, by an event on one of its workloads (so status follows
readiness within seconds), or by the resync timer that corrects drift. Bursts of events
collapse into one pass. The one change-detecting handler is for deletion, which must run
behind the finalizer even if the operator was down when the PulseBase was deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from pulsebase_operator.api import models
from pulsebase_operator.kube.client import Kube, PermanentError, TemporaryError
from pulsebase_operator.policy import readiness
from pulsebase_operator.reconcile import health, stack
from pulsebase_operator.render import labels
from pulsebase_operator.telemetry import health as health_metrics
from pulsebase_operator.telemetry import metrics

log = structlog.get_logger("pulsebase_operator.reconcile")

DEBOUNCE_SECONDS = 0.3
MAX_BACKOFF_SECONDS = 120.0


@dataclass
class Options:
    """What `pulsebase-operator run` configures before kopf starts."""

    kube: Kube | None = None
    connection: kopf.ConnectionInfo | None = None  # None: the pod's service account
    resync_seconds: float = 60.0
    probe_scope: health.Scope = health.Scope.ALL
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)


OPTIONS = Options()
READINGS = health.Readings()
_wakeups: dict[tuple[str, str], asyncio.Event] = {}


def _wake(namespace: str | None, name: str | None) -> None:
    if namespace and name and (event := _wakeups.get((namespace, name))):
        if not event.is_set():
            metrics.QUEUE_DEPTH.inc()
        event.set()


class NoDiffBase(kopf.DiffBaseStorage):
    """Keep no copy of the last handled spec on the object.

    The only change-detecting handler is the deletion one, which needs no diff; kopf's
    default would write the whole spec into an annotation on every change (one more
    write, and a spec near the size limit could no longer be annotated or deleted).
    """

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{models.GROUP}/finalizer"
    settings.persistence.diffbase_storage = NoDiffBase()
    # Events are posted by the pass itself, with a reason a person can act on.
    settings.posting.level = logging.ERROR
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


@kopf.on.cleanup()
async def shut_down(**_: Any) -> None:
    """kopf has stopped every pass: hand over leadership now, not when the process ends."""
    for callback in OPTIONS.on_shutdown:
        await asyncio.to_thread(callback)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's watches use the same identity as the passes' requests."""
    if OPTIONS.connection is not None:
        return OPTIONS.connection
    return kopf.login_with_service_account(**kwargs)


@kopf.on.event(models.GROUP, models.VERSION, models.PLURAL)
def pulsebase_changed(namespace: str | None, name: str | None, **_: Any) -> None:
    _wake(namespace, name)


def _workload_changed(namespace: str | None, labels_: Mapping[str, str], **_: Any) -> None:
    _wake(namespace, labels_.get(labels.INSTANCE))


_OURS = {"app.kubernetes.io/managed-by": labels.MANAGED_BY}
for _group, _plural in (("apps", "statefulsets"), ("apps", "deployments"), ("batch", "jobs")):
    kopf.on.event(_group, "v1", _plural, labels=_OURS, id=f"wake-on-{_plural}")(
        lambda namespace, labels, **kw: _workload_changed(namespace, labels)
    )


@kopf.daemon(models.GROUP, models.VERSION, models.PLURAL, cancellation_timeout=5.0)
async def keep_stack(
    body: kopf.Body, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    kube = OPTIONS.kube
    assert kube is not None, "run() sets the API client before kopf starts"
    assert namespace is not None, "PulseBase is a namespaced resource"
    wake = _wakeups.setdefault((namespace, name), asyncio.Event())
    failures = 0
    try:
        while not stopped:
            if wake.is_set():
                metrics.QUEUE_DEPTH.dec()
            wake.clear()
            delay = await _one_pass(kube, _snapshot(body), failures)
            failures = failures + 1 if delay is None else 0
            if delay is None:
                delay = min(2.0**failures, MAX_BACKOFF_SECONDS)
            try:
                await asyncio.wait_for(wake.wait(), timeout=delay)
                await asyncio.sleep(DEBOUNCE_SECONDS)
            except TimeoutError:
                pass
    finally:
        if _wakeups.pop((namespace, name), asyncio.Event()).is_set():
            metrics.QUEUE_DEPTH.dec()
        health_metrics.STORE.forget(namespace=namespace, name=name)


@kopf.daemon(
    models.GROUP, models.VERSION, models.PLURAL, id="probe-dependencies", cancellation_timeout=5.0
)
async def keep_probing(
    body: kopf.Body, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """Probe the dependencies every spec.monitoring.probeInterval and wake the pass,
    which writes what the round found. A paused or invalid PulseBase is not probed."""
    kube = OPTIONS.kube
    assert kube is not None, "run() sets the API client before kopf starts"
    assert namespace is not None, "PulseBase is a namespaced resource"
    if OPTIONS.probe_scope is health.Scope.NONE:
        return
    try:
        while not stopped:
            interval = 30.0
            snapshot = _snapshot(body)
            annotations = snapshot["metadata"].get("annotations") or {}
            try:
                pb = models.PulseBase.from_body(snapshot)
            except ValidationError:
                pb = None
            if pb is not None and not readiness.is_paused(annotations):
                interval = health.interval_of(pb)
                started = time.monotonic()
                try:
                    found = await asyncio.to_thread(
                        health.probe_round,
                        kube,
                        pb,
                        scope=OPTIONS.probe_scope,
                        previous=READINGS.get(namespace, name),
                    )
                except TemporaryError as error:
                    log.warning(
                        "probe round skipped",
                        namespace=namespace,
                        name=name,
                        step=error.step,
                        reason=error.detail,
                    )
                else:
                    metrics.PROBE_SECONDS.observe(time.monotonic() - started)
                    READINGS.put(namespace, name, found)
                    _wake(namespace, name)
            await stopped.wait(interval)
    finally:
        READINGS.forget(namespace, name)


@kopf.on.delete(models.GROUP, models.VERSION, models.PLURAL)
async def release_leftovers(body: kopf.Body, **_: Any) -> None:
    kube = OPTIONS.kube
    assert kube is not None, "run() sets the API client before kopf starts"
    snapshot = _snapshot(body)

    def event(reason: str, message: str) -> None:
        kube.post_event(owner=snapshot, reason=reason, message=message, warning=True)

    try:
        deleted = await asyncio.to_thread(stack.release, kube, snapshot, event=event)
    except TemporaryError as error:
        raise kopf.TemporaryError(str(error), delay=10) from error
    if deleted:
        log.info(
            "deletion handled what owner references would not",
            changed=deleted,
            namespace=body["metadata"]["namespace"],
            name=body["metadata"]["name"],
        )


async def _one_pass(kube: Kube, body: dict[str, Any], failures: int) -> float | None:
    """Run a pass off the event loop; the delay to the next one, None after a failure."""
    meta = body["metadata"]
    correlation_id = uuid.uuid4().hex[:16]
    structlog.contextvars.bind_contextvars(
        namespace=meta["namespace"], name=meta["name"], correlation_id=correlation_id
    )
    started = time.monotonic()
    try:
        outcome = await asyncio.to_thread(
            stack.reconcile,
            kube,
            body,
            correlation_id=correlation_id,
            health=_findings(body),
            backups_seen=health.backups_seen(
                READINGS.get(meta["namespace"], meta["name"]), scope=OPTIONS.probe_scope
            ),
        )
        health_metrics.STORE.update(
            namespace=meta["namespace"],
            name=meta["name"],
            ready=outcome.phase == models.Phase.READY.value,
            health=outcome.health,
            backup=outcome.backup,
            newest_wal=outcome.newest_wal,
        )
        metrics.PASS_SECONDS.labels("converged" if not outcome.changes else "changed").observe(
            time.monotonic() - started
        )
        metrics.WRITES.inc(outcome.writes)
        # A pass that changed something, or the phase, says so at info; the rest at debug.
        level = logging.INFO if outcome.changes or outcome.phase_changed else logging.DEBUG
        log.log(
            level,
            "pass complete",
            decision=outcome.decision,
            phase=outcome.phase,
            changes=outcome.changes,
            writes=outcome.writes,
            seconds=round(time.monotonic() - started, 3),
        )
        return OPTIONS.resync_seconds
    except TemporaryError as error:
        metrics.PASS_ERRORS.labels("temporary").inc()
        log.warning("pass deferred", step=error.step, reason=error.detail, attempt=failures + 1)
        return None
    except PermanentError as error:
        metrics.PASS_ERRORS.labels("permanent").inc()
        log.error("pass failed", step=error.step, reason=error.detail)
        await asyncio.to_thread(
            stack.report_failure, kube, body, error=error, correlation_id=correlation_id
        )
        return OPTIONS.resync_seconds
    finally:
        structlog.contextvars.unbind_contextvars("namespace", "name", "correlation_id")


def _findings(body: Mapping[str, Any]) -> dict[str, readiness.Probed] | None:
    """The newest probe round as status shows it; None before the first round ends."""
    meta = body["metadata"]
    found = READINGS.get(meta["namespace"], meta["name"])
    if found is None:
        return None
    return health.findings(
        readings=found.readings,
        skipped=found.skipped,
        now=time.time(),
        interval_seconds=found.interval_seconds,
    )


def _snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """A plain copy of kopf's live view, so a pass sees one consistent object."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(body)  # type: ignore[no-any-return]
