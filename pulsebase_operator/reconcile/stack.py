"""One reconcile pass: the current spec -> the whole desired stack -> the cluster -> status.

Level-based: creation, updates, resumption after a restart and periodic drift
correction all run this same pass. It reads the children, writes only what differs,
and reports one decision sentence.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from pulsebase_operator.api import models
from pulsebase_operator.api.quantity import parse_quantity
from pulsebase_operator.kube.client import Kube, PermanentError, TemporaryError
from pulsebase_operator.policy import backups, readiness, sync
from pulsebase_operator.reconcile import manual
from pulsebase_operator.render import (
    certificates,
    labels,
    naming,
    postgres,
    restore,
    stack,
)
from pulsebase_operator.render.parts import GeneratedSecret

log = structlog.get_logger("pulsebase_operator.reconcile")

# Every kind a builder may emit into any cluster; the pass lists each once to compare and
# prune. The kinds of `stack.OPTIONAL_KINDS` join them where the API server serves them.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("policy/v1", "PodDisruptionBudget"),
)


@dataclass
class Outcome:
    decision: str
    phase: str
    writes: int = 0
    changes: list[str] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)  # status.health as written
    backup: dict[str, Any] = field(default_factory=dict)  # status.backup as written
    newest_wal: float | None = None  # Unix time, from this pass's reading of the bucket
    phase_changed: bool = False


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reconcile(
    kube: Kube,
    body: Mapping[str, Any],
    *,
    correlation_id: str,
    now: Callable[[], str] = utcnow,
    health: Mapping[str, readiness.Probed] | None = None,
    backups_seen: backups.Seen | None = None,
) -> Outcome:
    """One pass. `health` holds the live probes' newest findings (None: keep what
    status.health says); `backups_seen` the newest reading of the backups bucket."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    previous = dict(body.get("status") or {})
    writes = 0

    def event(reason: str, message: str, warning: bool = False) -> None:
        nonlocal writes
        kube.post_event(
            owner=dict(body),
            reason=reason,
            message=message,
            warning=warning,
            correlation_id=correlation_id,
        )
        writes += 1

    # Paused by hand: report it and touch nothing else, not even generated credentials.
    if readiness.is_paused(meta.get("annotations") or {}):
        status = readiness.paused_status(pb_body=body, previous=previous, now=now())
        if _differs(previous, status):
            kube.patch_status(namespace, name, _status_patch(previous, status))
            writes += 1
            event("Paused", status["message"])
        return Outcome(
            decision=status["message"], phase=previous.get("phase", "Pending"), writes=writes
        )

    def fail(reason: str, message: str) -> Outcome:
        """Report the refusal once, in status and an Event, and touch nothing else."""
        status = readiness.failed_status(
            pb_body=body, previous=previous, reason=reason, message=message, now=now()
        )
        patched = _differs(previous, status)
        if patched:
            kube.patch_status(namespace, name, _status_patch(previous, status))
            event(reason, message, warning=True)  # counts its own write
        return Outcome(
            decision=message, phase=models.Phase.FAILED.value, writes=writes + int(patched)
        )

    # A spec the models reject is reported, and nothing in the cluster is touched.
    try:
        pb = models.PulseBase.from_body(dict(body))
    except ValidationError as error:
        return fail("InvalidSpec", f"The spec is invalid: {_first_error(error)}")

    # A restore waits for its source: an empty database must never stand in for it.
    source, refused = _recovery_source(kube, pb)
    if refused is not None:
        return fail("RestoreRefused", refused)

    # Optional kinds (the PrometheusRule) are rendered, listed and pruned only where served.
    served = {k.key for k in stack.OPTIONAL_KINDS if kube.serves(k.api_version, k.plural)}
    rendered = stack.render(pb, served=served, recovery_source=source)

    # Credentials first: every pod that starts references them.
    existing = {
        s["metadata"]["name"]
        for s in kube.list("v1", "Secret", namespace, labels.prune_selector(name))
    }
    lost_credentials: dict[str, str] = {}
    for secret in rendered.secrets:
        if secret.name in existing:
            continue
        if secret.data_of and _has_volumes(kube, namespace, name, secret.data_of):
            lost_credentials[secret.data_of] = (
                f"Secret {secret.name} is missing but the data it unlocks is still there; "
                "new credentials would lock it out, so none are generated. Restore the "
                "Secret, or delete the volume claims to start empty"
            )
            continue
        if _create_secret(kube, secret):
            writes += 1
            event("CreatedSecret", f"Generated credentials in Secret {secret.name}")

    # Secrets the user points at must exist before pods can start; say which is missing.
    problems = {**_missing_references(kube, pb), **lost_credentials}

    # Compare, then apply only what differs and prune what is no longer desired.
    selector = labels.prune_selector(name)
    live = [
        obj
        for api_version, kind in (*CHILD_KINDS, *sorted(served))
        for obj in kube.list(api_version, kind, namespace, selector)
    ]
    the_plan = sync.plan(desired=rendered.objects, live=live, owner=body)
    live_by_key = {sync.key(obj): obj for obj in live}
    changes: list[str] = []
    for obj in the_plan.apply:
        verb = "Updated" if sync.key(obj) in live_by_key else "Created"
        live_by_key[sync.key(obj)] = kube.apply(obj)
        writes += 1
        changes.append(f"{verb.lower()} {obj['kind']} {obj['metadata']['name']}")
        event(verb, f"{verb} {obj['kind']} {obj['metadata']['name']}")
    for replacement in the_plan.replace:
        writes += _replace(kube, replacement, event)
        obj = replacement.live
        changes.append(f"replacing {obj['kind']} {obj['metadata']['name']}")
    for obj in the_plan.prune:
        kube.delete(obj)
        writes += 1
        live_by_key.pop(sync.key(obj), None)
        changes.append(f"pruned {obj['kind']} {obj['metadata']['name']}")
        event("Pruned", f"Deleted {obj['kind']} {obj['metadata']['name']}, no longer desired")

    # Backups from the newest reading of the bucket, and the newest finished drill Job.
    old_status = _backup_status_of(previous)
    drill = last_drill(
        kube,
        namespace=namespace,
        jobs=[o for (kind, _), o in live_by_key.items() if kind == "Job"],
        previous=old_status.last_drill if old_status else None,
    )
    backup_status, backup_health = backups.assess(
        pb, backups_seen, drill=drill, previous=old_status
    )

    # Status from what the cluster reports now.
    verdict = readiness.stack_status(
        pb=pb,
        components=rendered.components,
        live=live_by_key,
        buckets=rendered.buckets,
        previous=previous,
        now=now(),
        problems=problems,
        health=health,
        unserved=rendered.unserved,
        backup=backup_status,
        backup_health=backup_health,
    )
    status = readiness.dump(verdict.status)
    if _differs(previous, status):
        kube.patch_status(namespace, name, _status_patch(previous, status))
        writes += 1
        if previous.get("phase") != status["phase"]:
            phase = status["phase"]
            event(phase, verdict.decision, warning=phase in ("Degraded", "Failed"))
        # Said once, when it starts, so `kubectl describe` shows why no alerts exist.
        rules = _condition_of(status, readiness.ALERT_RULES)
        was = _condition_of(previous, readiness.ALERT_RULES).get("reason")
        if rules.get("reason") == readiness.ALERT_RULES_NOT_SERVED != was:
            event("AlertRulesNotApplied", rules["message"], warning=True)
    return Outcome(
        decision=verdict.decision,
        phase=status["phase"],
        writes=writes,
        changes=changes,
        health=dict(status.get("health") or {}),
        backup=dict(status.get("backup") or {}),
        newest_wal=_newest_wal(backups_seen),
        phase_changed=previous.get("phase") != status["phase"],
    )


