"""GitOps against the real control plane: the Argo CD examples pass the API server's
validation, the operator leaves `spec` exactly as Git has it, and the health check
reads live objects the way Argo CD would."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from tests.e2e.conftest import OPERATOR_USER, RESYNC_SECONDS, Operator, apply, wait_for
from tests.e2e.test_stack import condition, ready
from tests.support.fixtures import audit_lines, count_writes
from tests.support.localcluster import LocalCluster
from tests.unit.argocd import health_check

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "examples" / "argocd" / "stack" / "overlays"
EXAMPLE = ROOT / "examples" / "pulsebase.yaml"


def rendered(cluster: LocalCluster, overlay: str) -> str:
    done = cluster.kubectl("kustomize", str(OVERLAYS / overlay))
    assert done.returncode == 0, done.stderr
    return done.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def pulsebase_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "PulseBase")


def staging_in(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    """The staging overlay's PulseBase, moved into the test's namespace."""
    pb = pulsebase_of(documents(rendered(cluster, "staging")))
    pb["metadata"]["namespace"] = namespace
    return pb


def get_json(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    done = cluster.kubectl("get", "pulsebase", name, "-n", namespace, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def spec_writes(cluster: LocalCluster, since_line: int) -> list[str]:
    """Requests by the operator that could change a PulseBase's spec: any write to the
    resource itself rather than its status subresource."""
    return [
        f"{e['verb']} {e['requestURI']}"
        for e in count_writes(cluster.audit_log, OPERATOR_USER, since_line=since_line)
        if e.get("objectRef", {}).get("resource") == "pulsebases"
        and e["objectRef"].get("subresource") != "status"
    ]


def passes_for(operator: Operator, namespace: str, since_line: int) -> int:
    return sum(
        '"pass complete"' in line and f'"{namespace}"' in line
        for line in operator.log_lines()[since_line:]
    )


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_each_overlay_passes_a_server_side_dry_run(
    control_plane: LocalCluster, crd_installed: None, overlay: str
) -> None:
    text = rendered(control_plane, overlay)
    namespaces = [d for d in documents(text) if d["kind"] == "Namespace"]
    assert namespaces, "the overlay should bring its namespace"

    # A namespaced object's dry run needs its namespace to exist, so those are real.
    done = apply(control_plane, *namespaces)
    assert done.returncode == 0, done.stderr
    try:
        done = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=text)
        assert done.returncode == 0, done.stderr
        assert "pulsebase.pulsebase.io/shop created (server dry run)" in done.stdout

        # The dry run is the real validation: the same document with a bad value fails.
        broken = copy.deepcopy(pulsebase_of(documents(text)))
        broken["spec"]["version"] = "v2.4.1"
        done = control_plane.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(broken)
        )
        assert done.returncode != 0
        assert "spec.version" in done.stderr and "semantic version" in done.stderr
    finally:
        for namespace in namespaces:
            control_plane.kubectl("delete", "namespace", namespace["metadata"]["name"])


def test_the_overlays_are_the_example_with_their_differences(
    control_plane: LocalCluster,
) -> None:
    with EXAMPLE.open() as stream:
        example = pulsebase_of([d for d in yaml.safe_load_all(stream) if d])["spec"]
    production = pulsebase_of(documents(rendered(control_plane, "production")))
    staging = pulsebase_of(documents(rendered(control_plane, "staging")))

    assert production["spec"] == example
    assert production["metadata"]["namespace"] == "pulsebase-production"

    smaller = copy.deepcopy(example)
    smaller["api"]["replicas"] = 2
    smaller["postgres"]["instances"] = 1
    smaller["cdn"] = {"provider": "none"}
    del smaller["deletionPolicy"]
    assert staging["spec"] == smaller
    assert staging["metadata"]["namespace"] == "pulsebase-staging"


def test_spec_and_generation_stay_as_applied_through_ready_and_a_restart(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    pb = staging_in(control_plane, namespace)
    done = apply(control_plane, pb)
    assert done.returncode == 0, done.stderr

    live = wait_for(lambda: ready(api_client, namespace, "shop"), timeout=180, what="Ready")
    # Server-side defaults would show up here as fields nobody applied.
    assert live["spec"] == pb["spec"]
    assert live["metadata"]["generation"] == 1

    audit_mark = audit_lines(control_plane.audit_log)
    log_mark = len(operator.log_lines())
    operator.stop()
    operator.start()
    # The first pass runs at start; the second comes from a watch event or the resync.
    wait_for(
        lambda: passes_for(operator, namespace, log_mark) >= 2,
        timeout=RESYNC_SECONDS + 30,
        what="two passes over the stack after the restart",
    )

    live = wait_for(lambda: ready(api_client, namespace, "shop"), timeout=30, what="Ready")
    assert live["spec"] == pb["spec"]
    assert live["metadata"]["generation"] == 1
    assert spec_writes(control_plane, audit_mark) == []


@pytest.mark.skipif(health_check.interpreter() is None, reason=health_check.MISSING_LUA)
def test_the_health_check_reads_a_live_stack_as_healthy_then_suspended(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    done = apply(control_plane, staging_in(control_plane, namespace))
    assert done.returncode == 0, done.stderr
    wait_for(lambda: ready(api_client, namespace, "shop"), timeout=180, what="Ready")

    obj = get_json(control_plane, namespace, "shop")
    assert health_check.assess(obj) == health_check.Health("Healthy", obj["status"]["message"])

    done = control_plane.kubectl(
        "annotate", "pulsebase", "shop", "-n", namespace, "pulsebase.io/paused=true"
    )
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: (
            (c := condition(get_json(control_plane, namespace, "shop"), "Suspended"))
            and c["status"] == "True"
        ),
        timeout=30,
        what="Suspended=True",
    )

    obj = get_json(control_plane, namespace, "shop")
    health = health_check.assess(obj)
    assert health.status == "Suspended"
    assert "remove it to resume" in health.message
