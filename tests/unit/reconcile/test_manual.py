"""Jobs started by hand from a PulseBase's backup and drill CronJobs."""

from __future__ import annotations

from typing import Any

import pytest

from pulsebase_operator.reconcile import manual

CRON_JOB = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {"name": "shop-backup-full", "namespace": "prod", "uid": "cj-1"},
    "spec": {
        "schedule": "0 1 * * *",
        "jobTemplate": {
            "metadata": {"labels": {"app.kubernetes.io/component": "backup"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"containers": []}}},
        },
    },
}


class Cluster:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]], taken: int = 0) -> None:
        self.objects, self.taken, self.created = objects, taken, []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        assert namespace == "prod"
        return self.objects.get((kind, name))

    def create(self, obj: dict[str, Any]) -> Any:
        if self.taken:
            self.taken -= 1
            return None
        self.created.append(obj)
        return obj


def pulsebase(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "shop", "namespace": "prod"}, "spec": {"version": "2.4.1", **spec}}


def test_the_job_is_what_kubectl_create_job_from_cronjob_makes() -> None:
    job = manual.job_from(CRON_JOB, suffix="x7k2q")
    assert job["metadata"]["name"] == "shop-backup-full-manual-x7k2q"
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert job["metadata"]["labels"] == {"app.kubernetes.io/component": "backup"}
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "shop-backup-full",
            "uid": "cj-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"] == CRON_JOB["spec"]["jobTemplate"]["spec"]


def test_a_long_cron_job_name_is_cut_to_fit_63_characters() -> None:
    name = manual.job_name("a" * 40 + "-b" * 6 + "-backup-incr", "x7k2q")
    assert len(name) <= 63
    assert name.endswith("-manual-x7k2q")
    assert "--" not in name


@pytest.mark.parametrize(
    ("what", "cron_job"),
    [("full", "shop-backup-full"), ("incr", "shop-backup-incr"), ("drill", "shop-drill")],
)
def test_each_kind_starts_from_its_cron_job(what: str, cron_job: str) -> None:
    found = {**CRON_JOB, "metadata": {**CRON_JOB["metadata"], "name": cron_job}}
    cluster = Cluster({("PulseBase", "shop"): pulsebase(), ("CronJob", cron_job): found})
    started = manual.start(cluster, namespace="prod", pulsebase="shop", what=what)  # type: ignore[arg-type]
    assert started.cron_job == cron_job
    assert started.name.startswith(f"{cron_job}-manual-")
    assert [job["metadata"]["name"] for job in cluster.created] == [started.name]


def test_a_taken_name_is_tried_again_with_another_suffix() -> None:
    cluster = Cluster(
        {("PulseBase", "shop"): pulsebase(), ("CronJob", "shop-backup-full"): CRON_JOB}, taken=1
    )
    started = manual.start(cluster, namespace="prod", pulsebase="shop", what="full")  # type: ignore[arg-type]
    assert len(cluster.created) == 1 and started.name == cluster.created[0]["metadata"]["name"]


@pytest.mark.parametrize(
    ("spec", "what", "message"),
    [
        ({"backup": {"enabled": False}}, "full", "backups are disabled"),
        (
            {
                "postgres": {
                    "mode": "external",
                    "external": {
                        "host": "db.example.com",
                        "username": {"name": "db", "key": "u"},
                        "password": {"name": "db", "key": "p"},
                    },
                }
            },
            "incr",
            "its database is external",
        ),
        ({"backup": {"drill": {"enabled": False}}}, "drill", "drills are disabled"),
        ({}, "drill", "the operator has not created it"),
    ],
)
def test_a_missing_cron_job_says_why(spec: dict[str, Any], what: str, message: str) -> None:
    cluster = Cluster({("PulseBase", "shop"): pulsebase(**spec)})
    with pytest.raises(manual.ManualJobError, match=message) as raised:
        manual.start(cluster, namespace="prod", pulsebase="shop", what=what)  # type: ignore[arg-type]
    assert str(raised.value).startswith("PulseBase shop has no CronJob shop-")
    assert cluster.created == []


