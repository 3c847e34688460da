"""Compare before writing: what the plan applies, leaves alone and prunes."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pulsebase_operator.policy import sync
from pulsebase_operator.render.labels import APPLIED_HASH

OWNER = {
    "apiVersion": "pulsebase.io/v1alpha1",
    "kind": "PulseBase",
    "metadata": {"name": "shop", "namespace": "prod", "uid": "uid-1"},
}


def deployment(replicas: int = 2, memory: str = "512Mi") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop-api", "namespace": "prod", "labels": {"a": "b"}},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "api",
                            "env": [{"name": "X", "value": ""}],
                            "resources": {"limits": {"memory": memory}},
                        }
                    ]
                }
            },
        },
    }


def as_live(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns after applying `obj`: stamped, defaulted, canonical."""
    live = copy.deepcopy(sync.stamp(obj, OWNER))
    live["metadata"].update(uid="child-uid", resourceVersion="7", generation=1)
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["terminationMessagePath"] = "/dev/termination-log"
    container["env"] = [{"name": "X"}]  # empty values are omitted on the wire
    container["resources"]["limits"]["memory"] = "512Mi"
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["status"] = {"readyReplicas": 2}
    return live


def test_nothing_to_do_when_live_matches_even_with_server_defaults() -> None:
    result = sync.plan(desired=[deployment()], live=[as_live(deployment())], owner=OWNER)
    assert result.empty and result.unchanged == 1


def test_quantities_in_another_spelling_are_not_a_change() -> None:
    live = as_live(deployment())
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "0.5Gi"
    assert sync.plan(desired=[deployment()], live=[live], owner=OWNER).empty


def test_a_spec_change_is_applied() -> None:
    result = sync.plan(desired=[deployment(replicas=3)], live=[as_live(deployment())], owner=OWNER)
    assert [o["spec"]["replicas"] for o in result.apply] == [3]


def test_drift_made_by_someone_else_is_corrected() -> None:
    live = as_live(deployment())
    live["spec"]["replicas"] = 9
    assert len(sync.plan(desired=[deployment()], live=[live], owner=OWNER).apply) == 1


def test_missing_children_are_created_with_owner_and_stamp() -> None:
    (sent,) = sync.plan(desired=[deployment()], live=[], owner=OWNER).apply
    assert sent["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert sent["metadata"]["ownerReferences"][0]["controller"] is True
    assert sent["metadata"]["annotations"][APPLIED_HASH] == sync.applied_hash(deployment())


def test_children_no_longer_desired_are_pruned() -> None:
    stale = as_live(deployment())
    stale["metadata"]["name"] = "shop-old"
    result = sync.plan(desired=[deployment()], live=[as_live(deployment()), stale], owner=OWNER)
    assert [o["metadata"]["name"] for o in result.prune] == ["shop-old"]


def test_objects_we_did_not_stamp_or_do_not_own_are_never_pruned() -> None:
    foreign = as_live(deployment())
    foreign["metadata"]["name"] = "someone-elses"
    del foreign["metadata"]["annotations"][APPLIED_HASH]
    other_owner = as_live(deployment())
    other_owner["metadata"]["name"] = "other-owner"
    other_owner["metadata"]["ownerReferences"][0]["uid"] = "uid-2"
    result = sync.plan(desired=[], live=[foreign, other_owner], owner=OWNER)
    assert result.prune == ()


scalars = st.one_of(st.integers(-5, 5), st.text(max_size=4), st.booleans())
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(trees)
def test_every_object_covers_itself(tree: Any) -> None:
    assert sync.covers(tree, tree)


@given(st.dictionaries(st.text(max_size=3), trees, min_size=1, max_size=4), trees)
def test_added_server_fields_never_count_as_drift(want: dict[str, Any], extra: Any) -> None:
    have = {**want, "\x00server-added": extra}
    assert sync.covers(have, want)


def job(script: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "shop-init", "namespace": "prod"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "init", "command": ["sh", "-c", script]}]}
            }
        },
    }


def test_a_changed_job_is_replaced_not_patched() -> None:
    live = copy.deepcopy(sync.stamp(job("echo one"), OWNER))
    live["metadata"]["uid"] = "job-uid"
    result = sync.plan(desired=[job("echo two")], live=[live], owner=OWNER)
    assert result.apply == ()
    assert [(r.live["metadata"]["uid"], r.propagation) for r in result.replace] == [
        ("job-uid", "Background")
    ]


def test_a_job_already_being_deleted_is_left_to_finish() -> None:
    live = copy.deepcopy(sync.stamp(job("echo one"), OWNER))
    live["metadata"]["deletionTimestamp"] = "2026-12-03T10:00:00Z"
    result = sync.plan(desired=[job("echo two")], live=[live], owner=OWNER)
    assert result.empty


def statefulset(size: str, replicas: int = 3) -> dict[str, Any]:
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "shop-postgres", "namespace": "prod"},
        "spec": {"replicas": replicas, "volumeClaimTemplates": [claim]},
    }


def test_a_grown_volume_recreates_the_statefulset_orphaning_its_pods() -> None:
    live = copy.deepcopy(sync.stamp(statefulset("50Gi"), OWNER))
    result = sync.plan(desired=[statefulset("60Gi")], live=[live], owner=OWNER)
    (replacement,) = result.replace
    assert replacement.propagation == "Orphan"
    assert replacement.grow_claims_to == "60Gi"
    assert result.apply == ()


def test_other_statefulset_changes_are_patched_in_place() -> None:
    live = copy.deepcopy(sync.stamp(statefulset("50Gi"), OWNER))
    result = sync.plan(desired=[statefulset("50Gi", replicas=5)], live=[live], owner=OWNER)
    assert result.replace == ()
    assert [o["spec"]["replicas"] for o in result.apply] == [5]


def test_quantities_the_server_rounds_or_caps_are_not_drift() -> None:
    assert sync.covers("1m", "0.0001")  # rounded up to a thousandth
    assert sync.covers("103m", "0.0001Ki")
    assert sync.covers("9223372036854775807", "100Ei")  # capped at int64
    assert not sync.covers("2m", "0.0001")
