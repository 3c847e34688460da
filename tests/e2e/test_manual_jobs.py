"""`pulsebase-operator backup` and `drill` against the local control plane: the Job they
create from the CronJob, and the one-line errors when there is nothing to start.

KWOK runs no containers, so the Job object itself is checked (name, annotation, labels,
owner), not what its pod would do. The PulseBase is paused, so the CronJob made here by
hand is the only one, whatever the operator under test renders itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.conftest import apply
from tests.support.localcluster import LocalCluster

pytestmark = pytest.mark.e2e

NAME = "shop"


def cli(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pulsebase_operator.cli",
            *args,
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cron_job(namespace: str, name: str) -> dict[str, Any]:
    labels = {"pulsebase.io/instance": NAME, "app.kubernetes.io/component": "backup"}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": "0 1 * * *",
            "suspend": True,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "securityContext": {
                                "runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [
                                {
                                    "name": "backup",
                                    "image": "registry.example.com/pulsebase-operator:0",
                                    "securityContext": {
                                        "allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                }
                            ],
                        },
                    },
                },
            },
        },
    }


def get(cluster: LocalCluster, namespace: str, *what: str) -> dict[str, Any]:
    done = cluster.kubectl("get", *what, "-n", namespace, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_backup_and_drill_create_a_job_from_the_cron_job_or_say_why_not(
    control_plane: LocalCluster, crd_installed: None, namespace: str
) -> None:
    missing = cli(control_plane, "backup", NAME, "-n", namespace)
    assert missing.returncode == 1
    assert (
        missing.stderr.strip() == f"error: PulseBase {NAME} does not exist in namespace {namespace}"
    )

    pulsebase = {
        "apiVersion": "pulsebase.io/v1alpha1",
        "kind": "PulseBase",
        "metadata": {
            "name": NAME,
            "namespace": namespace,
            "annotations": {"pulsebase.io/paused": "true"},
        },
        "spec": {"version": "2.4.1", "backup": {"drill": {"enabled": False}}},
    }
    done = apply(control_plane, pulsebase, cron_job(namespace, f"{NAME}-backup-full"))
    assert done.returncode == 0, done.stderr

    started = cli(control_plane, "backup", NAME, "-n", namespace, "--kind", "full")
    assert started.returncode == 0, started.stderr
    first_line = started.stdout.splitlines()[0]
    job_name = first_line.split()[0].removeprefix("job.batch/")
    assert job_name.startswith(f"{NAME}-backup-full-manual-")
    assert f"kubectl -n {namespace} logs -f job/{job_name}" in started.stdout

    job = get(control_plane, namespace, "job", job_name)
    owner = get(control_plane, namespace, "cronjob", f"{NAME}-backup-full")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["labels"]["pulsebase.io/instance"] == NAME
    (reference,) = job["metadata"]["ownerReferences"]
    assert (reference["kind"], reference["name"], reference["uid"]) == (
        "CronJob",
        f"{NAME}-backup-full",
        owner["metadata"]["uid"],
    )
    assert reference["controller"] is True

    # No incremental CronJob was made, and drills are off: one line each, and no Job.
    incr = cli(control_plane, "backup", NAME, "-n", namespace, "--kind", "incr")
    assert incr.returncode == 1
    assert incr.stderr.strip().startswith(
        f"error: PulseBase {NAME} has no CronJob {NAME}-backup-incr: "
    )
    drill = cli(control_plane, "drill", NAME, "-n", namespace)
    assert drill.returncode == 1
    assert drill.stderr.strip() == (
        f"error: PulseBase {NAME} has no CronJob {NAME}-drill: drills are disabled "
        "(spec.backup.drill.enabled is false)"
    )
    jobs = get(control_plane, namespace, "jobs")["items"]
    assert [j["metadata"]["name"] for j in jobs] == [job_name]

    # Listing the backups needs the primary, which runs nowhere here: one line, exit 1.
    listing = cli(control_plane, "backups", "list", NAME, "-n", namespace)
    assert listing.returncode == 1
    assert listing.stderr.strip().startswith("error: find the primary failed: no running pod")
    gone = cli(control_plane, "backups", "list", "nothing", "-n", namespace)
    assert gone.returncode == 1
    assert gone.stderr.strip() == (
        f"error: read PulseBase {namespace}/nothing failed: it does not exist"
    )
