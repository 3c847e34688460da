"""Managed cache: a Valkey cluster (BSD licensed, Redis protocol) in cluster mode.

Each node announces its stable pod DNS name, so clients follow redirects by name and a
restarted pod with a new IP stays reachable. A bootstrap Job forms the cluster, and
grows it when shards or replicas are added; its name carries the topology because Jobs
are immutable, so a new topology runs a new Job. In external mode nothing is rendered.
"""

from __future__ import annotations

from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.api.quantity import parse_quantity
from pulsebase_operator.render import images, naming, objects, pods
from pulsebase_operator.render.parts import Component, Object, Part, Workload

COMPONENT = "redis"
PORT = 6379
BUS_PORT = 16379
CONFIG_DIR = "/etc/valkey"


def render(pb: models.PulseBase) -> Part:
    spec = pb.spec.redis
    name = pb.metadata.name
    if spec.mode is models.Mode.EXTERNAL:
        assert spec.external is not None  # the model requires it in external mode
        return Part(
            objects=(), component=Component(COMPONENT, "external", spec.external.endpoints[0])
        )
    config = _config_map(pb)
    children: tuple[Object, ...] = (
        config,
        _headless_service(pb),
        _stateful_set(pb, config_hash=objects.config_hash(config["data"])),
        objects.pdb(pb, naming.redis(name), COMPONENT, max_unavailable=1),
        _bootstrap_job(pb),
    )
    return Part(
        objects=children,
        component=Component(
            name=COMPONENT,
            mode="managed",
            endpoint=f"{naming.redis(name)}.{pb.metadata.namespace}.svc:{PORT}",
            workloads=(
                Workload("StatefulSet", naming.redis(name)),
                Workload("Job", bootstrap_job_name(pb)),
            ),
        ),
    )


def node_count(pb: models.PulseBase) -> int:
    spec = pb.spec.redis
    return spec.shards * (1 + spec.replicas_per_shard)


def node_hosts(pb: models.PulseBase) -> list[str]:
    """The stable DNS name of every node, in ordinal order."""
    name = pb.metadata.name
    service = f"{naming.redis(name)}.{pb.metadata.namespace}.svc"
    return [f"{naming.redis(name)}-{i}.{service}" for i in range(node_count(pb))]


def node_addresses(pb: models.PulseBase) -> list[str]:
    return [f"{host}:{PORT}" for host in node_hosts(pb)]


def bootstrap_job_name(pb: models.PulseBase) -> str:
    spec = pb.spec.redis
    topology = f"{spec.shards}x{1 + spec.replicas_per_shard}"
    return naming.child(pb.metadata.name, f"redis-init-{topology}")


def valkey_conf(pb: models.PulseBase) -> str:
    spec = pb.spec.redis
    return "\n".join(
        [
            f"port {PORT}",
            "dir /data",
            "cluster-enabled yes",
            "cluster-config-file /data/nodes.conf",
            "cluster-node-timeout 5000",
            # Redirects name the node's stable DNS name (set per pod on the command
            # line), not an IP that changes when the pod is rescheduled.
            "cluster-preferred-endpoint-type hostname",
            # A cache: nothing but nodes.conf is persisted.
            "appendonly no",
            'save ""',
            f"maxmemory {int(parse_quantity(spec.max_memory))}",
            f"maxmemory-policy {spec.eviction_policy.value}",
            # Every client must authenticate (requirepass), so the loopback-only
            # protection is not needed and would lock out other pods.
            "protected-mode no",
            "",
        ]
    )


def _config_map(pb: models.PulseBase) -> Object:
    name = naming.redis(pb.metadata.name)
    return objects.config_map(pb, name, COMPONENT, data={"valkey.conf": valkey_conf(pb)})


def _headless_service(pb: models.PulseBase) -> Object:
    return objects.headless_service(
        pb,
        naming.redis(pb.metadata.name),
        COMPONENT,
        ports=[
            {"name": "client", "port": PORT, "targetPort": "client"},
            {"name": "bus", "port": BUS_PORT, "targetPort": "bus"},
        ],
    )


def _stateful_set(pb: models.PulseBase, *, config_hash: str) -> Object:
    name = pb.metadata.name
    spec = pb.spec.redis
    service = f"{naming.redis(name)}.{pb.metadata.namespace}.svc"
    container: dict[str, Any] = {
        "name": "valkey",
        "image": spec.image or images.redis(),
        # $(VAR) is expanded by Kubernetes from the env below, not by a shell.
        "command": [
            "valkey-server",
            f"{CONFIG_DIR}/valkey.conf",
            "--requirepass",
            "$(REDIS_PASSWORD)",
            "--masterauth",
            "$(REDIS_PASSWORD)",
            "--cluster-announce-hostname",
            "$(POD_HOSTNAME)",
        ],
        "env": [
            pods.field_env("POD_NAME", "metadata.name"),
            pods.plain_env("POD_HOSTNAME", f"$(POD_NAME).{service}"),
            pods.secret_env("REDIS_PASSWORD", naming.redis_secret(name), "password"),
        ],
        "ports": [
            {"name": "client", "containerPort": PORT},
            {"name": "bus", "containerPort": BUS_PORT},
        ],
        "readinessProbe": pods.exec_probe(
            [
                "sh",
                "-c",
                'valkey-cli --no-auth-warning -a "$REDIS_PASSWORD" ping | grep -q PONG',
            ]
        ),
        "livenessProbe": pods.tcp_probe("client", failures=6),
        "securityContext": pods.container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": "/data"},
        ],
    }
    if resources := pods.resources(spec.resources):
        container["resources"] = resources
    return objects.stateful_set(
        pb,
        name=naming.redis(name),
        component=COMPONENT,
        replicas=node_count(pb),
        # Every node must be up before the cluster can form; order does not matter.
        parallel=True,
        containers=[container],
        volumes=[{"name": "config", "configMap": {"name": naming.redis(name)}}],
        storage=spec.storage,
        config_hash=config_hash,
    )


