"""Redis and Valkey: PING, the cluster's view of itself, and INFO from every node.

In cluster mode the probe asks the first seed that answers for CLUSTER INFO (state and
slot coverage) and CLUSTER NODES (who is in the cluster), then connects to every known
node itself: a node the cluster still lists but the probe cannot reach makes the reading
unhealthy, even while the cluster reports `ok`. Figures that describe the data (hit ratio,
memory, evictions) are summed over the nodes that are primaries, by their own INFO.

The hit ratio is a rate: the keyspace hit and miss counters of each server process
(identified by its run_id, which changes on restart) are kept in Reading.state, and the
ratio covers only the lookups made between two probes.

Each command is bounded by `socket_connect_timeout` and `socket_timeout`, retries are
off, and the probe stops contacting further nodes once `timeout` has passed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pulsebase_operator.probes import rates
from pulsebase_operator.probes.reading import (
    AUTHENTICATION_FAILED,
    HEALTHY,
    TIMEOUT,
    UNREACHABLE,
    Reading,
    duration,
    failed,
    now,
    seconds,
)
from pulsebase_operator.probes.redaction import scrub, sentence
from pulsebase_operator.probes.targets import RedisTarget

COMPONENT = "redis"
SLOTS = 16384

CLUSTER_DOWN = "ClusterDown"
SLOTS_UNCOVERED = "SlotsUncovered"
NODE_UNREACHABLE = "NodeUnreachable"
CLUSTER_DISABLED = "ClusterDisabled"
COMMAND_FAILED = "CommandFailed"

# Of the reasons a seed can give, the one that best explains why none answered.
_SEED_PRIORITY = (AUTHENTICATION_FAILED, CLUSTER_DISABLED, TIMEOUT, COMMAND_FAILED, UNREACHABLE)


@dataclass(frozen=True)
class Node:
    """One line of CLUSTER NODES."""

    node_id: str
    ip: str
    port: int
    hostname: str | None
    flags: frozenset[str]

    @property
    def address(self) -> str:
        return f"{self.hostname or self.ip}:{self.port}"


@dataclass(frozen=True)
class _Cut:
    """The probe stopped before it had seen every node."""

    reason: str
    message: str


@dataclass(frozen=True)
class _State:
    counters: Mapping[str, tuple[int, int]]  # run_id -> (keyspace_hits, keyspace_misses)


def parse_cluster_nodes(text: str) -> list[Node]:
    """CLUSTER NODES output -> its nodes; nodes still in a handshake are left out."""
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        node_id, address, flags = fields[0], fields[1], frozenset(fields[2].split(","))
        if "handshake" in flags:
            continue
        # ip:port@cport[,hostname]; an empty ip while the address is unknown
        endpoint, _, rest = address.partition("@")
        hostname = rest.partition(",")[2] or None
        ip, _, port = endpoint.rpartition(":")
        nodes.append(
            Node(
                node_id=node_id,
                ip=ip,
                port=int(port) if port.isdigit() else 0,
                hostname=hostname,
                flags=flags,
            )
        )
    return nodes


def parse_fields(text: str) -> dict[str, str]:
    """`key:value` lines, as CLUSTER INFO prints them."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key] = value
    return fields


def blank_values(target: RedisTarget | None = None) -> dict[str, Any]:
    cluster = target.cluster if target is not None else True
    return {
        "latencySeconds": None,
        "mode": "cluster" if cluster else "single",
        "clusterState": None,
        "slotsAssigned": None,
        "slotsOk": None,
        "nodes": None,
        "nodesReachable": None,
        "hitRatio": None,
        "memoryUsedBytes": None,
        "memoryMaxBytes": None,
        "evictedKeys": None,
    }


