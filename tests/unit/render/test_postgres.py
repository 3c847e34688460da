import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from pulsebase_operator.api import models
from pulsebase_operator.render import labels, postgres

from .examples import (
    EXTERNAL_OBJECT_STORAGE,
    EXTERNAL_POSTGRES,
    container,
    env,
    find,
    kinds,
    pod_spec,
    pulsebase,
    secret_ref,
    value,
)


def test_external_postgres_renders_nothing_and_reports_the_server() -> None:
    part = postgres.render(pulsebase(postgres=EXTERNAL_POSTGRES))
    assert part.objects == ()
    assert part.component.mode == "external"
    assert part.component.endpoint == "db.example.com:6432"
    assert part.component.workloads == ()


def test_managed_postgres_renders_a_patroni_cluster() -> None:
    part = postgres.render(pulsebase())
    assert kinds(part.objects) == [
        ("ServiceAccount", "shop-postgres"),
        ("Role", "shop-postgres"),
        ("RoleBinding", "shop-postgres"),
        ("ConfigMap", "shop-postgres"),
        ("Service", "shop-postgres"),
        ("Service", "shop-postgres-rw"),
        ("Service", "shop-postgres-ro"),
        ("StatefulSet", "shop-postgres"),
        ("PodDisruptionBudget", "shop-postgres"),
    ]
    assert part.component.name == "postgres"
    assert part.component.mode == "managed"
    assert part.component.endpoint == "shop-postgres-rw.prod.svc:5432"
    assert [(w.kind, w.name) for w in part.component.workloads] == [
        ("StatefulSet", "shop-postgres")
    ]


def test_single_instance_has_no_disruption_budget() -> None:
    part = postgres.render(pulsebase(postgres={"instances": 1}))
    assert "PodDisruptionBudget" not in [kind for kind, _ in kinds(part.objects)]


def test_role_grants_patroni_configmaps_and_pods_only() -> None:
    role = find(postgres.render(pulsebase()).objects, "Role")
    granted = {resource: rule["verbs"] for rule in role["rules"] for resource in rule["resources"]}
    assert set(granted) == {"configmaps", "pods"}
    assert "delete" in granted["configmaps"]
    assert "delete" not in granted["pods"]
    assert "create" not in granted["pods"]


def test_role_binding_binds_the_service_account() -> None:
    binding = find(postgres.render(pulsebase()).objects, "RoleBinding")
    assert binding["roleRef"]["name"] == "shop-postgres"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "shop-postgres", "namespace": "prod"}
    ]


def test_primary_and_replica_services_select_on_the_patroni_role_label() -> None:
    objects = postgres.render(pulsebase()).objects
    selector = labels.selector("shop", "postgres")
    primary = find(objects, "Service", "shop-postgres-rw")
    replicas = find(objects, "Service", "shop-postgres-ro")
    assert primary["spec"]["selector"] == {**selector, "role": "primary"}
    assert replicas["spec"]["selector"] == {**selector, "role": "replica"}
    assert primary["spec"]["ports"][0]["port"] == 5432


def test_headless_service_publishes_members_before_they_are_ready() -> None:
    service = find(postgres.render(pulsebase()).objects, "Service", "shop-postgres")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_statefulset_follows_instances_storage_and_deletion_policy() -> None:
    pb = pulsebase(
        postgres={"instances": 5, "storage": {"size": "50Gi", "storageClassName": "fast"}},
        deletionPolicy="Delete",
    )
    sts = find(postgres.render(pb).objects, "StatefulSet")
    spec = sts["spec"]
    assert spec["replicas"] == 5
    assert spec["serviceName"] == "shop-postgres"
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "50Gi"}},
        "storageClassName": "fast",
    }


def test_volume_claim_has_no_storage_class_unless_given() -> None:
    sts = find(postgres.render(pulsebase()).objects, "StatefulSet")
    assert "storageClassName" not in sts["spec"]["volumeClaimTemplates"][0]["spec"]