def _backup_status_of(previous: Mapping[str, Any]) -> models.BackupStatus | None:
    """The status.backup written before; None when absent or not ours to read (edited
    by hand, say): the next reading writes it anew."""
    value = previous.get("backup")
    if not value:
        return None
    try:
        return models.BackupStatus.model_validate(value)
    except ValidationError:
        return None


def _newest_wal(seen: backups.Seen | None) -> float | None:
    if seen is None or seen.observed is None or seen.observed.newest_wal is None:
        return None
    return seen.observed.newest_wal.timestamp()


DRILL_CONTAINER = "check"


def last_drill(
    kube: Kube,
    *,
    namespace: str,
    jobs: list[Mapping[str, Any]],
    previous: models.DrillStatus | None,
) -> models.DrillStatus | None:
    """The newest finished drill Job as status reports it. Its report is the termination
    message of the pod's `check` container; the pods are read only for a Job not reported
    yet, so a steady pass reads nothing more."""
    finished: list[tuple[str, str, str | None]] = []
    for job in jobs:
        if (job["metadata"].get("labels") or {}).get(labels.COMPONENT_LABEL) != "drill":
            continue
        ended = _job_end(job)
        if ended is not None:
            finished.append((ended[0], job["metadata"]["name"], ended[1]))
    if not finished:
        return previous
    ended_at, job_name, failure = max(finished, key=lambda f: (f[0], f[1]))
    if previous is not None and previous.job == job_name:
        return previous
    message = _termination_message(kube, namespace=namespace, job_name=job_name)
    if message:
        try:
            return models.DrillStatus.model_validate({**json.loads(message), "job": job_name})
        except (ValueError, TypeError) as error:
            return models.DrillStatus(
                job=job_name,
                succeeded=False,
                finished=ended_at,
                failed_step="report",
                message=f"The drill's report is not readable: {str(error)[:300]}",
            )
    # No report: the pod never finished its check (deadline, eviction, pod deleted). A
    # Job that completed without one proved nothing, so it is no success either.
    return models.DrillStatus(
        job=job_name,
        succeeded=False,
        finished=ended_at,
        failed_step=None if failure else "report",
        message=failure or "The drill Job completed but its check left no report.",
    )