def probe(target: RedisTarget, *, timeout: float, previous: Reading | None = None) -> Reading:
    measured_at = now()
    values = blank_values(target)
    deadline = time.monotonic() + timeout
    secrets = (target.password,)

    def unhealthy(reason: str, message: str) -> Reading:
        return failed(
            COMPONENT,
            reason=reason,
            message=sentence(scrub(message, secrets=secrets)),
            measured_at=measured_at,
            values=values,
            previous=previous,
        )

    clients: list[redis.Redis] = []
    try:
        # A seed that answers PING, timed with its connection.
        seed: tuple[str, int, redis.Redis] | None = None
        errors: list[tuple[str, str]] = []
        for host, port in target.endpoints:
            left = deadline - time.monotonic()
            if left <= 0:
                errors.append((TIMEOUT, f"no time left for {host}:{port}"))
                break
            client = _client(target, host=host, port=port, timeout=min(timeout, left))
            clients.append(client)
            started = time.monotonic()
            try:
                client.ping()
            except redis.RedisError as error:
                errors.append((_reason(error), f"{host}:{port}: {_detail(error)}"))
                continue
            values["latencySeconds"] = seconds(time.monotonic() - started)
            seed = (host, port, client)
            break
        if seed is None:
            reason = min((r for r, _ in errors), key=_SEED_PRIORITY.index, default=UNREACHABLE)
            detail = "; ".join(d for _, d in errors[:3]) or "no endpoints given"
            return unhealthy(reason, f"No Redis node answered ({detail})")
        host, port, client = seed

        try:
            if target.cluster:
                outcome = _probe_cluster(
                    target, client, values, timeout=timeout, deadline=deadline, clients=clients
                )
                if isinstance(outcome, _Cut):
                    return unhealthy(outcome.reason, outcome.message)
                counters, unreachable = outcome
            else:
                counters, unreachable = _add_figures(values, [_info(client)]), []
                values.update(nodes=1, nodesReachable=1)
        except redis.RedisError as error:
            reason = _reason(error)
            if reason == COMMAND_FAILED and "cluster support disabled" in str(error):
                return unhealthy(
                    CLUSTER_DISABLED,
                    f"Redis at {host}:{port} runs without cluster support, "
                    "but the target expects a cluster",
                )
            detail = _detail(error)
            return unhealthy(reason, f"Redis at {host}:{port} failed a probe command: {detail}")
    finally:
        for client in clients:
            client.close()

    before = previous.state if previous is not None else None
    if isinstance(before, _State):
        values["hitRatio"] = rates.hit_ratio(before.counters, counters)
    state = _State(counters=counters)

    problem = _cluster_problem(values, unreachable=unreachable) if target.cluster else None
    if problem is not None:
        reason, message = problem
        return Reading(
            component=COMPONENT,
            healthy=False,
            reason=reason,
            message=sentence(message),
            measured_at=measured_at,
            values=values,
            state=state,
        )
    return Reading(
        component=COMPONENT,
        healthy=True,
        reason=HEALTHY,
        message=_summary(values, seed=f"{host}:{port}"),
        measured_at=measured_at,
        values=values,
        state=state,
    )


def _probe_cluster(
    target: RedisTarget,
    seed: redis.Redis,
    values: dict[str, Any],
    *,
    timeout: float,
    deadline: float,
    clients: list[redis.Redis],
) -> tuple[dict[str, tuple[int, int]], list[str]] | _Cut:
    """Fill in the cluster figures; the hit counters and the nodes that did not answer."""
    cluster_info = parse_fields(_raw(seed, "CLUSTER", "INFO"))
    nodes = parse_cluster_nodes(_raw(seed, "CLUSTER", "NODES"))
    values["clusterState"] = cluster_info.get("cluster_state")
    values["slotsAssigned"] = _int(cluster_info.get("cluster_slots_assigned"))
    values["slotsOk"] = _int(cluster_info.get("cluster_slots_ok"))
    values["nodes"] = len(nodes)

    infos: list[Mapping[str, Any]] = []
    unreachable: list[str] = []
    for number, node in enumerate(nodes):
        if "myself" in node.flags:
            infos.append(_info(seed))
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            values["nodesReachable"] = len(infos)
            return _Cut(
                TIMEOUT,
                f"The Redis probe ran out of time after {number} of {len(nodes)} nodes "
                f"({timeout:g} s)",
            )
        if node.port == 0 or not (node.ip or node.hostname):
            unreachable.append(f"{node.node_id[:8]} (no address)")
            continue
        # Under TLS the certificate names the announced hostname, not the pod IP.
        host = node.hostname if target.tls and node.hostname else node.ip or str(node.hostname)
        client = _client(target, host=host, port=node.port, timeout=min(timeout, left))
        clients.append(client)
        try:
            infos.append(_info(client))
        except redis.RedisError:
            unreachable.append(node.address)
    values["nodesReachable"] = len(infos)
    return _add_figures(values, infos), unreachable


