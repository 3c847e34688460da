import shutil
import subprocess

import pytest

from pulsebase_operator.render import labels, redis

from .examples import (
    EXTERNAL_REDIS,
    container,
    env,
    find,
    kinds,
    pod_spec,
    pulsebase,
    secret_ref,
    value,
)


def test_external_redis_renders_nothing_and_reports_the_first_endpoint() -> None:
    part = redis.render(pulsebase(redis=EXTERNAL_REDIS))
    assert part.objects == ()
    assert part.component.mode == "external"
    assert part.component.endpoint == "cache-1.example.com:6380"


def test_managed_redis_renders_a_cluster_and_its_bootstrap_job() -> None:
    part = redis.render(pulsebase())
    assert kinds(part.objects) == [
        ("ConfigMap", "shop-redis"),
        ("Service", "shop-redis"),
        ("StatefulSet", "shop-redis"),
        ("PodDisruptionBudget", "shop-redis"),
        ("Job", "shop-redis-init-3x2"),
    ]
    assert part.component.endpoint == "shop-redis.prod.svc:6379"
    assert [(w.kind, w.name) for w in part.component.workloads] == [
        ("StatefulSet", "shop-redis"),
        ("Job", "shop-redis-init-3x2"),
    ]


@pytest.mark.parametrize(
    ("shards", "replicas", "nodes", "job"),
    [
        (3, 0, 3, "shop-redis-init-3x1"),
        (3, 1, 6, "shop-redis-init-3x2"),
        (5, 2, 15, "shop-redis-init-5x3"),
    ],
)
def test_nodes_and_job_name_follow_the_topology(
    shards: int, replicas: int, nodes: int, job: str
) -> None:
    pb = pulsebase(redis={"shards": shards, "replicasPerShard": replicas})
    objects = redis.render(pb).objects
    assert find(objects, "StatefulSet")["spec"]["replicas"] == nodes
    find(objects, "Job", job)


def test_valkey_conf_enables_cluster_mode_without_persistence() -> None:
    conf = find(redis.render(pulsebase()).objects, "ConfigMap")["data"]["valkey.conf"]
    lines = conf.splitlines()
    for line in (
        "cluster-enabled yes",
        "cluster-config-file /data/nodes.conf",
        "cluster-node-timeout 5000",
        "cluster-preferred-endpoint-type hostname",
        "appendonly no",
        'save ""',
        "protected-mode no",
    ):
        assert line in lines


def test_maxmemory_is_given_in_bytes_with_the_eviction_policy() -> None:
    pb = pulsebase(redis={"maxMemory": "1Gi", "evictionPolicy": "allkeys-lfu"})
    lines = redis.valkey_conf(pb).splitlines()
    assert "maxmemory 1073741824" in lines
    assert "maxmemory-policy allkeys-lfu" in lines


def test_password_and_hostname_reach_valkey_through_env_expansion() -> None:
    sts = find(redis.render(pulsebase()).objects, "StatefulSet")
    command = container(sts)["command"]
    assert command[command.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert command[command.index("--masterauth") + 1] == "$(REDIS_PASSWORD)"
    assert command[command.index("--cluster-announce-hostname") + 1] == "$(POD_HOSTNAME)"
    variables = env(sts)
    assert secret_ref(variables["REDIS_PASSWORD"]) == ("shop-redis-auth", "password")
    assert value(variables["POD_HOSTNAME"]) == "$(POD_NAME).shop-redis.prod.svc"


def test_readiness_pings_with_the_password_through_a_shell() -> None:
    probe = container(find(redis.render(pulsebase()).objects, "StatefulSet"))["readinessProbe"]
    shell, flag, script = probe["exec"]["command"]
    assert (shell, flag) == ("sh", "-c")
    assert 'valkey-cli --no-auth-warning -a "$REDIS_PASSWORD" ping' in script


def test_headless_service_exposes_client_and_bus_ports_before_ready() -> None:
    service = find(redis.render(pulsebase()).objects, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert [p["port"] for p in service["spec"]["ports"]] == [6379, 16379]


def test_disruption_budget_allows_one_node_down() -> None:
    budget = find(redis.render(pulsebase()).objects, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1


def test_each_node_keeps_a_volume_for_its_cluster_state() -> None:
    pb = pulsebase(redis={"storage": {"size": "2Gi"}})
    (claim,) = find(redis.render(pb).objects, "StatefulSet")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_node_addresses_are_stable_pod_dns_names() -> None:
    assert redis.node_addresses(pulsebase(redis={"replicasPerShard": 0})) == [
        "shop-redis-0.shop-redis.prod.svc:6379",
        "shop-redis-1.shop-redis.prod.svc:6379",
        "shop-redis-2.shop-redis.prod.svc:6379",
    ]


def test_bootstrap_job_retries_and_is_not_selected_by_the_nodes() -> None:
    job = find(redis.render(pulsebase()).objects, "Job")
    assert job["spec"]["backoffLimit"] == 10
    assert "ttlSecondsAfterFinished" not in job["spec"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "OnFailure"
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    selector = labels.selector("shop", "redis")
    assert not selector.items() <= pod_labels.items()


def test_bootstrap_job_is_told_the_nodes_and_the_topology() -> None:
    pb = pulsebase(redis={"shards": 4, "replicasPerShard": 2})
    variables = env(find(redis.render(pb).objects, "Job"))
    nodes = value(variables["NODES"]).split(" ")
    assert nodes == redis.node_addresses(pb)
    assert len(nodes) == 12
    assert value(variables["SHARDS"]) == "4"
    assert value(variables["REPLICAS"]) == "2"
    assert secret_ref(variables["REDIS_PASSWORD"]) == ("shop-redis-auth", "password")
    assert container(find(redis.render(pb).objects, "Job"))["command"] == [
        "sh",
        "-c",
        redis.BOOTSTRAP_SCRIPT,
    ]


def test_bootstrap_script_creates_grows_and_checks_the_cluster() -> None:
    script = redis.BOOTSTRAP_SCRIPT
    assert '--cluster create $NODES --cluster-replicas "$REPLICAS" --cluster-yes' in script
    assert '--cluster add-node "$node" "$first"' in script
    assert "--cluster-slave --cluster-master-id" in script
    assert "--cluster rebalance" in script
    assert "--cluster-use-empty-masters" in script
    assert "--cluster fix" in script
    for field in ("cluster_state", "cluster_known_nodes", "cluster_size"):
        assert field in script


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_bootstrap_script_is_valid_shell() -> None:
    subprocess.run(["sh", "-n"], input=redis.BOOTSTRAP_SCRIPT, text=True, check=True)


def test_config_change_rolls_the_nodes() -> None:
    def config_hash(max_memory: str) -> str:
        sts = find(redis.render(pulsebase(redis={"maxMemory": max_memory})).objects, "StatefulSet")
        return sts["spec"]["template"]["metadata"]["annotations"]["pulsebase.io/config-hash"]

    assert config_hash("256Mi") == config_hash("256Mi")
    assert config_hash("256Mi") != config_hash("512Mi")
