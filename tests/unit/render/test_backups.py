"""Physical backups rendered from the spec: pgBackRest's configuration, WAL archiving,
the stanza Job and the backup CronJobs."""

from __future__ import annotations

import configparser
from typing import Any

import pytest

from pulsebase_operator import cli
from pulsebase_operator.render import backups, images, naming
from tests.unit.render.examples import EXTERNAL_OBJECT_STORAGE, EXTERNAL_POSTGRES, pulsebase
from tests.unit.render.test_render_invariants import restricted_violations


def parsed(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_managed_storage_config_points_at_the_backups_bucket_in_path_style() -> None:
    conf = parsed(backups.pgbackrest_config(pulsebase()))
    repo = conf["global"]
    assert repo["repo1-type"] == "s3"
    assert repo["repo1-s3-bucket"] == "shop-backups"
    assert repo["repo1-s3-endpoint"] == "shop-objectstore.prod.svc"
    assert repo["repo1-storage-port"] == "8333"
    assert repo["repo1-s3-uri-style"] == "path"
    # The managed endpoint's certificate is checked against the operator's CA.
    assert repo["repo1-storage-ca-file"] == "/etc/pulsebase/objectstore-ca/ca.crt"
    assert conf[backups.STANZA]["pg1-path"] == "/var/lib/postgresql/data/pgdata"


def test_external_storage_config_uses_its_endpoint_region_and_bucket() -> None:
    pb = pulsebase(objectStorage={**EXTERNAL_OBJECT_STORAGE, "buckets": {"backups": "shop-pitr"}})
    repo = parsed(backups.pgbackrest_config(pb))["global"]
    assert repo["repo1-s3-endpoint"] == "s3.eu-west-1.amazonaws.com"
    assert repo["repo1-storage-port"] == "443"
    assert repo["repo1-s3-region"] == "eu-west-1"
    assert repo["repo1-s3-uri-style"] == "host"
    assert repo["repo1-s3-bucket"] == "shop-pitr"
    assert "repo1-storage-ca-file" not in repo  # the system's CAs


def test_config_holds_no_credentials() -> None:
    for pb in (pulsebase(), pulsebase(objectStorage=EXTERNAL_OBJECT_STORAGE)):
        text = backups.pgbackrest_config(pb)
        assert "key" not in text.replace("repo1-s3-bucket", "")
        assert "secret" not in text


@pytest.mark.parametrize(
    ("rpo", "seconds"),
    [("1m", 60), ("2m", 60), ("3m", 60), ("15m", 300), ("1h", 1200), ("24h", 28800)],
)
def test_archive_timeout_is_a_third_of_the_rpo_and_at_least_a_minute(
    rpo: str, seconds: int
) -> None:
    pb = pulsebase(backup={"rpo": rpo})
    assert backups.archive_timeout(pb) == seconds
    assert backups.archive_parameters(pb)["archive_timeout"] == f"{seconds}s"


def test_archiving_pushes_wal_to_the_stanza_and_is_off_without_backups() -> None:
    on = backups.archive_parameters(pulsebase())
    assert on["archive_mode"] == "on"
    assert on["archive_command"] == (
        "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=pulsebase archive-push %p"
    )
    assert backups.archive_parameters(pulsebase(backup={"enabled": False})) == {
        "archive_mode": "off"
    }


def test_objects_are_config_rbac_the_stanza_job_and_three_cron_jobs() -> None:
    kinds = [(o["kind"], o["metadata"]["name"]) for o in backups.backup_objects(pulsebase())]
    assert kinds == [
        ("ConfigMap", "shop-pgbackrest"),
        ("ServiceAccount", "shop-backup"),
        ("Role", "shop-backup"),
        ("RoleBinding", "shop-backup"),
        ("Job", "shop-backup-stanza"),
        ("CronJob", "shop-backup-full"),
        ("CronJob", "shop-backup-incr"),
        ("CronJob", "shop-backup-vec"),
    ]


def test_nothing_is_rendered_for_an_external_database_or_with_backups_off() -> None:
    assert backups.backup_objects(pulsebase(postgres=EXTERNAL_POSTGRES)) == []
    assert backups.backup_objects(pulsebase(backup={"enabled": False})) == []


def test_cron_jobs_follow_the_schedules_in_their_time_zone_one_run_at_a_time() -> None:
    pb = pulsebase(
        backup={
            "timeZone": "Europe/Paris",
            "schedules": {
                "full": "0 2 * * *",
                "incremental": "15 * * * *",
                "vectorTables": "45 4 * * 6",
            },
        }
    )
    jobs = {o["metadata"]["name"]: o for o in backups.backup_objects(pb) if o["kind"] == "CronJob"}
    assert {name: job["spec"]["schedule"] for name, job in jobs.items()} == {
        "shop-backup-full": "0 2 * * *",
        "shop-backup-incr": "15 * * * *",
        "shop-backup-vec": "45 4 * * 6",
    }
    for job in jobs.values():
        spec = job["spec"]
        assert spec["timeZone"] == "Europe/Paris"
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["startingDeadlineSeconds"] == 600
        assert spec["successfulJobsHistoryLimit"] == 3
        assert spec["failedJobsHistoryLimit"] == 3
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == 1
    deadlines = {
        name: job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
        for name, job in jobs.items()
    }
    assert deadlines == {
        "shop-backup-full": 12 * 3600,
        "shop-backup-incr": 3 * 3600,
        "shop-backup-vec": 12 * 3600,
    }


def test_each_job_runs_the_operator_image_with_its_kind_and_the_pods_namespace() -> None:
    objects = {o["metadata"]["name"]: o for o in backups.backup_objects(pulsebase())}
    kinds = {
        "shop-backup-stanza": "stanza",
        "shop-backup-full": "full",
        "shop-backup-incr": "incr",
        "shop-backup-vec": "vectors",
    }
    for name, kind in kinds.items():
        pod = _pod(objects[name])
        (container,) = pod["containers"]
        assert container["image"] == images.operator()
        assert container["command"] == [
            "/venv/bin/pulsebase-operator",
            "backup-job",
            f"--kind={kind}",
            "--name=shop",
            "--namespace=$(NAMESPACE)",
        ]
        assert container["env"][0] == {
            "name": "NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        }
        assert pod["serviceAccountName"] == "shop-backup"
        assert pod["restartPolicy"] == "Never"
        # The arguments reach the operator's own parser unchanged.
        parsed_args = cli.parser().parse_args(
            [a.replace("$(NAMESPACE)", "prod") for a in container["command"][1:]]
        )
        assert (parsed_args.kind, parsed_args.name, parsed_args.namespace) == (kind, "shop", "prod")


def test_the_vector_job_gets_the_superuser_password_database_and_bucket_keys() -> None:
    managed = _vector_env(pulsebase())
    assert managed == {
        "NAMESPACE": ("fieldRef", "metadata.namespace"),
        "PGPASSWORD": ("shop-postgres-superuser", "password"),
        "PGDATABASE": ("shop-postgres-app", "database"),
        "AWS_ACCESS_KEY_ID": ("shop-objectstore-keys", "access-key-id"),
        "AWS_SECRET_ACCESS_KEY": ("shop-objectstore-keys", "secret-access-key"),
        "AWS_CA_BUNDLE": ("value", "/etc/pulsebase/objectstore-ca/ca.crt"),
    }
    external = _vector_env(pulsebase(objectStorage=EXTERNAL_OBJECT_STORAGE))
    ref = EXTERNAL_OBJECT_STORAGE["external"]
    assert external["AWS_ACCESS_KEY_ID"] == (ref["accessKeyId"]["name"], ref["accessKeyId"]["key"])
    assert external["AWS_SECRET_ACCESS_KEY"] == (
        ref["secretAccessKey"]["name"],
        ref["secretAccessKey"]["key"],
    )
    # No other job holds a credential: pgBackRest's come from the primary's own pod.
    for job in backups.backup_objects(pulsebase()):
        if job["kind"] in ("Job", "CronJob") and job["metadata"]["name"] != "shop-backup-vec":
            assert [e["name"] for e in _pod(job)["containers"][0]["env"]] == ["NAMESPACE"]


def test_the_stanza_job_retries_until_the_primary_is_up_within_an_hour() -> None:
    job = next(o for o in backups.backup_objects(pulsebase()) if o["kind"] == "Job")
    assert job["spec"]["backoffLimit"] == 10
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert restricted_violations(job["spec"]["template"]["spec"]) == []


def test_job_pods_pass_the_restricted_pod_security_standard() -> None:
    for job in backups.backup_objects(pulsebase()):
        if job["kind"] in ("CronJob", "Job"):
            assert restricted_violations(_pod(job)) == []


def test_names_fit_their_limits_for_the_longest_pulsebase_name() -> None:
    longest = "a" * 40  # the CRD's limit on a PulseBase name
    objects = backups.backup_objects(pulsebase(longest))
    names = {o["kind"]: [] for o in objects}  # type: dict[str, list[str]]
    for obj in objects:
        names[obj["kind"]].append(obj["metadata"]["name"])
    # A CronJob's Jobs append 11 characters; a Job's pods take their name from it.
    assert max(len(n) for n in names["CronJob"]) == naming.CRONJOB_LIMIT
    assert all(len(n) <= naming.LABEL_LIMIT for kind in names.values() for n in kind)
    assert len(names["CronJob"]) == 3


def test_the_role_allows_reading_its_pulsebase_finding_pods_and_exec_only() -> None:
    role = next(o for o in backups.backup_objects(pulsebase()) if o["kind"] == "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
        {
            "apiGroups": ["pulsebase.io"],
            "resources": ["pulsebases"],
            "resourceNames": ["shop"],
            "verbs": ["get"],
        },
    ]
    binding = next(o for o in backups.backup_objects(pulsebase()) if o["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == "shop-backup"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "shop-backup", "namespace": "prod"}
    ]


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    if job["kind"] == "Job":
        return job["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return job["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _vector_env(pb: Any) -> dict[str, tuple[str, str]]:
    job = next(o for o in backups.backup_objects(pb) if o["metadata"]["name"].endswith("-vec"))
    found = {}
    for entry in _pod(job)["containers"][0]["env"]:
        if "value" in entry:
            found[entry["name"]] = ("value", entry["value"])
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            found[entry["name"]] = ("fieldRef", source["fieldRef"]["fieldPath"])
        else:
            ref = source["secretKeyRef"]
            found[entry["name"]] = (ref["name"], ref["key"])
    return found


def test_the_vector_job_trusts_the_managed_object_storages_ca() -> None:
    job = next(
        o for o in backups.backup_objects(pulsebase()) if o["metadata"]["name"].endswith("-vec")
    )
    pod = _pod(job)
    assert _vector_env(pulsebase())["AWS_CA_BUNDLE"] == (
        "value",
        "/etc/pulsebase/objectstore-ca/ca.crt",
    )
    (volume,) = pod["volumes"]
    assert volume["secret"] == {
        "secretName": "shop-objectstore-tls",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": volume["name"], "mountPath": "/etc/pulsebase/objectstore-ca", "readOnly": True}
    ]


def test_an_external_ca_bundle_becomes_pgbackrests_ca_file() -> None:
    external = {**EXTERNAL_OBJECT_STORAGE["external"], "caBundle": {"name": "ca", "key": "pem"}}
    pb = pulsebase(objectStorage={**EXTERNAL_OBJECT_STORAGE, "external": external})
    repo = parsed(backups.pgbackrest_config(pb))["global"]
    assert repo["repo1-storage-ca-file"] == "/etc/pulsebase/objectstore-ca/ca.crt"