def _job_end(job: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(when the Job finished, why it failed or None); None while it runs."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        when = cond.get("lastTransitionTime") or status.get("completionTime") or ""
        if cond.get("type") == "Complete":
            return status.get("completionTime") or when, None
        if cond.get("type") == "Failed":
            why = cond.get("reason") or "Failed"
            detail = cond.get("message")
            return when, f"The drill Job failed ({why}){': ' + detail if detail else ''}."
    return None


def _termination_message(kube: Kube, *, namespace: str, job_name: str) -> str | None:
    newest: tuple[str, str] | None = None
    for pod in kube.list("v1", "Pod", namespace, f"job-name={job_name}"):
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            if container.get("name") != DRILL_CONTAINER:
                continue
            ended = (container.get("state") or {}).get("terminated") or {}
            if ended.get("message"):
                at = str(ended.get("finishedAt") or "")
                if newest is None or at > newest[0]:
                    newest = (at, str(ended["message"]))
    return newest[1] if newest else None


def _replace(kube: Kube, replacement: sync.Replacement, event: Callable[[str, str], None]) -> int:
    """Delete an object whose change the API server cannot apply in place; the next
    pass, woken by the deletion, creates it anew. Returns the writes made."""
    obj = replacement.live
    kind, name = obj["kind"], obj["metadata"]["name"]
    writes = 0
    if replacement.grow_claims_to is not None:
        for claim in _claims_of(kube, obj):
            have = claim["spec"]["resources"]["requests"]["storage"]
            if parse_quantity(have) < parse_quantity(replacement.grow_claims_to):
                kube.grow_claim(claim, replacement.grow_claims_to)
                writes += 1
                event(
                    "ResizingVolume",
                    f"Growing PersistentVolumeClaim "
                    f"{claim['metadata']['name']} from {have} to {replacement.grow_claims_to}",
                )
    kube.delete(obj, propagation=replacement.propagation)
    writes += 1
    if replacement.propagation == "Orphan":
        event(
            "Replacing",
            f"Recreating {kind} {name} with new volume claim templates; "
            "its pods keep running and are adopted by the new one",
        )
    else:
        event(
            "Replacing",
            f"Recreating {kind} {name}: its spec changed and cannot be updated in place",
        )
    return writes


def _claims_of(kube: Kube, statefulset: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The volume claims a StatefulSet made: named TEMPLATE-STATEFULSET-ORDINAL."""
    meta, spec = statefulset["metadata"], statefulset["spec"]
    selector = ",".join(f"{k}={v}" for k, v in spec["selector"]["matchLabels"].items())
    prefixes = tuple(
        f"{t['metadata']['name']}-{meta['name']}-" for t in spec.get("volumeClaimTemplates") or []
    )
    claims = kube.list("v1", "PersistentVolumeClaim", meta["namespace"], selector)
    return [c for c in claims if c["metadata"]["name"].startswith(prefixes)]


def release(kube: Kube, body: Mapping[str, Any], *, event: Callable[[str, str], None]) -> list[str]:
    """What deletion leaves behind, removed when `deletionPolicy: Delete` says so.

    Owner references collect every rendered child, and the StatefulSets' claim retention
    policy removes or keeps the volumes. Two things have no owner on purpose: generated
    credentials and Patroni's state ConfigMaps. Under Retain both stay with the volumes
    (a PulseBase recreated with the same name finds its data, passwords and cluster
    state); under Delete they go too, but only once a final full backup succeeded (or
    backups are off): until its Job ends this raises TemporaryError, and when it fails
    everything is kept as under Retain, with a Warning event. Returns what was deleted.
    """
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    policy = (body.get("spec") or {}).get("deletionPolicy", models.DeletionPolicy.RETAIN)
    if policy != models.DeletionPolicy.DELETE:
        return _keep_volumes(kube, namespace=namespace, name=name)
    final = manual.final_backup(kube, body)
    if final.state == "running":
        raise TemporaryError(
            "delete the volumes", f"waiting for the final backup, Job {final.job}, to finish"
        )
    if final.state != "succeeded":
        event(
            "FinalBackupFailed",
            f"No final backup ({final.reason}), so the volume claims and credentials are "
            "kept as under deletionPolicy Retain; delete them by hand once the data is "
            "safe elsewhere.",
        )
        return _keep_volumes(kube, namespace=namespace, name=name)
    doomed = kube.list("v1", "Secret", namespace, labels.prune_selector(name))
    patroni_state = f"{postgres.SCOPE_LABEL}={naming.postgres(name)}"
    doomed += [
        cm
        for cm in kube.list("v1", "ConfigMap", namespace, patroni_state)
        if labels.APPLIED_HASH not in (cm["metadata"].get("annotations") or {})
    ]
    for obj in doomed:
        kube.delete(obj)
    return [f"{obj['kind']} {obj['metadata']['name']}" for obj in doomed]


def _keep_volumes(kube: Kube, *, namespace: str, name: str) -> list[str]:
    """Under Retain, make sure no volume claim goes with its StatefulSet.

    A pass turns the StatefulSets' claim retention to Retain when the policy changes, but
    a policy changed just before the deletion, while paused or while the operator was
    down, would find them still set to Delete. So at deletion the claims are cut loose
    from their StatefulSets directly. Returns what was changed.
    """
    changed = []
    for statefulset in kube.list("apps/v1", "StatefulSet", namespace, labels.prune_selector(name)):
        uid = statefulset["metadata"]["uid"]
        policy = statefulset["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
        if policy.get("whenDeleted", "Retain") == "Retain":
            continue
        kube.merge_patch(
            statefulset,
            {"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain"}}},
            step=f"keep the volume claims of StatefulSet {statefulset['metadata']['name']}",
        )
        for claim in _claims_of(kube, statefulset):
            refs = claim["metadata"].get("ownerReferences") or []
            kept = [ref for ref in refs if ref.get("uid") != uid]
            if kept != refs:
                kube.merge_patch(
                    claim,
                    {"metadata": {"ownerReferences": kept or None}},
                    step=f"keep PersistentVolumeClaim {claim['metadata']['name']}",
                )
                changed.append(f"PersistentVolumeClaim {claim['metadata']['name']}")
    return changed


def report_failure(
    kube: Kube,
    body: Mapping[str, Any],
    *,
    error: PermanentError,
    correlation_id: str,
    now: Callable[[], str] = utcnow,
) -> None:
    """A step the API server refused: say so in status, once, with the step and reason."""
    meta = body["metadata"]
    previous = dict(body.get("status") or {})
    message = f"Could not {error.step}: {error.detail}"
    status = readiness.failed_status(
        pb_body=body, previous=previous, reason="ApplyFailed", message=message, now=now()
    )
    status["phase"] = models.Phase.DEGRADED.value
    if _differs(previous, status):
        kube.patch_status(meta["namespace"], meta["name"], _status_patch(previous, status))
        kube.post_event(
            owner=dict(body),
            reason="ApplyFailed",
            message=message,
            warning=True,
            correlation_id=correlation_id,
        )


def _condition_of(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return cond  # type: ignore[no-any-return]
    return {}


def _differs(previous: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    return any(previous.get(k) != v for k, v in status.items()) or any(
        isinstance(v, Mapping)
        and isinstance(previous.get(k), Mapping)
        and set(previous[k]) - set(v)
        for k, v in status.items()
    )


def _status_patch(previous: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that also removes keys of maps we own (`components`, `health`) that
    are gone, at any depth; without the nulls a stale key would make every later pass
    see a difference."""
    return {key: _replacing(previous.get(key), value) for key, value in status.items()}


def _replacing(old: Any, new: Any) -> Any:
    if not (isinstance(new, Mapping) and isinstance(old, Mapping)):
        return new
    return {
        **{gone: None for gone in set(old) - set(new)},
        **{key: _replacing(old.get(key), value) for key, value in new.items()},
    }


def _first_error(error: ValidationError) -> str:
    return models.describe(error.errors()[0])


def _create_secret(kube: Kube, secret: GeneratedSecret) -> bool:
    """Create the Secret with fresh values; False when it exists already (a race).

    The Secret has no owner reference: credentials outlive the PulseBase, like the
    volumes whose data they protect (a retained database still expects its passwords).
    """
    values = {key: secrets.token_urlsafe(length)[:length] for key, length in secret.random_keys}
    for key, template in secret.templates:
        values[key] = template.format(**values)
    if secret.certificate_for:
        values |= certificates.issue(
            secret.certificate_for,
            common_name=secret.name,
            ca_key=certificates.new_key(),
            server_key=certificates.new_key(),
            now=datetime.datetime.now(datetime.UTC),
        )
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret.name,
            "namespace": secret.namespace,
            "labels": dict(secret.labels),
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())},
    }
    return kube.create(body) is not None