def test_patroni_uses_configmaps_and_labels_roles_primary_and_replica() -> None:
    variables = env(find(postgres.render(pulsebase()).objects, "StatefulSet"))
    assert value(variables["PATRONI_KUBERNETES_USE_ENDPOINTS"]) == "false"
    assert value(variables["PATRONI_SCOPE"]) == "shop-postgres"
    assert json.loads(value(variables["PATRONI_KUBERNETES_LABELS"])) == labels.selector(
        "shop", "postgres"
    )
    assert value(variables["PATRONI_KUBERNETES_ROLE_LABEL"]) == "role"
    assert value(variables["PATRONI_KUBERNETES_LEADER_LABEL_VALUE"]) == "primary"
    assert value(variables["PATRONI_KUBERNETES_FOLLOWER_LABEL_VALUE"]) == "replica"
    assert value(variables["PATRONI_KUBERNETES_STANDBY_LEADER_LABEL_VALUE"]) == "primary"
    assert variables["PATRONI_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert variables["PATRONI_KUBERNETES_POD_IP"]["valueFrom"]["fieldRef"] == {
        "fieldPath": "status.podIP"
    }
    assert value(variables["PATRONI_POSTGRESQL_DATA_DIR"]) == "/var/lib/postgresql/data/pgdata"


def test_pods_carry_the_scope_label_patroni_selects_members_by() -> None:
    sts = find(postgres.render(pulsebase()).objects, "StatefulSet")
    scope_label = value(env(sts)["PATRONI_KUBERNETES_SCOPE_LABEL"])
    assert sts["spec"]["template"]["metadata"]["labels"][scope_label] == "shop-postgres"


def test_credentials_come_from_generated_secrets() -> None:
    variables = env(find(postgres.render(pulsebase()).objects, "StatefulSet"))
    assert value(variables["PATRONI_SUPERUSER_USERNAME"]) == "postgres"
    assert secret_ref(variables["PATRONI_SUPERUSER_PASSWORD"]) == (
        "shop-postgres-superuser",
        "password",
    )
    assert value(variables["PATRONI_REPLICATION_USERNAME"]) == "replicator"
    assert secret_ref(variables["PATRONI_REPLICATION_PASSWORD"]) == (
        "shop-postgres-replication",
        "password",
    )
    assert secret_ref(variables["PATRONI_RESTAPI_USERNAME"]) == (
        "shop-postgres-restapi",
        "username",
    )
    assert secret_ref(variables["PATRONI_RESTAPI_PASSWORD"]) == (
        "shop-postgres-restapi",
        "password",
    )
    assert secret_ref(variables["APP_USER"]) == ("shop-postgres-app", "username")
    assert secret_ref(variables["APP_PASSWORD"]) == ("shop-postgres-app", "password")
    assert secret_ref(variables["APP_DATABASE"]) == ("shop-postgres-app", "database")


