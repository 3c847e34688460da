"""run() over a whole stack of real servers, with and without a dependency that hangs."""

from __future__ import annotations

import json
import time

from pulsebase_operator import probes
from pulsebase_operator.probes import HttpTarget
from tests.integration.servers import (
    HttpServer,
    MotoServer,
    Postgres,
    PostgresPair,
    RedisCluster,
    RedisNode,
)


def test_one_run_probes_the_whole_stack_and_feeds_the_next(
    postgres_pair: PostgresPair,
    redis_cluster: RedisCluster,
    s3_server: MotoServer,
    http_server: HttpServer,
) -> None:
    s3_server.client().create_bucket(Bucket="stack-media")
    targets = {
        "postgres": postgres_pair.primary.target(),
        "redis": redis_cluster.target(),
        "objectStorage": s3_server.target(buckets=("stack-media",)),
        "api": HttpTarget(url=http_server.url("/ok")),
    }

    first = probes.run(targets, timeout=2)
    second = probes.run(targets, timeout=2, previous=first)

    assert {k: (r.component, r.healthy, r.reason) for k, r in first.items()} == {
        k: (k, True, "Healthy") for k in targets
    }
    # status.health takes the values as they are
    json.dumps({component: r.values for component, r in second.items()})
    assert first["postgres"].values["queryP95Seconds"] is None
    assert second["postgres"].values["queryP95Seconds"] is not None  # fed by the first


def test_a_frozen_database_does_not_hold_up_the_other_readings(
    postgres_server: Postgres, redis_node: RedisNode, http_server: HttpServer
) -> None:
    assert postgres_server.process is not None
    targets = {
        "postgres": postgres_server.target(),
        "redis": redis_node.target(),
        "api": HttpTarget(url=http_server.url("/ok")),
    }
    postgres_server.process.freeze()
    try:
        started = time.monotonic()
        readings = probes.run(targets, timeout=1)
        took = time.monotonic() - started
    finally:
        postgres_server.process.thaw()

    assert took < 6  # loosely: a timeout and the grace, never the hang
    assert (readings["postgres"].healthy, readings["postgres"].reason) == (False, "Timeout")
    assert readings["redis"].healthy
    assert readings["api"].healthy
