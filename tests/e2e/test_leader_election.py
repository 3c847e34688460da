"""Two replicas with --leader-elect: one reconciles, the other takes over when it dies."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.e2e.conftest import Operator, apply, example, wait_for
from tests.e2e.test_stack import MANAGED, patch_spec, ready
from tests.support.localcluster import LocalCluster

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 15  # the operator's default lease duration
RETRY_SECONDS = 2


@pytest.fixture
def replicas(
    control_plane: LocalCluster, operator: Operator, tmp_path: Path
) -> Iterator[list[Operator]]:
    """Two electing replicas, with the session's single operator paused meanwhile."""
    operator.stop()
    args = ("--leader-elect", "--leader-elect-namespace", "default")
    pair = [
        Operator(control_plane, tmp_path / f"replica-{i}.log", extra_args=args) for i in range(2)
    ]
    for replica in pair:
        replica.start()
    yield pair
    for replica in pair:
        replica.stop()
    operator.start()


def holder(api: k8s.ApiClient) -> str | None:
    try:
        lease = k8s.CoordinationV1Api(api).read_namespaced_lease("pulsebase-operator", "default")
    except k8s.ApiException:
        return None
    return lease.spec.holder_identity or None


def leading(api: k8s.ApiClient, replicas: list[Operator]) -> Operator | None:
    """The replica holding the lease (its identity ends with its process id)."""
    identity = holder(api) or ""
    for replica in replicas:
        if replica.process and identity.endswith(f"-{replica.process.pid}"):
            return replica
    return None


def passes(replica: Operator) -> int:
    return sum('"pass complete"' in line for line in replica.log_lines())


def test_one_replica_leads_and_the_other_takes_over_when_it_dies(
    control_plane: LocalCluster,
    api_client: k8s.ApiClient,
    replicas: list[Operator],
    namespace: str,
) -> None:
    assert apply(control_plane, *example(MANAGED, namespace)).returncode == 0
    wait_for(lambda: ready(api_client, namespace, "shop"), timeout=180, what="Ready")
    leader = wait_for(lambda: leading(api_client, replicas), what="a replica to lead")
    follower = next(r for r in replicas if r is not leader)
    assert passes(leader) > 0
    assert passes(follower) == 0, "the follower reconciled while the leader held the lease"

    leader.stop(signal.SIGKILL)  # no chance to release the lease
    killed = time.monotonic()
    patch_spec(api_client, namespace, "shop", {"api": {"replicas": 4}})
    apps = k8s.AppsV1Api(api_client)
    wait_for(
        lambda: apps.read_namespaced_deployment("shop-api", namespace).spec.replicas == 4,
        timeout=LEASE_SECONDS * 2 + 10,
        what="the follower to take over and apply the change",
    )
    took_over = time.monotonic() - killed
    print(f"failover after kill -9: {took_over:.1f}s")
    assert took_over <= LEASE_SECONDS + RETRY_SECONDS + 10
    assert str(follower.process.pid) in (holder(api_client) or "")


def test_a_graceful_stop_hands_the_lease_over_at_once(
    control_plane: LocalCluster, api_client: k8s.ApiClient, replicas: list[Operator]
) -> None:
    leader = wait_for(lambda: leading(api_client, replicas), what="a replica to lead")
    follower = next(r for r in replicas if r is not leader)
    assert leader.stop(signal.SIGTERM), "the leader did not exit by itself after SIGTERM"
    stopped = time.monotonic()
    wait_for(
        lambda: str(follower.process.pid) in (holder(api_client) or ""),
        timeout=RETRY_SECONDS + 10,
        what="the follower to hold the lease",
    )
    assert time.monotonic() - stopped <= RETRY_SECONDS + 5