def _recovery_source(
    kube: Kube, pb: models.PulseBase
) -> tuple[models.PulseBase | None, str | None]:
    """The PulseBase to restore from while the database is still to be bootstrapped,
    or why the restore cannot go ahead: (source, None) or (None, reason).

    Once the Patroni StatefulSet exists the bootstrap is done or under way, so a source
    deleted or changed since holds nothing up: the copy is then rendered without the
    restore, and its pass goes on.
    """
    recovery = pb.spec.bootstrap.recovery
    if recovery is None:
        return None, None
    namespace = pb.metadata.namespace
    body = kube.get(models.API_VERSION, models.KIND, namespace, recovery.source.pulse_base)
    source = None
    reason = None
    recoverable_from = None
    if body is not None:
        recoverable_from = backups.recoverable_from(body)
        try:
            source = models.PulseBase.from_body(body)
        except ValidationError as error:
            reason = (
                f"spec.bootstrap.recovery.source.pulseBase: PulseBase "
                f"{recovery.source.pulse_base} has an invalid spec ({_first_error(error)}), "
                "so its backup repository is unknown"
            )
    reason = reason or restore.refusal(pb, source, recoverable_from=recoverable_from)
    if reason is None:
        return source, None
    if pb.spec.postgres.mode is models.Mode.MANAGED:
        statefulset = naming.postgres(pb.metadata.name)
        if kube.get("apps/v1", "StatefulSet", namespace, statefulset) is not None:
            return None, None
    return None, reason


