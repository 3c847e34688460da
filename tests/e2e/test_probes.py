"""Live probes end to end: an external-mode PulseBase pointed at real PostgreSQL, Redis and
S3 servers on loopback, probed by the operator running against the local control plane.

The session's own operator runs with `--probes none` and watches every namespace, so it
is paused here and an operator with `--probes external` watches this module's namespace.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Operator, apply, wait_for
from tests.e2e.test_stack import condition, get_pb
from tests.integration.servers import (
    PROBE_PASSWORD,
    PROBE_USER,
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    MotoServer,
    PostgresPair,
    RedisCluster,
)
from tests.support.localcluster import LocalCluster

NAME = "shop"
ASSETS, BACKUPS = "shop-assets-e2e", "shop-backups-e2e"


@pytest.fixture(scope="module")
def watched(control_plane: LocalCluster) -> Iterator[str]:
    name = f"e2e-probes-{uuid.uuid4().hex[:6]}"
    apply(
        control_plane,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
    )
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def probing_operator(
    control_plane: LocalCluster,
    operator: Operator,
    watched: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    operator.stop()
    running = Operator(
        control_plane,
        tmp_path_factory.mktemp("probing-operator") / "operator.log",
        extra_args=("--probes", "external", "--namespace", watched),
    )
    running.start()
    yield running
    running.stop()
    operator.start()


def make_buckets(s3: MotoServer) -> None:
    client = s3.client()
    for bucket in (ASSETS, BACKUPS):
        client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=BACKUPS, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=BACKUPS, Key="config/1.json", Body=b"{}")


def manifests(
    namespace: str, postgres: PostgresPair, redis: RedisCluster, s3: MotoServer
) -> list[dict[str, Any]]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "loopback-credentials", "namespace": namespace},
        "stringData": {
            "db-user": PROBE_USER,
            "db-password": PROBE_PASSWORD,
            "s3-id": S3_ACCESS_KEY,
            "s3-secret": S3_SECRET_KEY,
        },
    }
    ref = {"name": "loopback-credentials"}
    seeds = [f"127.0.0.1:{node.port}" for node in redis.nodes[:2]]
    pulsebase = {
        "apiVersion": "pulsebase.io/v1alpha1",
        "kind": "PulseBase",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "version": "2.4.1",
            "api": {"replicas": 1},
            "postgres": {
                "mode": "external",
                "external": {
                    "host": "127.0.0.1",
                    "port": postgres.primary.port,
                    "database": "postgres",
                    "sslMode": "disable",
                    "username": {**ref, "key": "db-user"},
                    "password": {**ref, "key": "db-password"},
                },
            },
            "redis": {"mode": "external", "external": {"endpoints": seeds, "tls": False}},
            "objectStorage": {
                "mode": "external",
                "buckets": {"assets": ASSETS, "backups": BACKUPS},
                "external": {
                    "endpoint": s3.endpoint,
                    "region": S3_REGION,
                    "forcePathStyle": True,
                    "accessKeyId": {**ref, "key": "s3-id"},
                    "secretAccessKey": {**ref, "key": "s3-secret"},
                },
            },
            "cdn": {"provider": "none"},
            "monitoring": {"probeInterval": "5s"},
        },
    }
    return [secret, pulsebase]


def metrics_page(running: Operator) -> str:
    url = f"http://127.0.0.1:{running.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def scrape(running: Operator) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics_page(running)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def status_of(pb: dict[str, Any], kind: str) -> str | None:
    found = condition(pb, kind)
    return found["status"] if found else None


def healthy_everywhere(api_client: k8s.ApiClient, namespace: str) -> dict[str, Any] | None:
    pb = get_pb(api_client, namespace, NAME)
    status = pb.get("status") or {}
    health = status.get("health") or {}
    parts = ("postgres", "redis", "objectStorage")
    if status.get("phase") == "Ready" and all((health.get(p) or {}).get("healthy") for p in parts):
        return pb
    return None


def test_measured_values_reach_status_and_metrics_and_follow_an_outage(
    control_plane: LocalCluster,
    api_client: k8s.ApiClient,
    probing_operator: Operator,
    watched: str,
    postgres_pair: PostgresPair,
    redis_cluster: RedisCluster,
    s3_server_fresh: MotoServer,
) -> None:
    make_buckets(s3_server_fresh)
    done = apply(control_plane, *manifests(watched, postgres_pair, redis_cluster, s3_server_fresh))
    assert done.returncode == 0, done.stderr

    # Every dependency answers: the values are in status, with a condition each.
    pb = wait_for(lambda: healthy_everywhere(api_client, watched), timeout=90, what="healthy")
    health = pb["status"]["health"]
    assert health["postgres"]["role"] == "primary"
    assert health["postgres"]["maxConnections"] > 0
    assert len(health["postgres"]["members"]) == 1  # the streaming replica
    assert health["postgres"]["members"][0]["lagBytes"] >= 0
    assert health["redis"]["clusterState"] == "ok"
    assert health["redis"]["slotsOk"] == 16384
    assert health["objectStorage"]["buckets"][BACKUPS]["versioning"] == "Enabled"
    assert health["objectStorage"]["newestBackupAgeSeconds"] is not None
    for kind in ("PostgresHealthy", "RedisHealthy", "ObjectStorageHealthy"):
        assert status_of(pb, kind) == "True"
    assert status_of(pb, "ApiHealthy") == "Unknown"  # in the cluster: not reached from here

    # The same values on /metrics, labelled by namespace and name.
    at = {"namespace": watched, "pulsebase": NAME}
    metrics = scrape(probing_operator)
    up = "pulsebase_dependency_up"
    for component in ("postgres", "redis", "objectStorage"):
        assert metrics[(up, frozenset({**at, "component": component}.items()))] == 1
    assert metrics[("pulsebase_ready", frozenset(at.items()))] == 1
    assert metrics[("pulsebase_redis_cluster_slots_ok", frozenset(at.items()))] == 16384
    assert any(
        name == "pulsebase_postgres_replication_lag_bytes" and dict(labels)["namespace"] == watched
        for name, labels in metrics
    )
    # What a person would look at; shown with `pytest -s`.
    print(control_plane.kubectl("describe", "pb", NAME, "-n", watched).stdout)
    print(
        "\n".join(line for line in metrics_page(probing_operator).splitlines() if watched in line)
    )

    # The S3 server stops: its condition turns within an interval or two, Ready with it.
    s3_server_fresh.stop()
    pb = wait_for(
        lambda: (p := get_pb(api_client, watched, NAME))["status"]["phase"] == "Degraded" and p,
        timeout=30,
        what="Degraded after the S3 server stopped",
    )
    assert status_of(pb, "ObjectStorageHealthy") == "False"
    assert status_of(pb, "Ready") == "False"
    assert status_of(pb, "PostgresHealthy") == "True"  # the others are unaffected
    storage_up = (up, frozenset({**at, "component": "objectStorage"}.items()))
    assert scrape(probing_operator)[storage_up] == 0

    # It comes back (moto starts empty, so the buckets are made again): so does Ready.
    s3_server_fresh.restart()
    make_buckets(s3_server_fresh)
    wait_for(lambda: healthy_everywhere(api_client, watched), timeout=30, what="healthy again")

    # Deleting the PulseBase removes its series from /metrics.
    control_plane.kubectl("delete", "pb", NAME, "-n", watched, "--wait=true", "--timeout=60s")

    def series_gone() -> bool:
        return not any(set(at.items()) <= labels for _, labels in scrape(probing_operator))

    wait_for(series_gone, timeout=30, what="the series of the deleted PulseBase gone")


def configuration_backups(s3: MotoServer) -> dict[int, dict[str, Any]]:
    """generation -> document, for every configuration backup in the bucket."""
    client = s3.client()
    found: dict[int, dict[str, Any]] = {}
    listed = client.list_objects_v2(Bucket=BACKUPS, Prefix="configuration/")
    for item in listed.get("Contents", []):
        document = json.loads(client.get_object(Bucket=BACKUPS, Key=item["Key"])["Body"].read())
        found[document["metadata"]["generation"]] = {"key": item["Key"], **document}
    return found


def test_each_generation_writes_one_configuration_backup(
    control_plane: LocalCluster,
    api_client: k8s.ApiClient,
    probing_operator: Operator,
    watched: str,
    postgres_pair: PostgresPair,
    redis_cluster: RedisCluster,
    s3_server_fresh: MotoServer,
) -> None:
    make_buckets(s3_server_fresh)
    secret, pulsebase = manifests(watched, postgres_pair, redis_cluster, s3_server_fresh)
    pulsebase["metadata"]["name"] = "conf"
    assert apply(control_plane, secret, pulsebase).returncode == 0

    first = wait_for(
        lambda: configuration_backups(s3_server_fresh).get(1),
        timeout=60,
        what="the configuration backup of generation 1",
    )
    assert re.fullmatch(r"configuration/\d{8}T\d{6}Z-generation-1\.json", first["key"])
    assert first["metadata"]["name"] == "conf"
    assert first["metadata"]["namespace"] == watched
    assert first["metadata"]["uid"]
    assert first["spec"]["api"]["replicas"] == 1
    kinds = {obj["kind"] for obj in first["objects"]}
    assert "Deployment" in kinds and "Secret" not in kinds
    assert S3_SECRET_KEY not in json.dumps(first) and PROBE_PASSWORD not in json.dumps(first)

    # The bucket holds no backup set yet: status says when the configuration was saved,
    # and BackupsHealthy says what is missing.
    pb = wait_for(
        lambda: (
            (p := get_pb(api_client, watched, "conf"))
            .get("status", {})
            .get("backup", {})
            .get("lastConfiguration")
            and p
        ),
        timeout=30,
        what="status.backup.lastConfiguration",
    )
    backups_healthy = condition(pb, "BackupsHealthy")
    assert backups_healthy is not None
    assert (backups_healthy["status"], backups_healthy["reason"]) == ("False", "NoFullBackup")
    assert backups_healthy["message"].startswith("No full backup exists yet; No WAL")
    at = frozenset({"namespace": watched, "pulsebase": "conf", "kind": "configuration"}.items())
    assert scrape(probing_operator)[("pulsebase_backup_last_success_timestamp_seconds", at)] > 0

    # A spec change is a new generation, and a new document with the new spec.
    patched = control_plane.kubectl(
        "patch", "pb", "conf", "-n", watched, "--type", "merge",
        "-p", '{"spec":{"api":{"replicas":2}}}',
    )  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    second = wait_for(
        lambda: configuration_backups(s3_server_fresh).get(2),
        timeout=60,
        what="the configuration backup of generation 2",
    )
    assert second["spec"]["api"]["replicas"] == 2
    assert second["key"] > first["key"]

    # Rounds after that write nothing more: one document per generation.
    time.sleep(12)  # two probe intervals
    assert sorted(configuration_backups(s3_server_fresh)) == [1, 2]
    control_plane.kubectl("delete", "pb", "conf", "-n", watched, "--wait=true", "--timeout=60s")
