"""The Redis probe against a real single node and real six-node clusters."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pulsebase_operator.probes import Reading, RedisTarget, redis
from tests.integration.servers import REDIS_PASSWORD, RedisCluster, RedisNode, free_port, poll

TIMEOUT = 1.0
MIB = 2**20


def probe(target: RedisTarget, previous: Reading | None = None) -> Reading:
    return redis.probe(target, timeout=TIMEOUT, previous=previous)


@pytest.fixture
def node(redis_node: RedisNode) -> Iterator[RedisNode]:
    yield redis_node
    redis_node.client().config_set("maxmemory", 0)


def test_a_single_node_is_probed_without_cluster_commands(node: RedisNode) -> None:
    reading = probe(node.target())

    assert (reading.healthy, reading.reason) == (True, "Healthy")
    values = reading.values
    assert values["mode"] == "single"
    assert (values["clusterState"], values["slotsAssigned"], values["slotsOk"]) == (None,) * 3
    assert (values["nodes"], values["nodesReachable"]) == (1, 1)
    assert values["latencySeconds"] > 0
    assert values["memoryUsedBytes"] > 0
    assert values["memoryMaxBytes"] is None  # no maxmemory: unlimited
    assert values["evictedKeys"] == 0


def test_maxmemory_is_reported(node: RedisNode) -> None:
    node.client().config_set("maxmemory", 64 * MIB)

    assert probe(node.target()).values["memoryMaxBytes"] == 64 * MIB


def test_the_hit_ratio_is_a_rate_between_probes(node: RedisNode) -> None:
    client = node.client()
    client.set("present", "1")
    for _ in range(7):
        client.get("absent")  # misses before the first probe must not count
    first = probe(node.target())

    for _ in range(3):
        client.get("present")
    client.get("absent")
    second = probe(node.target(), previous=first)
    quiet = probe(node.target(), previous=second)

    assert first.values["hitRatio"] is None
    assert second.values["hitRatio"] == 0.75
    assert "hit ratio 75%" in second.message
    assert quiet.values["hitRatio"] is None  # no lookups in between


def test_a_wrong_password_is_an_authentication_failure(node: RedisNode) -> None:
    reading = probe(node.target(password="wrong-redis-password"))

    assert (reading.healthy, reading.reason) == (False, "AuthenticationFailed")
    assert "wrong-redis-password" not in reading.message
    assert REDIS_PASSWORD not in reading.message


def test_a_single_node_probed_as_a_cluster_says_so(node: RedisNode) -> None:
    target = RedisTarget(endpoints=(("127.0.0.1", node.port),), password=REDIS_PASSWORD)

    reading = probe(target)

    assert (reading.healthy, reading.reason) == (False, "ClusterDisabled")


def test_nothing_listening_is_unreachable() -> None:
    started = time.monotonic()
    reading = probe(RedisTarget(endpoints=(("127.0.0.1", free_port()),), cluster=False))

    assert (reading.healthy, reading.reason) == (False, "Unreachable")
    assert time.monotonic() - started < TIMEOUT + 3  # refused at once; loose for busy machines


def test_a_healthy_cluster_serves_every_slot_from_every_node(redis_cluster: RedisCluster) -> None:
    reading = probe(redis_cluster.target())

    assert (reading.healthy, reading.reason) == (True, "Healthy")
    values = reading.values
    assert values["mode"] == "cluster"
    assert values["clusterState"] == "ok"
    assert (values["slotsAssigned"], values["slotsOk"]) == (16384, 16384)
    assert (values["nodes"], values["nodesReachable"]) == (6, 6)
    # Summed over the three primaries.
    assert values["memoryUsedBytes"] > 0
    assert values["memoryMaxBytes"] is None


def test_the_cluster_hit_ratio_sums_the_primaries(redis_cluster: RedisCluster) -> None:
    client = redis_cluster.client()
    keys = [f"key-{n}" for n in range(3)]  # spread over the shards by their hash slots
    for key in keys:
        client.set(key, "1")
    first = probe(redis_cluster.target())

    for key in keys:
        client.get(key)
    client.get("never-set")
    second = probe(redis_cluster.target(), previous=first)

    assert second.values["hitRatio"] == 0.75


def test_a_dead_primary_without_failover_takes_the_cluster_down(
    redis_cluster_fresh: RedisCluster,
) -> None:
    cluster = redis_cluster_fresh
    primary = next(n for n in cluster.nodes if cluster.node_roles()[n.port] == "master")
    # Its replica must not take over, or the cluster would heal before we look.
    cluster.replica_of(primary).client().config_set("cluster-replica-no-failover", "yes")
    others = [n for n in cluster.nodes if n is not primary]
    target = RedisTarget(endpoints=tuple(("127.0.0.1", n.port) for n in others[:2]))
    primary.stop()

    at_once = probe(target)
    down = poll(lambda: probe(target), lambda r: r.reason == "ClusterDown")

    # Before the others agree it has failed, the probe sees it gone by itself.
    assert not at_once.healthy
    assert at_once.reason in {"NodeUnreachable", "SlotsUncovered", "ClusterDown"}
    assert down.values["clusterState"] == "fail"
    assert down.values["slotsOk"] < 16384
    assert down.values["nodesReachable"] == 5
