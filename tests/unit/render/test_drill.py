"""Restore drills rendered from the spec: the script's ConfigMap and the CronJob whose
pod restores, starts and checks the copy."""

from __future__ import annotations

import subprocess

import pytest

from pulsebase_operator.render import backups, drill, images, labels, naming
from tests.unit.render.examples import EXTERNAL_POSTGRES, pod_spec, pulsebase
from tests.unit.render.test_render_invariants import restricted_violations


def containers(pb_spec: dict[str, object] | None = None) -> dict[str, dict[str, object]]:
    job = drill.cron_job(pulsebase(**(pb_spec or {})))
    return {c["name"]: c for c in pod_spec(job)["containers"]}


def test_default_spec_renders_the_script_and_the_cron_job() -> None:
    objects = drill.drill_objects(pulsebase())
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ConfigMap", "shop-drill"),
        ("CronJob", "shop-drill"),
    ]
    assert objects[0]["data"] == {drill.SCRIPT_KEY: drill.RESTORE_SCRIPT}


@pytest.mark.parametrize(
    "spec",
    [
        {"postgres": EXTERNAL_POSTGRES},
        {"backup": {"enabled": False}},
        {"backup": {"drill": {"enabled": False}}},
    ],
    ids=["external database", "backups off", "drills off"],
)
def test_no_drill_without_a_managed_database_backups_and_drills(spec: dict[str, object]) -> None:
    assert drill.drill_objects(pulsebase(**spec)) == []


def test_schedule_time_zone_and_deadlines_follow_the_spec() -> None:
    pb = pulsebase(
        backup={"timeZone": "Europe/Berlin", "rto": "2h", "drill": {"schedule": "15 4 * * 6"}}
    )
    spec = drill.cron_job(pb)["spec"]
    assert spec["schedule"] == "15 4 * * 6"
    assert spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    # The check gives up at the objective and reports; the Job ends a margin later.
    check = {c["name"]: c for c in job["template"]["spec"]["containers"]}["check"]
    assert "--deadline=7200" in check["args"]
    assert job["activeDeadlineSeconds"] == 7200 + drill.DEADLINE_MARGIN_SECONDS


def test_pods_carry_the_drill_component_labels_and_pass_restricted() -> None:
    job = drill.cron_job(pulsebase())
    template = job["spec"]["jobTemplate"]["spec"]["template"]
    assert template["metadata"]["labels"] == labels.component("shop", "drill")
    spec = pod_spec(job)
    assert restricted_violations(spec) == []
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert {"name": "scratch", "emptyDir": {}} in spec["volumes"]


def test_restore_runs_the_script_in_the_postgres_image_with_the_repository_keys() -> None:
    restore = containers({"postgres": {"majorVersion": 15}})["restore"]
    assert restore["image"] == images.postgres(15)
    assert restore["command"] == ["bash", f"{drill.SCRIPT_DIR}/{drill.SCRIPT_KEY}"]
    env = {e["name"]: e for e in restore["env"]}
    assert env["CONFIG"]["value"] == backups.CONFIG_FILE
    assert env["STANZA"]["value"] == backups.STANZA
    assert env["SCRATCH"]["value"] == drill.SCRATCH_DIR
    key = env["PGBACKREST_REPO1_S3_KEY_SECRET"]["valueFrom"]["secretKeyRef"]
    assert key["name"] == naming.objectstore_secret("shop")
    mounts = {m["name"]: m["mountPath"] for m in restore["volumeMounts"]}
    assert mounts["pgbackrest"] == backups.CONFIG_DIR
    spec = pod_spec(drill.cron_job(pulsebase()))
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["pgbackrest"]["configMap"]["name"] == naming.pgbackrest_config("shop")
    assert volumes["script"]["configMap"]["name"] == "shop-drill"
    # pgbackrest.conf names the managed object storage's CA file; the pod mounts it.
    assert volumes["objectstore-ca"]["secret"]["secretName"] == "shop-objectstore-tls"
    assert mounts["objectstore-ca"] == "/etc/pulsebase/objectstore-ca"


def test_check_runs_the_operator_image_with_the_marker_table_when_set() -> None:
    check = containers({"backup": {"drill": {"markerTable": "public.orders"}}})["check"]
    assert check["image"] == images.operator()
    assert check["command"] == ["/venv/bin/pulsebase-operator"]
    assert check["args"][0] == "drill-check"
    assert "--marker-table=public.orders" in check["args"]
    assert f"--scratch={drill.SCRATCH_DIR}" in check["args"]
    # No key of the repository: the check reads only what restore wrote.
    assert not any(e["name"].startswith("PGBACKREST") for e in check["env"])
    assert not any(a.startswith("--marker-table") for a in containers()["check"]["args"])


def test_check_starts_before_restore_so_the_measured_time_includes_it() -> None:
    names = [c["name"] for c in pod_spec(drill.cron_job(pulsebase()))["containers"]]
    assert names == ["check", "restore"]


def test_names_fit_for_the_longest_pulsebase_name() -> None:
    longest = "a" * 40
    for obj in drill.drill_objects(pulsebase(name=longest)):
        assert len(obj["metadata"]["name"]) <= naming.CRONJOB_LIMIT


def test_script_is_valid_bash_and_never_archives() -> None:
    subprocess.run(["bash", "-n", "-c", drill.RESTORE_SCRIPT], check=True)
    assert "--archive-mode=off" in drill.RESTORE_SCRIPT
    assert "listen_addresses= " in drill.RESTORE_SCRIPT
