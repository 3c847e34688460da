"""Backups and drills started by hand: a Job made from the CronJob's template, as
`kubectl create job --from=cronjob/...` makes it, so the run is the scheduled one in all
but its time (same pod, same account, same report), and the CronJob owns it like its own.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.kube.client import Kube
from pulsebase_operator.render import naming

INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
NAME_LIMIT = 63  # Job names become the pods' job-name label, a label value
SUFFIX_LENGTH = 5
_ALPHABET = string.ascii_lowercase + string.digits


class ManualJobError(Exception):
    """Why no Job was created, in one line a person can act on."""


@dataclass(frozen=True)
class Started:
    name: str
    namespace: str
    cron_job: str


def cron_job_name(pulsebase: str, what: str) -> str:
    """`full` or `incr` for backups, `drill` for the restore drill."""
    if what == "drill":
        return naming.child(pulsebase, "drill")
    return naming.backup_cron_job(pulsebase, what)


def job_name(cron_job: str, suffix: str) -> str:
    tail = f"-manual-{suffix}"
    return f"{cron_job[: NAME_LIMIT - len(tail)].rstrip('-')}{tail}"


def job_from(cron_job: Mapping[str, Any], *, suffix: str) -> dict[str, Any]:
    """The Job `kubectl create job --from=cronjob/NAME` would create."""
    meta = cron_job["metadata"]
    template = cron_job["spec"]["jobTemplate"]
    template_meta = template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(meta["name"], suffix),
            "namespace": meta["namespace"],
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": {
                **(template_meta.get("annotations") or {}),
                INSTANTIATE_ANNOTATION: "manual",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
    }


def _why_absent(body: Mapping[str, Any], what: str) -> str:
    try:
        pb = models.PulseBase.from_body(dict(body))
    except ValueError:
        return "the PulseBase's spec is invalid, so the operator created nothing for it"
    if not pb.spec.backup.enabled:
        return "backups are disabled (spec.backup.enabled is false)"
    if pb.spec.postgres.mode is models.Mode.EXTERNAL:
        return "its database is external, and the operator backs up only the one it runs"
    if what == "drill" and not pb.spec.backup.drill.enabled:
        return "drills are disabled (spec.backup.drill.enabled is false)"
    return "the operator has not created it (yet): see kubectl describe pb"


def start(kube: Kube, *, namespace: str, pulsebase: str, what: str) -> Started:
    """Create one Job from the CronJob of `what`; ManualJobError when there is none."""
    body = kube.get(models.API_VERSION, models.KIND, namespace, pulsebase)
    if body is None:
        raise ManualJobError(f"PulseBase {pulsebase} does not exist in namespace {namespace}")
    name = cron_job_name(pulsebase, what)
    cron_job = kube.get("batch/v1", "CronJob", namespace, name)
    if cron_job is None:
        raise ManualJobError(
            f"PulseBase {pulsebase} has no CronJob {name}: {_why_absent(body, what)}"
        )
    # A name already taken (a collision of the random suffix) is tried again, twice.
    for _ in range(3):
        suffix = "".join(secrets.choice(_ALPHABET) for _ in range(SUFFIX_LENGTH))
        job = job_from(cron_job, suffix=suffix)
        if kube.create(job) is not None:
            return Started(name=job["metadata"]["name"], namespace=namespace, cron_job=name)
    raise ManualJobError(f"could not find a free Job name for CronJob {name}")


# --- the final backup before deletionPolicy: Delete removes the volumes -------------

FINAL_SUFFIX = "final"


@dataclass(frozen=True)
class FinalBackup:
    """Where the final backup stands: `running` (wait), `succeeded` (or not needed), or
    `skipped` and `failed` with the reason the volumes are kept instead."""

    state: str
    job: str | None = None
    reason: str = ""


def final_backup(kube: Kube, body: Mapping[str, Any]) -> FinalBackup:
    """Start, or follow, one full backup from the full-backup CronJob's template.

    Called while the PulseBase is being deleted: its children, the primary among them,
    stay until the deletion handler lets go, so the backup runs against the live
    database. Without a CronJob there is nothing the backup could run as, and the caller
    keeps the volumes rather than delete data nobody saved.
    """
    meta = body["metadata"]
    namespace, pulsebase = meta["namespace"], meta["name"]
    try:
        pb = models.PulseBase.from_body(dict(body))
    except ValueError:
        return FinalBackup("skipped", reason="the spec is invalid, so no backup job exists")
    if pb.spec.postgres.mode is models.Mode.EXTERNAL:
        return FinalBackup("succeeded", reason="the database is external: nothing to back up")
    if not pb.spec.backup.enabled:
        # Whoever turned backups off has chosen not to keep copies: Delete means delete.
        return FinalBackup("succeeded", reason="backups are disabled (spec.backup.enabled)")
    cron_name = naming.backup_cron_job(pulsebase, "full")
    name = job_name(cron_name, FINAL_SUFFIX)
    cron_job = kube.get("batch/v1", "CronJob", namespace, cron_name)
    if cron_job is None:
        return FinalBackup("skipped", reason=f"CronJob {cron_name} does not exist")
    job = kube.get("batch/v1", "Job", namespace, name)
    if job is None:
        kube.create(job_from(cron_job, suffix=FINAL_SUFFIX))
        return FinalBackup("running", job=name)
    # Only the Job this deletion started counts: made from the CronJob (which owns it)
    # after the deletion began. Any other Job of that name proves no backup was taken.
    owners = {ref.get("uid") for ref in job["metadata"].get("ownerReferences") or []}
    created = job["metadata"].get("creationTimestamp") or ""
    deleting = meta.get("deletionTimestamp") or ""
    if cron_job["metadata"].get("uid") not in owners or (deleting and created < deleting):
        return FinalBackup(
            "skipped",
            job=name,
            reason=f"Job {name} exists but was not started by this deletion from CronJob "
            f"{cron_name}, so it proves no final backup",
        )
    status = job.get("status") or {}
    if status.get("succeeded"):
        return FinalBackup("succeeded", job=name)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            why = condition.get("message") or condition.get("reason") or "it failed"
            return FinalBackup("failed", job=name, reason=f"Job {name} failed: {why}")
    return FinalBackup("running", job=name)