# Forms the cluster, or grows it to the topology in the environment; safe to run any
# number of times. A node that knows only itself has never joined: when node 0 is such
# a node there is no cluster yet and all nodes are created together. Otherwise fresh
# nodes join, first as primaries until there are enough shards, and slots are moved
# onto them before any replica is added, because a replica must follow a primary that
# serves slots. Each replica then follows the primary with the fewest, and a primary
# left with more than its share (after an interrupted run) hands one to a primary with
# fewer; a slot left half-migrated is fixed first. Roles are read from each node about
# itself: what gossip has told node 0 lags behind by a moment.
BOOTSTRAP_SCRIPT = r"""
set -eu
first=${NODES%% *}
expected=$(echo $NODES | wc -w)

cli() { valkey-cli --no-auth-warning -a "$REDIS_PASSWORD" "$@"; }
at() { host=${1%:*} port=${1##*:}; shift; cli -h "$host" -p "$port" "$@" | tr -d '\r'; }
info() { at "$1" cluster info | sed -n "s/^$2://p"; }
retry() {
  tries=0
  until "$@"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then echo "gave up waiting for: $*" >&2; exit 1; fi
    sleep 5
  done
}

answers() { [ "$(at "$1" ping 2>/dev/null)" = PONG ]; }
fresh() { [ "$(info "$1" cluster_known_nodes)" -le 1 ]; }
# "<id> <address> <flags> <primary id or ->" of every joined node, as it sees itself.
roles() {
  for member in $NODES; do
    fresh "$member" || at "$member" cluster nodes | awk '$3 ~ /myself/ { print $1, $2, $3, $4 }'
  done
}
primaries() { roles | awk '$3 ~ /master/' | wc -l; }
# "<replicas> <primary id>" for every primary, fewest replicas first.
shares() {
  roles | awk '
    $3 ~ /master/ { primary[$1] = 1 }
    $3 ~ /slave/ { replicas[$4]++ }
    END { for (id in primary) print replicas[id] + 0, id }' | sort -n
}
follows() { at "$1" cluster nodes | awk -v p="$2" '$3 ~ /myself/ && $4 == p' | grep -q .; }
gossiped() {
  joined=$(info "$first" cluster_known_nodes)
  for member in $NODES; do
    known=$(info "$member" cluster_known_nodes)
    [ "$known" -le 1 ] || [ "$known" -eq "$joined" ] || return 1
  done
}
settled() { cli --cluster check "$first" >/dev/null 2>&1; }
converged() { gossiped && settled; }
complete() {
  [ "$(info "$first" cluster_state)" = ok ] &&
    [ "$(info "$first" cluster_known_nodes)" -eq "$expected" ] &&
    [ "$(info "$first" cluster_size)" -eq "$SHARDS" ] &&
    [ "$(primaries)" -eq "$SHARDS" ] &&
    [ "$(shares | awk -v r="$REPLICAS" '$1 != r' | wc -l)" -eq 0 ]
}

for node in $NODES; do retry answers "$node"; done

if complete; then
  echo "cluster complete: $expected nodes, $SHARDS shards"
  exit 0
fi

if fresh "$first"; then
  cli --cluster create $NODES --cluster-replicas "$REPLICAS" --cluster-yes
else
  retry gossiped
  # A run stopped halfway through a rebalance leaves a slot open.
  settled || cli --cluster fix "$first" --cluster-yes

  for node in $NODES; do
    fresh "$node" || continue
    [ "$(primaries)" -lt "$SHARDS" ] || break
    retry converged
    cli --cluster add-node "$node" "$first"
    retry gossiped
  done
  retry converged
  cli --cluster rebalance "$first" --cluster-use-empty-masters
  retry converged

  while :; do
    low=$(shares | head -n 1)
    high=$(shares | tail -n 1)
    [ "${high%% *}" -gt "$REPLICAS" ] && [ "${low%% *}" -lt "$REPLICAS" ] || break
    mover=$(roles |
      awk -v p="${high#* }" '$3 ~ /slave/ && $4 == p { split($2, a, "@"); print a[1]; exit }')
    at "$mover" cluster replicate "${low#* }"
    retry follows "$mover" "${low#* }"
  done

  for node in $NODES; do
    fresh "$node" || continue
    retry converged
    primary=$(shares | head -n 1)
    cli --cluster add-node "$node" "$first" --cluster-slave --cluster-master-id "${primary#* }"
    retry follows "$node" "${primary#* }"
  done
fi

retry complete
echo "cluster complete: $expected nodes, $SHARDS shards"
"""


def _bootstrap_job(pb: models.PulseBase) -> Object:
    name = pb.metadata.name
    spec = pb.spec.redis
    return objects.script_job(
        pb,
        name=bootstrap_job_name(pb),
        component=COMPONENT,
        container="bootstrap",
        image=spec.image or images.redis(),
        script=BOOTSTRAP_SCRIPT,
        env=[
            pods.plain_env("NODES", " ".join(node_addresses(pb))),
            pods.plain_env("SHARDS", str(spec.shards)),
            pods.plain_env("REPLICAS", str(spec.replicas_per_shard)),
            pods.secret_env("REDIS_PASSWORD", naming.redis_secret(name), "password"),
        ],
    )