def _add_figures(
    values: dict[str, Any], infos: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[int, int]]:
    """Sum the data figures over primaries; their hit and miss counters by run_id."""
    primaries = [info for info in infos if info.get("role") == "master"]
    # A single node that is a replica still serves reads: count it rather than nothing.
    counted = primaries or list(infos)
    limits = [int(info.get("maxmemory", 0)) for info in counted]
    values["memoryUsedBytes"] = sum(int(info.get("used_memory", 0)) for info in counted)
    # 0 is "no limit" on any node, and a sum of limits with one unlimited node means nothing.
    values["memoryMaxBytes"] = sum(limits) if limits and all(limits) else None
    values["evictedKeys"] = sum(int(info.get("evicted_keys", 0)) for info in counted)
    return {
        str(info["run_id"]): (
            int(info.get("keyspace_hits", 0)),
            int(info.get("keyspace_misses", 0)),
        )
        for info in counted
        if "run_id" in info
    }


def _cluster_problem(
    values: Mapping[str, Any], *, unreachable: Sequence[str]
) -> tuple[str, str] | None:
    slots = f"{values['slotsOk']} of {SLOTS} slots ok, {values['slotsAssigned']} assigned"
    if values["clusterState"] != "ok":
        return CLUSTER_DOWN, f"Redis cluster state is {values['clusterState']} ({slots})"
    if values["slotsAssigned"] != SLOTS or values["slotsOk"] != SLOTS:
        return SLOTS_UNCOVERED, f"Redis cluster does not serve every slot ({slots})"
    if unreachable:
        shown = ", ".join(unreachable[:3]) + (", ..." if len(unreachable) > 3 else "")
        return NODE_UNREACHABLE, (
            f"{len(unreachable)} of {values['nodes']} Redis nodes did not answer: {shown}"
        )
    return None


def _summary(values: Mapping[str, Any], *, seed: str) -> str:
    ping = duration(values["latencySeconds"])
    if values["mode"] == "cluster":
        text = (
            f"Redis cluster is ok: all {SLOTS} slots served, "
            f"{values['nodesReachable']} of {values['nodes']} nodes answered, PING {ping}"
        )
    else:
        text = f"Redis at {seed} answered PING in {ping}"
    if values["hitRatio"] is not None:
        text += f", hit ratio {values['hitRatio']:.0%} since the last probe"
    return sentence(text)


def _client(target: RedisTarget, *, host: str, port: int, timeout: float) -> redis.Redis:
    return redis.Redis(
        host=host,
        port=port,
        password=target.password,
        ssl=target.tls,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # The default retries would multiply the time a dead node costs.
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        health_check_interval=0,
    )


def _raw(client: redis.Redis, *words: str) -> str:
    # With the subcommand as a separate word redis-py finds no parser for the reply and
    # hands back the text. Its own CLUSTER NODES parser keys nodes by address, so nodes
    # whose address is not known yet would collapse into one. execute_command is untyped.
    execute: Any = client.execute_command
    return str(execute(*words))


def _info(client: redis.Redis) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], client.info())


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _reason(error: redis.RedisError) -> str:
    # AuthenticationError is a ConnectionError in redis-py, so it is checked first.
    text = str(error)
    if isinstance(error, redis.AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return AUTHENTICATION_FAILED
    if isinstance(error, redis.TimeoutError):
        return TIMEOUT
    if isinstance(error, redis.ConnectionError):
        return UNREACHABLE
    return COMMAND_FAILED


def _detail(error: redis.RedisError) -> str:
    return str(error).strip().rstrip(".") or type(error).__name__
