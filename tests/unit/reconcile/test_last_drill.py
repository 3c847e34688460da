"""The newest finished drill Job, as status.backup.lastDrill reports it."""

from __future__ import annotations

import json
from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.reconcile import stack
from pulsebase_operator.render import labels

REPORT = {
    "succeeded": True,
    "started": "2026-11-29T05:00:00Z",
    "finished": "2026-11-29T05:03:10Z",
    "backupLabel": "20261129-010002F",
    "recoveryTimeSeconds": 190.0,
    "vectorIndexesUsableSeconds": 200.5,
    "recoveryPointSeconds": 12.0,
    "markerRows": 1000,
    "failedStep": None,
    "message": "",
}


class Pods:
    """Answers the pod lists of `kube.list`, and counts them."""

    def __init__(self, pods: dict[str, list[dict[str, Any]]]) -> None:
        self.pods, self.calls = pods, 0

    def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[Any]:
        assert (api_version, kind, namespace) == ("v1", "Pod", "prod")
        self.calls += 1
        return self.pods.get(selector.removeprefix("job-name="), [])


def job(name: str, condition: str, at: str, **fields: Any) -> dict[str, Any]:
    return {
        "kind": "Job",
        "metadata": {"name": name, "labels": labels.component("shop", "drill")},
        "status": {
            "conditions": [
                {"type": condition, "status": "True", "lastTransitionTime": at, **fields}
            ],
            **({"completionTime": at} if condition == "Complete" else {}),
        },
    }


def pod(message: str | None, container: str = "check") -> dict[str, Any]:
    terminated: dict[str, Any] = {"exitCode": 0, "finishedAt": "2026-11-29T05:03:11Z"}
    if message is not None:
        terminated["message"] = message
    return {
        "status": {"containerStatuses": [{"name": container, "state": {"terminated": terminated}}]}
    }


def drill(
    kube: Pods, jobs: list[dict[str, Any]], previous: models.DrillStatus | None = None
) -> models.DrillStatus | None:
    return stack.last_drill(kube, namespace="prod", jobs=jobs, previous=previous)  # type: ignore[arg-type]


def test_the_report_of_the_newest_finished_job_becomes_last_drill() -> None:
    kube = Pods({"shop-drill-2": [pod(json.dumps(REPORT))], "shop-drill-1": [pod("{}")]})
    jobs = [
        job("shop-drill-1", "Complete", "2026-11-22T05:03:00Z"),
        job("shop-drill-2", "Complete", "2026-11-29T05:03:12Z"),
        {
            "kind": "Job",
            "metadata": {"name": "shop-drill-3", "labels": labels.component("shop", "drill")},
            "status": {},
        },
    ]
    found = drill(kube, jobs)
    assert found == models.DrillStatus.model_validate({**REPORT, "job": "shop-drill-2"})


def test_a_job_already_reported_reads_no_pods() -> None:
    kube = Pods({})
    previous = models.DrillStatus.model_validate({**REPORT, "job": "shop-drill-2"})
    jobs = [job("shop-drill-2", "Complete", "2026-11-29T05:03:12Z")]
    assert drill(kube, jobs, previous) is previous
    assert kube.calls == 0


def test_a_job_that_failed_without_a_report_gives_its_own_reason() -> None:
    kube = Pods({"shop-drill-4": []})
    jobs = [
        job(
            "shop-drill-4",
            "Failed",
            "2026-12-06T07:00:00Z",
            reason="DeadlineExceeded",
            message="Job was active longer than specified deadline",
        )
    ]
    found = drill(kube, jobs)
    assert found is not None
    assert (found.job, found.succeeded, found.finished) == (
        "shop-drill-4",
        False,
        "2026-12-06T07:00:00Z",
    )
    assert found.message == (
        "The drill Job failed (DeadlineExceeded): Job was active longer than specified deadline."
    )


def test_a_completed_job_without_a_report_is_no_success() -> None:
    found = drill(
        Pods({"shop-drill-5": [pod(None)]}),
        [job("shop-drill-5", "Complete", "2026-12-06T05:00:00Z")],
    )
    assert found is not None and not found.succeeded
    assert found.failed_step == "report"


def test_an_unreadable_report_is_a_failure_that_says_so() -> None:
    kube = Pods({"shop-drill-6": [pod('{"succeeded": "perhaps"')]})
    found = drill(kube, [job("shop-drill-6", "Complete", "2026-12-06T05:00:00Z")])
    assert found is not None and not found.succeeded
    assert found.message.startswith("The drill's report is not readable:")


def test_jobs_of_other_components_are_not_drills() -> None:
    other = job("shop-backup-full-1", "Complete", "2026-12-06T05:00:00Z")
    other["metadata"]["labels"] = labels.component("shop", "backup")
    assert drill(Pods({}), [other]) is None


def test_a_status_backup_edited_out_of_shape_is_read_as_none_not_a_failed_pass() -> None:
    assert stack._backup_status_of({"backup": {"lastFull": 5, "lastDrill": {"x": 1}}}) is None
    kept = stack._backup_status_of({"backup": {"lastFull": "2026-12-03T01:00:08Z"}})
    assert kept == models.BackupStatus(last_full="2026-12-03T01:00:08Z")
