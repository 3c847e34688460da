from __future__ import annotations

from pulsebase_operator.probes.redis import Node, parse_cluster_nodes, parse_fields

# Shapes from Redis 7 and Valkey: an announced hostname, a node not yet addressed, a node
# in a handshake, a failed primary and its replica.
A, B, C, D, E = (letter * 40 for letter in "abcde")  # node ids are 40 hex digits
CLUSTER_NODES = "\n".join(
    [
        f"{A} 10.0.0.5:6379@16379,pb-redis-0.pb-redis myself,master - 0 0 1 connected 0-5460",
        f"{B} 10.0.0.6:6379@16379,pb-redis-1.pb-redis master,fail - 1 1 2 disconnected 5461-10922",
        f"{C} 10.0.0.7:6379@16379 slave {B} 0 2 2 connected",
        f"{D} :0@0 master,noaddr - 3 3 0 disconnected",
        f"{E} 10.0.0.9:6379@16379 handshake - 0 0 0 connected",
    ]
)


def test_cluster_nodes_give_addresses_hostnames_and_flags() -> None:
    nodes = parse_cluster_nodes(CLUSTER_NODES)

    assert [n.node_id for n in nodes] == [A, B, C, D]
    first = nodes[0]
    assert (first.ip, first.port, first.hostname) == ("10.0.0.5", 6379, "pb-redis-0.pb-redis")
    assert first.flags == frozenset({"myself", "master"})
    assert first.address == "pb-redis-0.pb-redis:6379"
    assert "fail" in nodes[1].flags
    assert (nodes[2].hostname, nodes[2].address) == (None, "10.0.0.7:6379")


def test_a_node_without_an_address_is_kept_so_it_counts_as_unreachable() -> None:
    unaddressed = parse_cluster_nodes(CLUSTER_NODES)[3]
    assert unaddressed == Node(
        node_id=D,
        ip="",
        port=0,
        hostname=None,
        flags=frozenset({"master", "noaddr"}),
    )


def test_nodes_in_a_handshake_are_not_members_yet() -> None:
    assert all("handshake" not in n.flags for n in parse_cluster_nodes(CLUSTER_NODES))


def test_cluster_info_fields() -> None:
    text = "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:10923\r\n"
    assert parse_fields(text) == {
        "cluster_state": "fail",
        "cluster_slots_assigned": "16384",
        "cluster_slots_ok": "10923",
    }
