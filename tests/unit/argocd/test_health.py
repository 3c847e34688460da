"""What Argo CD shows for a PulseBase in each state, for the statuses the operator writes.

Each status comes from the operator's own functions (`readiness.stack_status`,
`paused_status`, `failed_status`) applied to the example's rendered workloads, so a
change to what the operator writes is a change to what these tests feed the script.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pulsebase_operator.api import models
from pulsebase_operator.policy import readiness
from pulsebase_operator.render import stack
from tests.unit.argocd import health_check
from tests.unit.argocd.health_check import Health, assess

pytestmark = pytest.mark.skipif(health_check.interpreter() is None, reason=health_check.MISSING_LUA)

NOW = "2026-12-03T10:00:00Z"
LATER = "2026-12-03T10:05:00Z"
EXAMPLE = health_check.ROOT / "examples" / "pulsebase.yaml"
Live = dict[tuple[str, str], dict[str, Any]]


def applied() -> dict[str, Any]:
    """The example PulseBase as the API server returns it, before any status."""
    with EXAMPLE.open() as stream:
        body = next(d for d in yaml.safe_load_all(stream) if d and d["kind"] == "PulseBase")
    body["metadata"].update(
        generation=1,
        uid="3f1c2a9e-5d7b-4c1e-9a0f-6b2d8e4c7a11",
        creationTimestamp="2026-12-03T09:58:00Z",
    )
    return body  # type: ignore[no-any-return]


def changed(body: Mapping[str, Any], **spec: Any) -> dict[str, Any]:
    """`body` after a user changed its spec: the API server bumps the generation."""
    new = copy.deepcopy(dict(body))
    new["spec"].update(spec)
    new["metadata"]["generation"] += 1
    return new


def workloads(body: Mapping[str, Any]) -> Live:
    """Every workload the operator renders for `body`, as the cluster reports it once
    all pods are ready and every Job has succeeded."""
    rendered = stack.render(models.PulseBase.from_body(dict(body)))
    live: Live = {}
    for obj in rendered.objects:
        if obj["kind"] == "Job":
            live[("Job", obj["metadata"]["name"])] = {**obj, "status": {"succeeded": 1}}
        elif obj["kind"] in ("StatefulSet", "Deployment"):
            live[(obj["kind"], obj["metadata"]["name"])] = rolled_out(obj)
    return live


def rolled_out(obj: Mapping[str, Any], *, generation: int = 1) -> dict[str, Any]:
    want = obj["spec"].get("replicas", 1)
    return {
        **obj,
        "metadata": {**obj["metadata"], "generation": generation},
        "status": {
            "observedGeneration": generation,
            "replicas": want,
            "readyReplicas": want,
            "availableReplicas": want,
            "updatedReplicas": want,
        },
    }


def observed(
    body: Mapping[str, Any],
    live: Live,
    *,
    previous: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """`body` with the status a pass writes after seeing `live`."""
    pb = models.PulseBase.from_body(dict(body))
    rendered = stack.render(pb)
    verdict = readiness.stack_status(
        pb=pb,
        components=rendered.components,
        live=live,
        buckets=rendered.buckets,
        previous=previous or {},
        now=NOW,
        error=error,
    )
    return {**body, "status": readiness.dump(verdict.status)}


def paused(body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` annotated to pause it, with the status the next pass writes."""
    new = copy.deepcopy(dict(body))
    new["metadata"].setdefault("annotations", {})[readiness.PAUSE_ANNOTATION] = "true"
    status = readiness.paused_status(pb_body=new, previous=new.get("status") or {}, now=LATER)
    return {**new, "status": status}


