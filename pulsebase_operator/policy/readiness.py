"""From what the cluster reports to what status says: per workload, per component,
and for the whole stack (phase, conditions, one-sentence message).

Pure: the live objects, the previous conditions and the current time come in as
arguments, so every outcome is a unit test.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.policy import backups
from pulsebase_operator.render import monitoring, naming
from pulsebase_operator.render.parts import Component, Workload

CONDITION_OF = {
    "postgres": "PostgresReady",
    "redis": "RedisReady",
    "objectStorage": "ObjectStorageReady",
    "api": "ApiReady",
    "cdn": "CdnReady",
}
# Conditions from the live probes, beside the ones from workload readiness.
HEALTH_CONDITION_OF = {
    "postgres": "PostgresHealthy",
    "redis": "RedisHealthy",
    "objectStorage": "ObjectStorageHealthy",
    "api": "ApiHealthy",
}
TITLE_OF = {
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "objectStorage": "object storage",
    "api": "the API",
    "cdn": "the CDN",
}


ALERT_RULES = "AlertRulesApplied"
ALERT_RULES_NOT_SERVED = "KindNotServed"


class State(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    FAILED = "Failed"


@dataclass(frozen=True)
class Probed:
    """What the last live probe of one dependency found, as status reports it."""

    healthy: bool | None  # None: not probed, or no result yet
    reason: str
    message: str
    values: Mapping[str, Any]  # status.health.<component>; empty when not probed


@dataclass(frozen=True)
class Assessment:
    state: State
    message: str
    replicas: int | None = None
    ready_replicas: int | None = None


def _generation_seen(obj: Mapping[str, Any]) -> bool:
    observed = obj.get("status", {}).get("observedGeneration")
    return observed is not None and observed >= obj["metadata"].get("generation", 0)


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond  # type: ignore[no-any-return]
    return None


def assess(workload: Workload, live: Mapping[str, Any] | None) -> Assessment:
    label = f"{workload.kind} {workload.name}"
    if live is None:
        return Assessment(State.PROGRESSING, f"{label} is being created")
    if workload.kind == "Job":
        return _assess_job(label, live)
    return _assess_replicas(label, live)


def _assess_job(label: str, live: Mapping[str, Any]) -> Assessment:
    status = live.get("status", {})
    if status.get("succeeded"):
        return Assessment(State.READY, f"{label} completed")
    failed = _condition(live, "Failed")
    if failed and failed.get("status") == "True":
        reason = failed.get("message") or failed.get("reason") or "it failed"
        return Assessment(State.FAILED, f"{label} failed: {reason}")
    return Assessment(State.PROGRESSING, f"{label} is running")


def _assess_replicas(label: str, live: Mapping[str, Any]) -> Assessment:
    want = live.get("spec", {}).get("replicas", 1)
    status = live.get("status", {})
    # Available, not merely ready: a pod counts once it has been ready for the workload's
    # minReadySeconds, as a rolling update counts it (an absent field is zero).
    ready = min(status.get("readyReplicas", 0), status.get("availableReplicas", 0))
    updated = status.get("updatedReplicas", 0)
    counts = {"replicas": want, "ready_replicas": ready}

    progress = _condition(live, "Progressing")
    if progress and progress.get("reason") == "ProgressDeadlineExceeded":
        return Assessment(
            State.FAILED,
            f"{label} stopped progressing: {progress.get('message', '')}".rstrip(": "),
            **counts,
        )
    failure = _condition(live, "ReplicaFailure")
    if failure and failure.get("status") == "True":
        return Assessment(State.FAILED, f"{label}: {failure.get('message', '')}", **counts)
    if not _generation_seen(live):
        return Assessment(State.PROGRESSING, f"{label} is picking up a change", **counts)
    if updated < want:
        return Assessment(
            State.PROGRESSING, f"{label} is rolling out ({updated}/{want} updated)", **counts
        )
    if ready < want:
        return Assessment(State.PROGRESSING, f"{label} has {ready}/{want} pods ready", **counts)
    return Assessment(State.READY, f"{label} has {ready}/{want} pods ready", **counts)


def component_status(
    component: Component,
    live: Mapping[tuple[str, str], Mapping[str, Any]],
    problem: str | None = None,
) -> tuple[State, models.ComponentStatus]:
    """The state of one component: its worst workload, or a configuration problem."""
    if component.mode == "disabled":
        return State.READY, models.ComponentStatus(mode="disabled", ready=True)
    assessments = [assess(w, live.get((w.kind, w.name))) for w in component.workloads]
    first = assessments[0] if assessments else None
    if problem is not None:
        state, message = State.FAILED, problem
    elif not assessments:
        state, message = State.READY, f"external, at {component.endpoint}"
    else:
        worst = _worst(assessments)
        state, message = worst.state, worst.message
    return state, models.ComponentStatus(
        mode=component.mode,
        ready=state is State.READY,
        replicas=first.replicas if first else None,
        ready_replicas=first.ready_replicas if first else None,
        endpoint=component.endpoint,
        message=message,
    )


def _worst(assessments: Sequence[Assessment]) -> Assessment:
    order = {State.FAILED: 0, State.PROGRESSING: 1, State.READY: 2}
    return min(assessments, key=lambda a: order[a.state])


def condition(
    *,
    kind: str,
    true: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    previous: Sequence[Mapping[str, Any]],
    now: str,
) -> models.Condition:
    """A condition whose lastTransitionTime moves only when its status does; a `true` of
    None is Unknown."""
    status = "Unknown" if true is None else ("True" if true else "False")
    since = now
    for old in previous:
        if old.get("type") == kind and old.get("status") == status:
            since = old.get("lastTransitionTime") or now
    return models.Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


@dataclass(frozen=True)
class Verdict:
    status: models.PulseBaseStatus
    decision: str  # the one sentence logged and shown as status.message


def stack_status(
    *,
    pb: models.PulseBase,
    components: Sequence[Component],
    live: Mapping[tuple[str, str], Mapping[str, Any]],
    buckets: models.BucketStatus,
    previous: Mapping[str, Any],
    now: str,
    problems: Mapping[str, str] | None = None,
    error: str | None = None,
    health: Mapping[str, Probed] | None = None,
    unserved: Collection[tuple[str, str]] = (),
    backup: models.BackupStatus | None = None,
    backup_health: tuple[bool | None, str, str] | None = None,
) -> Verdict:
    """Status for the whole stack. `health` holds the live probes' last findings (None
    leaves status.health as the previous pass wrote it); `unserved` the optional kinds
    the spec asked for that the cluster does not serve."""
    problems = problems or {}
    generation = pb.metadata.generation
    old_conditions = previous.get("conditions") or []
    cond = _condition_factory(generation=generation, previous=old_conditions, now=now)

    states: dict[str, State] = {}
    statuses: dict[str, models.ComponentStatus] = {}
    conditions: list[models.Condition] = []
    for component in components:
        state, status = component_status(component, live, problems.get(component.name))
        probed = (health or {}).get(component.name)
        # Running pods that do not answer: the dependency is down for its users. While
        # the pods still start, the probe failing is expected and says nothing new.
        if probed is not None and probed.healthy is False and state is State.READY:
            state = State.FAILED
            status = status.model_copy(update={"ready": False, "message": probed.message})
        states[component.name], statuses[component.name] = state, status
        conditions.append(
            cond(CONDITION_OF[component.name], state is State.READY, state.value, status.message)
        )
    for name, probed in (health or {}).items():
        if name in HEALTH_CONDITION_OF:
            conditions.append(
                cond(HEALTH_CONDITION_OF[name], probed.healthy, probed.reason, probed.message)
            )

    in_use = [c.name for c in components if c.mode != "disabled"]
    ready = [n for n in in_use if states[n] is State.READY]
    failed = [n for n in in_use if states[n] is State.FAILED]
    waiting = [n for n in in_use if states[n] is State.PROGRESSING]

    if error is not None:
        phase, decision = models.Phase.DEGRADED, f"The last pass failed: {error}"
    elif failed:
        phase = models.Phase.DEGRADED
        names = _names(failed)
        decision = f"{names[0].upper()}{names[1:]} failed: {_sentence(statuses[failed[0]].message)}"
    elif waiting:
        phase = models.Phase.PROGRESSING
        decision = f"Waiting for {_names(waiting)}: {_sentence(statuses[waiting[0]].message)}"
    else:
        phase, decision = models.Phase.READY, "All components are ready."

    conditions[:0] = [
        cond("Ready", phase is models.Phase.READY, phase.value, decision),
        cond(
            "Progressing",
            bool(waiting),
            "Converging" if waiting else "Converged",
            f"Waiting for {_names(waiting)}." if waiting else "Nothing left to do.",
        ),
        cond(
            "Degraded",
            bool(failed) or error is not None,
            "ComponentFailed" if failed else ("PassFailed" if error else "AsExpected"),
            decision if failed or error else "No component has failed.",
        ),
        cond("Suspended", False, *not_suspended(pb.metadata.annotations)),
    ]
    # Alert rules are an extra, not a component: without them the stack is still Ready.
    conditions.append(cond(ALERT_RULES, *alert_rules(pb, unserved=unserved)))
    # Recoverability is reported beside readiness: stale backups page, but the stack
    # still serves its users, so they do not make it Degraded.
    if backup_health is not None:
        conditions.append(cond(backups.CONDITION, *backup_health))

    old_version = previous.get("version")
    # Claim a running release only when API pods run it (not when scaled to zero).
    api_running = states.get("api") is State.READY and (statuses["api"].ready_replicas or 0) > 0
    version = pb.spec.version if api_running else old_version
    return Verdict(
        status=models.PulseBaseStatus(
            observed_generation=generation,
            phase=phase,
            message=decision,
            version=version,
            ready_components=f"{len(ready)}/{len(in_use)}",
            conditions=conditions,
            components=statuses,
            buckets=buckets,
            backup=backup
            if backup_health is not None
            else _keep(previous, "backup", models.BackupStatus),
            health=_health(health, previous),
        ),
        decision=decision,
    )


def _health(health: Mapping[str, Probed] | None, previous: Mapping[str, Any]) -> Any:
    if health is None:
        return previous.get("health")
    measured = {name: dict(probed.values) for name, probed in health.items() if probed.values}
    return measured or None


def alert_rules(
    pb: models.PulseBase, *, unserved: Collection[tuple[str, str]]
) -> tuple[bool, str, str]:
    """The AlertRulesApplied condition as (true, reason, message)."""
    name = f"{monitoring.KIND} {naming.alerts(pb.metadata.name)}"
    if not pb.spec.monitoring.prometheus_rule:
        return False, "Disabled", "spec.monitoring.prometheusRule is false."
    if (monitoring.API_VERSION, monitoring.KIND) in unserved:
        return (
            False,
            ALERT_RULES_NOT_SERVED,
            f"The API server does not serve {monitoring.API_VERSION} {monitoring.KIND}, so "
            f"{name} is not applied; install prometheus-operator's CRDs and the operator "
            "applies it within a few minutes.",
        )
    return True, "Applied", f"{name} holds the alert rules."


def _condition_factory(
    *, generation: int | None, previous: Sequence[Mapping[str, Any]], now: str
) -> Any:
    def make(kind: str, true: bool | None, reason: str, message: str) -> models.Condition:
        return condition(
            kind=kind,
            true=true,
            reason=reason,
            message=message,
            generation=generation,
            previous=previous,
            now=now,
        )

    return make


def _keep(previous: Mapping[str, Any], field: str, model: type[models.Model]) -> Any:
    """Parts of status other passes own (backups, health) are carried over unchanged."""
    value = previous.get(field)
    return model.model_validate(value) if value else None


def _sentence(text: str) -> str:
    return text if text.endswith(".") else f"{text}."


def _names(components: Sequence[str]) -> str:
    titles = [TITLE_OF[c] for c in components]
    if len(titles) == 1:
        return titles[0]
    return ", ".join(titles[:-1]) + " and " + titles[-1]


def failed_status(
    *,
    pb_body: Mapping[str, Any],
    previous: Mapping[str, Any],
    reason: str,
    message: str,
    now: str,
) -> dict[str, Any]:
    """Status for a spec the operator cannot act on at all (nothing was changed)."""
    generation = pb_body.get("metadata", {}).get("generation")
    old = previous.get("conditions") or []
    cond = _condition_factory(generation=generation, previous=old, now=now)
    ready = cond("Ready", False, reason, message)
    degraded = cond("Degraded", True, reason, message)
    # Not paused any more, whatever an earlier paused pass wrote.
    suspended = cond("Suspended", False, "Reconciling", "The operator reconciles this PulseBase.")
    kept = [c for c in old if c.get("type") not in ("Ready", "Degraded", "Suspended")]
    return {
        **previous,
        "observedGeneration": generation,
        "phase": models.Phase.FAILED.value,
        "message": message,
        "conditions": [dump(ready), dump(degraded), dump(suspended), *kept],
    }


PAUSE_ANNOTATION = "pulsebase.io/paused"


def is_paused(annotations: Mapping[str, str]) -> bool:
    return annotations.get(PAUSE_ANNOTATION, "").lower() == "true"


def not_suspended(annotations: Mapping[str, str]) -> tuple[str, str]:
    """Reason and message of Suspended=False. A pause value other than true or false
    is named: whoever wrote paused=yes believes the stack is paused."""
    value = annotations.get(PAUSE_ANNOTATION)
    if value is None or value.lower() == "false":
        return "Reconciling", "The operator reconciles this PulseBase."
    return (
        "PauseValueIgnored",
        f"The annotation {PAUSE_ANNOTATION} is {value!r}, and only 'true' pauses: "
        "the operator reconciles this PulseBase.",
    )


def paused_status(
    *, pb_body: Mapping[str, Any], previous: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """Status while paused: everything as last observed, plus Suspended=True."""
    generation = pb_body.get("metadata", {}).get("generation")
    old = previous.get("conditions") or []
    cond = _condition_factory(generation=generation, previous=old, now=now)
    message = (
        f"Reconciliation is paused by the annotation {PAUSE_ANNOTATION}=true; remove it to resume."
    )
    suspended = cond("Suspended", True, "Paused", message)
    kept = [c for c in old if c.get("type") != "Suspended"]
    return {**previous, "message": message, "conditions": [*kept, dump(suspended)]}


def dump(model: models.Model) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