def test_probes_ask_patroni() -> None:
    main = container(find(postgres.render(pulsebase()).objects, "StatefulSet"))
    assert main["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": "patroni"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/liveness", "port": "patroni"}
    assert {p["containerPort"] for p in main["ports"]} == {5432, 8008}


def test_patroni_pods_mount_the_service_account_token_and_writable_paths() -> None:
    spec = pod_spec(find(postgres.render(pulsebase()).objects, "StatefulSet"))
    assert spec["serviceAccountName"] == "shop-postgres"
    assert spec["automountServiceAccountToken"] is True
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert {"/tmp", "/var/run/postgresql", "/var/lib/postgresql/data"} <= mounts


def config_of(pb: models.PulseBase) -> dict[str, Any]:
    config_map = find(postgres.render(pb).objects, "ConfigMap")
    return yaml.safe_load(config_map["data"]["patroni.yml"])


def test_bootstrap_parameters_merge_user_settings_over_defaults() -> None:
    pb = pulsebase(postgres={"parameters": {"max_connections": "500", "work_mem": "64MB"}})
    parameters = config_of(pb)["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert parameters["max_connections"] == "500"
    assert parameters["work_mem"] == "64MB"
    assert parameters["shared_preload_libraries"] == "pg_stat_statements"
    assert parameters["wal_level"] == "replica"
    assert parameters["hot_standby"] == "on"


def test_wal_is_archived_through_pgbackrest_when_backups_are_on() -> None:
    pb = pulsebase(backup={"rpo": "1h"})
    config = config_of(pb)
    for parameters in (
        config["bootstrap"]["dcs"]["postgresql"]["parameters"],
        config["postgresql"]["parameters"],
    ):
        assert parameters["archive_mode"] == "on"
        assert parameters["archive_command"] == (
            "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=pulsebase archive-push %p"
        )
        # One rule for the timeout, the archiving module's: a third of the RPO.
        assert parameters["archive_timeout"] == "1200s"
    assert config["postgresql"]["recovery_conf"] == {
        "restore_command": "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf"
        " --stanza=pulsebase archive-get %f %p"
    }


def test_wal_is_not_archived_with_backups_off() -> None:
    config = config_of(pulsebase(backup={"enabled": False}))
    for parameters in (
        config["bootstrap"]["dcs"]["postgresql"]["parameters"],
        config["postgresql"]["parameters"],
    ):
        assert parameters["archive_mode"] == "off"
        assert "archive_command" not in parameters
        assert "archive_timeout" not in parameters
    assert "recovery_conf" not in config["postgresql"]


def test_the_pgbackrest_config_map_is_mounted_only_when_backups_are_on() -> None:
    on = find(postgres.render(pulsebase()).objects, "StatefulSet")
    assert {"name": "pgbackrest", "configMap": {"name": "shop-pgbackrest"}} in pod_spec(on)[
        "volumes"
    ]
    assert {"name": "pgbackrest", "mountPath": "/etc/pgbackrest", "readOnly": True} in container(
        on
    )["volumeMounts"]
    off = find(postgres.render(pulsebase(backup={"enabled": False})).objects, "StatefulSet")
    assert all(v["name"] != "pgbackrest" for v in pod_spec(off)["volumes"])
    assert all(m["name"] != "pgbackrest" for m in container(off)["volumeMounts"])


def test_bootstrap_dcs_settings() -> None:
    dcs = config_of(pulsebase())["bootstrap"]["dcs"]
    assert dcs["ttl"] == 30
    assert dcs["loop_wait"] == 10
    assert dcs["retry_timeout"] == 10
    assert dcs["maximum_lag_on_failover"] > 0
    assert dcs["postgresql"]["use_pg_rewind"] is True


def test_pg_hba_requires_passwords_over_the_network() -> None:
    hba = config_of(pulsebase())["postgresql"]["pg_hba"]
    assert "host replication replicator 0.0.0.0/0 scram-sha-256" in hba
    assert all(line.endswith("scram-sha-256") for line in hba if line.startswith("host"))


def test_post_init_creates_role_database_and_vector_from_the_environment() -> None:
    config_map = find(postgres.render(pulsebase()).objects, "ConfigMap")
    script = config_map["data"]["post_init.sh"]
    assert config_of(pulsebase())["bootstrap"]["post_init"].endswith("/post_init.sh")
    assert "CREATE EXTENSION IF NOT EXISTS vector" in script
    for variable in ("APP_USER", "APP_PASSWORD", "APP_DATABASE"):
        assert f"\\getenv {variable.lower()} {variable}" in script


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_post_init_is_valid_shell() -> None:
    script = find(postgres.render(pulsebase()).objects, "ConfigMap")["data"]["post_init.sh"]
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_config_change_rolls_the_pods() -> None:
    def config_hash(pb: models.PulseBase) -> str:
        sts = find(postgres.render(pb).objects, "StatefulSet")
        return sts["spec"]["template"]["metadata"]["annotations"]["pulsebase.io/config-hash"]

    assert config_hash(pulsebase()) == config_hash(pulsebase())
    changed = pulsebase(postgres={"parameters": {"work_mem": "64MB"}})
    assert config_hash(changed) != config_hash(pulsebase())


def test_pgbackrest_repository_is_the_managed_backups_bucket() -> None:
    variables = env(find(postgres.render(pulsebase()).objects, "StatefulSet"))
    assert value(variables["PGBACKREST_REPO1_TYPE"]) == "s3"
    assert value(variables["PGBACKREST_REPO1_S3_BUCKET"]) == "shop-backups"
    assert value(variables["PGBACKREST_REPO1_S3_ENDPOINT"]) == "shop-objectstore.prod.svc"
    assert value(variables["PGBACKREST_REPO1_STORAGE_PORT"]) == "8333"
    assert value(variables["PGBACKREST_REPO1_S3_URI_STYLE"]) == "path"
    assert secret_ref(variables["PGBACKREST_REPO1_S3_KEY"]) == (
        "shop-objectstore-keys",
        "access-key-id",
    )


def test_pgbackrest_repository_is_an_external_bucket_with_the_users_keys() -> None:
    pb = pulsebase(objectStorage={**EXTERNAL_OBJECT_STORAGE, "buckets": {"backups": "shop-wal"}})
    variables = env(find(postgres.render(pb).objects, "StatefulSet"))
    assert value(variables["PGBACKREST_REPO1_S3_BUCKET"]) == "shop-wal"
    assert value(variables["PGBACKREST_REPO1_S3_ENDPOINT"]) == "s3.eu-west-1.amazonaws.com"
    assert value(variables["PGBACKREST_REPO1_STORAGE_PORT"]) == "443"
    assert value(variables["PGBACKREST_REPO1_S3_REGION"]) == "eu-west-1"
    assert value(variables["PGBACKREST_REPO1_S3_URI_STYLE"]) == "host"
    assert secret_ref(variables["PGBACKREST_REPO1_S3_KEY_SECRET"]) == ("aws", "secret")


def test_image_defaults_to_the_major_version_and_may_be_overridden() -> None:
    default = container(find(postgres.render(pulsebase()).objects, "StatefulSet"))
    assert default["image"] == "ghcr.io/pulsebase/postgres-patroni:16"
    custom = pulsebase(postgres={"majorVersion": 17, "image": "registry.local/pg:17"})
    assert container(find(postgres.render(custom).objects, "StatefulSet"))["image"] == (
        "registry.local/pg:17"
    )


def test_pgbackrest_in_the_patroni_pods_trusts_the_managed_object_storages_ca() -> None:
    sts = find(postgres.render(pulsebase()).objects, "StatefulSet")
    assert value(env(sts)["PGBACKREST_REPO1_STORAGE_CA_FILE"]) == (
        "/etc/pulsebase/objectstore-ca/ca.crt"
    )
    mount = {"name": "objectstore-ca", "mountPath": "/etc/pulsebase/objectstore-ca"}
    assert {**mount, "readOnly": True} in container(sts)["volumeMounts"]
    (ca,) = [v for v in pod_spec(sts)["volumes"] if v["name"] == "objectstore-ca"]
    assert ca["secret"]["secretName"] == "shop-objectstore-tls"
    assert ca["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]


def test_an_external_object_storage_needs_no_mounted_ca() -> None:
    pb = pulsebase(objectStorage=EXTERNAL_OBJECT_STORAGE)
    sts = find(postgres.render(pb).objects, "StatefulSet")
    assert "PGBACKREST_REPO1_STORAGE_CA_FILE" not in env(sts)
    assert all(v["name"] != "objectstore-ca" for v in pod_spec(sts)["volumes"])