def _has_volumes(kube: Kube, namespace: str, name: str, component: str) -> bool:
    selector = f"{labels.INSTANCE}={name},{labels.COMPONENT_LABEL}={component}"
    return bool(kube.list("v1", "PersistentVolumeClaim", namespace, selector))


def _missing_references(kube: Kube, pb: models.PulseBase) -> dict[str, str]:
    namespace = pb.metadata.namespace
    problems: dict[str, str] = {}
    for component, refs in _references(pb).items():
        for ref in refs:
            found = kube.get("v1", "Secret", namespace, ref.name)
            if found is None:
                problems[component] = f"Secret {ref.name} does not exist"
            elif ref.key not in (found.get("data") or {}):
                problems[component] = f"Secret {ref.name} has no key {ref.key}"
            else:
                continue
            break
    return problems


def _references(pb: models.PulseBase) -> dict[str, list[models.SecretKeyRef]]:
    spec = pb.spec
    refs: dict[str, list[models.SecretKeyRef]] = {}
    if spec.postgres.external is not None:
        refs["postgres"] = [spec.postgres.external.username, spec.postgres.external.password]
    if spec.redis.external is not None and spec.redis.external.password is not None:
        refs["redis"] = [spec.redis.external.password]
    if spec.object_storage.external is not None:
        external = spec.object_storage.external
        refs["objectStorage"] = [external.access_key_id, external.secret_access_key]
        if external.ca_bundle is not None:
            refs["objectStorage"].append(external.ca_bundle)
    return refs
