"""Physical backups rendered from the spec: pgBackRest's configuration, WAL archiving
and the backup CronJobs."""

from __future__ import annotations

import configparser

import pytest

from pulsebase_operator.render import backups, naming
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


def test_objects_are_config_rbac_and_two_cron_jobs() -> None:
    kinds = [(o["kind"], o["metadata"]["name"]) for o in backups.backup_objects(pulsebase())]
    assert kinds == [
        ("ConfigMap", "shop-pgbackrest"),
        ("ServiceAccount", "shop-backup"),
        ("Role", "shop-backup"),
        ("RoleBinding", "shop-backup"),
        ("CronJob", "shop-backup-full"),
        ("CronJob", "shop-backup-incr"),
    ]


def test_nothing_is_rendered_for_an_external_database_or_with_backups_off() -> None:
    assert backups.backup_objects(pulsebase(postgres=EXTERNAL_POSTGRES)) == []
    assert backups.backup_objects(pulsebase(backup={"enabled": False})) == []


def test_cron_jobs_follow_the_schedules_in_their_time_zone_one_run_at_a_time() -> None:
    pb = pulsebase(
        backup={
            "timeZone": "Europe/Paris",
            "schedules": {"full": "0 2 * * *", "incremental": "15 * * * *"},
        }
    )
    full, incr = (o for o in backups.backup_objects(pb) if o["kind"] == "CronJob")
    assert (full["spec"]["schedule"], incr["spec"]["schedule"]) == ("0 2 * * *", "15 * * * *")
    for job in (full, incr):
        spec = job["spec"]
        assert spec["timeZone"] == "Europe/Paris"
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["startingDeadlineSeconds"] == backups.STARTING_DEADLINE_SECONDS
        assert spec["successfulJobsHistoryLimit"] == 3
        assert spec["failedJobsHistoryLimit"] == 3
        assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    env = {e["name"]: e.get("value") for e in _pod(full)["containers"][0]["env"]}
    assert env["KIND"] == "full"
    assert env["PRIMARY_SELECTOR"].endswith(",role=primary")
    assert {e["name"]: e.get("value") for e in _pod(incr)["containers"][0]["env"]}["KIND"] == (
        "incr"
    )


def test_cron_job_pods_pass_the_restricted_pod_security_standard() -> None:
    for job in backups.backup_objects(pulsebase()):
        if job["kind"] == "CronJob":
            assert restricted_violations(_pod(job)) == []


def test_cron_job_names_fit_within_52_characters_for_the_longest_name() -> None:
    longest = "a" * 40  # the CRD's limit on a PulseBase name
    for job in backups.backup_objects(pulsebase(longest)):
        assert len(job["metadata"]["name"]) <= naming.CRONJOB_LIMIT


def test_the_role_allows_finding_pods_and_exec_only() -> None:
    role = next(o for o in backups.backup_objects(pulsebase()) if o["kind"] == "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
    ]


def _pod(job: dict[str, object]) -> dict[str, object]:
    return job["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[index,no-any-return]


def test_an_external_ca_bundle_becomes_pgbackrests_ca_file() -> None:
    external = {**EXTERNAL_OBJECT_STORAGE["external"], "caBundle": {"name": "ca", "key": "pem"}}
    pb = pulsebase(objectStorage={**EXTERNAL_OBJECT_STORAGE, "external": external})
    repo = parsed(backups.pgbackrest_config(pb))["global"]
    assert repo["repo1-storage-ca-file"] == "/etc/pulsebase/objectstore-ca/ca.crt"