def test_a_missing_pulsebase_says_so() -> None:
    with pytest.raises(
        manual.ManualJobError, match="PulseBase shop does not exist in namespace prod"
    ):
        manual.start(Cluster({}), namespace="prod", pulsebase="shop", what="full")  # type: ignore[arg-type]


# --- the final backup under deletionPolicy: Delete ----------------------------------

FINAL = "shop-backup-full-manual-final"


def final_job(*, owner: str = "cj-1", created: str = "2026-12-04T06:00:05Z", **status: Any) -> Any:
    return {
        "metadata": {
            "name": FINAL,
            "ownerReferences": [{"kind": "CronJob", "uid": owner}],
            "creationTimestamp": created,
        },
        "status": status,
    }


def deleting(**spec: Any) -> dict[str, Any]:
    body = pulsebase(**spec)
    body["metadata"]["deletionTimestamp"] = "2026-12-04T06:00:00Z"
    return body


def test_the_final_backup_starts_once_from_the_full_backup_cronjob() -> None:
    cluster = Cluster({("CronJob", "shop-backup-full"): CRON_JOB})
    found = manual.final_backup(cluster, pulsebase(deletionPolicy="Delete"))  # type: ignore[arg-type]
    assert (found.state, found.job) == ("running", FINAL)
    assert [job["metadata"]["name"] for job in cluster.created] == [FINAL]
    cluster.objects["Job", FINAL] = final_job(active=1)
    assert manual.final_backup(cluster, deleting()).state == "running"  # type: ignore[arg-type]
    assert len(cluster.created) == 1


def test_a_finished_final_backup_says_how_it_ended() -> None:
    cluster = Cluster(
        {("Job", FINAL): final_job(succeeded=1), ("CronJob", "shop-backup-full"): CRON_JOB}
    )
    assert manual.final_backup(cluster, deleting()).state == "succeeded"  # type: ignore[arg-type]
    cluster.objects["Job", FINAL] = final_job(
        failed=2,
        conditions=[
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ],
    )
    failed = manual.final_backup(cluster, deleting())  # type: ignore[arg-type]
    assert failed.state == "failed"
    assert failed.reason == f"Job {FINAL} failed: Job has reached the specified backoff limit"


@pytest.mark.parametrize(
    "job",
    [
        final_job(owner="someone-else", succeeded=1),
        final_job(created="2026-12-04T05:59:59Z", succeeded=1),
        {"metadata": {"name": FINAL}, "status": {"succeeded": 1}},
    ],
    ids=["not-owned-by-the-cronjob", "made-before-the-deletion", "no-owner"],
)
def test_a_job_of_that_name_the_deletion_did_not_start_proves_nothing(job: Any) -> None:
    cluster = Cluster({("Job", FINAL): job, ("CronJob", "shop-backup-full"): CRON_JOB})
    found = manual.final_backup(cluster, deleting())  # type: ignore[arg-type]
    assert found.state == "skipped"
    assert "was not started by this deletion" in found.reason
    assert cluster.created == []


EXTERNAL_DB = {
    "mode": "external",
    "external": {
        "host": "db.example.com",
        "username": {"name": "db", "key": "user"},
        "password": {"name": "db", "key": "password"},
    },
}


@pytest.mark.parametrize(
    ("spec", "state", "reason"),
    [
        ({"postgres": EXTERNAL_DB}, "succeeded", "external"),
        ({"backup": {"enabled": False}}, "succeeded", "backups are disabled"),
        ({"version": "not-a-version"}, "skipped", "the spec is invalid"),
        ({}, "skipped", "CronJob shop-backup-full does not exist"),
    ],
)
def test_without_a_backup_to_take_the_caller_is_told_why(
    spec: dict[str, Any], state: str, reason: str
) -> None:
    cluster = Cluster({})
    found = manual.final_backup(cluster, pulsebase(**spec))  # type: ignore[arg-type]
    assert found.state == state
    assert reason in found.reason
    assert cluster.created == []