def deleted(body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` after `kubectl delete`, while the operator still holds its finalizer."""
    new = copy.deepcopy(dict(body))
    new["metadata"].update(
        deletionTimestamp=LATER,
        deletionGracePeriodSeconds=0,
        finalizers=[f"{models.GROUP}/finalizer"],
    )
    return new


def ready() -> dict[str, Any]:
    body = applied()
    return observed(body, workloads(body))


def condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in obj["status"]["conditions"] if c["type"] == kind)
    return found


# --- Healthy ------------------------------------------------------------------------


def test_a_ready_stack_is_healthy_with_the_operators_message() -> None:
    obj = ready()
    assert obj["status"]["phase"] == "Ready"
    assert assess(obj) == Health("Healthy", "All components are ready.")


# --- Progressing --------------------------------------------------------------------


def test_a_new_pulsebase_is_progressing_until_the_operator_reports() -> None:
    assert assess(applied()) == Health(
        "Progressing", "Waiting for the operator to observe generation 1."
    )


def test_the_first_pass_is_progressing_while_the_workloads_are_created() -> None:
    body = applied()
    obj = observed(body, live={})

    health = assess(obj)

    assert health.status == "Progressing"
    assert health.message == obj["status"]["message"]
    assert "StatefulSet shop-postgres is being created" in health.message


def test_a_stack_waiting_for_one_component_is_progressing_and_says_which() -> None:
    body = applied()
    live = workloads(body)
    live[("StatefulSet", "shop-postgres")]["status"]["readyReplicas"] = 1
    live[("StatefulSet", "shop-postgres")]["status"]["availableReplicas"] = 1
    obj = observed(body, live)

    assert assess(obj) == Health(
        "Progressing", "Waiting for PostgreSQL: StatefulSet shop-postgres has 1/3 pods ready."
    )


def test_an_upgrade_is_progressing_before_the_operator_has_seen_it() -> None:
    before = ready()
    obj = {**changed(before, version="2.5.0"), "status": before["status"]}

    assert obj["status"]["phase"] == "Ready"
    assert assess(obj) == Health("Progressing", "Waiting for the operator to observe generation 2.")


def test_an_upgrade_is_progressing_while_the_api_rolls_out_then_healthy() -> None:
    before = ready()
    body = changed(before, version="2.5.0")
    live = workloads(body)
    api = live[("Deployment", "shop-api")] = rolled_out(live[("Deployment", "shop-api")])
    api["metadata"]["generation"] = api["status"]["observedGeneration"] = 2
    api["status"]["updatedReplicas"] = 1

    rolling = observed(body, live, previous=before["status"])

    assert rolling["status"]["version"] == "2.4.1"
    assert assess(rolling) == Health(
        "Progressing", "Waiting for the API: Deployment shop-api is rolling out (1/3 updated)."
    )

    api["status"]["updatedReplicas"] = 3
    done = observed(body, live, previous=rolling["status"])

    assert done["status"]["version"] == "2.5.0"
    assert assess(done).status == "Healthy"


# --- Degraded -----------------------------------------------------------------------


def test_a_failed_component_is_degraded_with_the_operators_message() -> None:
    body = applied()
    live = workloads(body)
    live[("Deployment", "shop-api")]["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "shop-api-7d9f" has timed out progressing.',
        }
    ]
    obj = observed(body, live)

    health = assess(obj)

    assert obj["status"]["phase"] == "Degraded"
    assert health == Health("Degraded", obj["status"]["message"])
    assert "Deployment shop-api stopped progressing" in health.message
    # Quotes in the message survive the trip through Lua.
    assert '"shop-api-7d9f"' in health.message


def test_a_pass_the_api_server_refused_is_degraded() -> None:
    body = applied()
    obj = observed(body, workloads(body), error="apply Deployment shop-api: forbidden")

    assert assess(obj) == Health(
        "Degraded", "The last pass failed: apply Deployment shop-api: forbidden"
    )


def test_an_invalid_spec_is_degraded_with_the_field_that_is_wrong() -> None:
    body = applied()
    body["spec"]["api"]["replicas"] = -1
    with pytest.raises(ValidationError) as refused:
        models.PulseBase.from_body(body)
    first = refused.value.errors()[0]
    # The sentence the operator writes (reconcile.stack) for a spec the models refuse.
    message = "The spec is invalid: {}: {}".format(
        ".".join(str(part) for part in first["loc"]), first["msg"]
    )
    status = readiness.failed_status(
        pb_body=body, previous={}, reason="InvalidSpec", message=message, now=NOW
    )
    obj = {**body, "status": status}

    assert status["phase"] == "Failed"
    assert assess(obj) == Health("Degraded", message)
    assert "spec.api.replicas" in message


# --- Suspended ----------------------------------------------------------------------


def test_a_paused_stack_is_suspended_with_the_way_to_resume() -> None:
    obj = paused(ready())

    health = assess(obj)

    assert health.status == "Suspended"
    assert health.message == condition(obj, "Suspended")["message"]
    assert "remove it to resume" in health.message


def test_a_paused_stack_with_a_change_it_holds_back_is_suspended() -> None:
    before = ready()
    obj = paused({**changed(before, version="2.5.0"), "status": before["status"]})

    assert obj["status"]["observedGeneration"] == 1
    assert assess(obj).status == "Suspended"


def test_a_pulsebase_paused_before_its_first_pass_is_suspended() -> None:
    assert assess(paused(applied())).status == "Suspended"


def test_a_resumed_stack_is_healthy_again() -> None:
    pause = paused(ready())
    del pause["metadata"]["annotations"][readiness.PAUSE_ANNOTATION]
    body = {k: v for k, v in pause.items() if k != "status"}

    obj = observed(body, workloads(body), previous=pause["status"])

    assert condition(obj, "Suspended")["status"] == "False"
    assert assess(obj).status == "Healthy"


# --- Deletion -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "before",
    [
        pytest.param(ready, id="ready"),
        pytest.param(lambda: paused(ready()), id="paused"),
        pytest.param(lambda: observed(applied(), live={}), id="progressing"),
        pytest.param(applied, id="never-observed"),
    ],
)
def test_a_pulsebase_being_deleted_is_progressing(before: Any) -> None:
    assert assess(deleted(before())) == Health("Progressing", "The PulseBase is being deleted.")


# --- The harness --------------------------------------------------------------------


def test_the_harness_closes_the_libraries_argo_cd_closes(tmp_path: Path) -> None:
    script = tmp_path / "health.lua"
    script.write_text('return { status = ("healthy"):upper(), message = "" }\n')
    with pytest.raises(AssertionError, match="the health script failed"):
        health_check.assess({"metadata": {}}, script=script)
