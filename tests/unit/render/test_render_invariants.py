"""Rules every rendered object keeps, whatever the spec: names and labels within
Kubernetes limits, pods within the `restricted` pod security standard, output that is
deterministic, JSON-serialisable and free of anything the API server would drop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsebase_operator.api import models
from pulsebase_operator.render import labels, stack
from pulsebase_operator.render.parts import Object

from .examples import external, pod_spec, pulsebase

WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet", "ReplicaSet")
# Volume types the `restricted` standard allows.
ALLOWED_VOLUMES = {
    "configMap",
    "secret",
    "emptyDir",
    "persistentVolumeClaim",
    "projected",
    "downwardAPI",
    "ephemeral",
    "csi",
}

# Every optional kind served: the invariants hold for the largest output.
SERVED = [kind.key for kind in stack.OPTIONAL_KINDS]

names = st.from_regex(r"\A[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?\Z", fullmatch=True)
versions = st.sampled_from(
    ["2.4.1", "10.20.30-rc.1+build.2024", "1.0.0-" + "a" * 58, "1.0.0+" + "b" * 58]
)


def everything(name: str, version: str = "2.4.1") -> models.PulseBase:
    """The largest stack: every component managed, the biggest Redis topology."""
    return pulsebase(
        name,
        version=version,
        redis={"shards": 32, "replicasPerShard": 5},
        postgres={"instances": 9},
    )


def examples() -> list[models.PulseBase]:
    return [pulsebase(), external(), everything("shop"), pulsebase(api={"replicas": 0})]


def label_maps(value: Any, key: str = "") -> Iterator[dict[str, str]]:
    """Every map of label values: metadata labels, selectors, Service selectors."""
    if isinstance(value, dict):
        if key in ("labels", "matchLabels", "selector") and all(
            isinstance(v, str) for v in value.values()
        ):
            yield value
        for k, v in value.items():
            yield from label_maps(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from label_maps(item, key)


@settings(max_examples=60, deadline=None)
@given(name=names, version=versions)
def test_names_and_label_values_fit_kubernetes_limits(name: str, version: str) -> None:
    rendered = stack.render(everything(name, version), served=SERVED)
    for obj in rendered.objects:
        object_name = obj["metadata"]["name"]
        assert len(object_name) <= 63, object_name
        if obj["kind"] in ("StatefulSet", "CronJob"):
            assert len(object_name) <= 52, object_name
        for label_map in label_maps(obj):
            for label, value in label_map.items():
                assert len(value) <= 63, (label, value)
    for secret in rendered.secrets:
        assert len(secret.name) <= 63


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What keeps a pod spec out of the `restricted` pod security standard (v1.30)."""
    problems = []
    pod = spec.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(field)
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    for c in spec.get("initContainers", []) + spec["containers"]:
        ctx = c.get("securityContext", {})
        where = f"container {c['name']}"
        if ctx.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
            problems.append(f"{where}: runAsNonRoot")
        if ctx.get("runAsUser", pod.get("runAsUser")) == 0:
            problems.append(f"{where}: runAsUser 0")
        seccomp = ctx.get("seccompProfile", pod.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation")
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged")
        capabilities = ctx.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{where}: capabilities.drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: capabilities.add")
        if any("hostPort" in port for port in c.get("ports", [])):
            problems.append(f"{where}: hostPort")
    return problems


def test_the_checker_notices_a_privileged_pod() -> None:
    spec = {
        "hostNetwork": True,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [{"name": "bad", "securityContext": {"privileged": True}}],
    }
    problems = restricted_violations(spec)
    assert "hostNetwork" in problems
    assert any("hostPath" in p for p in problems)
    assert "container bad: privileged" in problems
    assert "container bad: allowPrivilegeEscalation" in problems


@pytest.mark.parametrize("pb", examples(), ids=["managed", "external", "largest", "no-api"])
def test_every_pod_passes_the_restricted_pod_security_standard(pb: models.PulseBase) -> None:
    workloads = [o for o in stack.render(pb, served=SERVED).objects if o["kind"] in WORKLOADS]
    assert workloads
    for workload in workloads:
        assert restricted_violations(pod_spec(workload)) == [], workload["metadata"]["name"]


@pytest.mark.parametrize("pb", examples(), ids=["managed", "external", "largest", "no-api"])
def test_every_container_is_read_only_with_resources_and_probes(pb: models.PulseBase) -> None:
    for workload in stack.render(pb, served=SERVED).objects:
        if workload["kind"] not in WORKLOADS:
            continue
        spec = pod_spec(workload)
        assert spec["enableServiceLinks"] is False
        # Patroni and the backup jobs talk to the API server; nothing else does.
        talks_to_api = (
            workload["kind"] == "StatefulSet" and workload["metadata"]["name"].endswith("-postgres")
        ) or workload["metadata"]["labels"][labels.COMPONENT_LABEL] == "backups"
        if talks_to_api:
            assert spec["automountServiceAccountToken"] is True
        else:
            assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["resources"]
            if workload["kind"] in ("Deployment", "StatefulSet"):
                assert "readinessProbe" in c
                assert "livenessProbe" in c


def test_rendering_twice_gives_identical_output() -> None:
    for pb in examples():
        first, second = stack.render(pb, served=SERVED), stack.render(pb, served=SERVED)
        assert first == second
        assert json.dumps(first.objects, sort_keys=True) == json.dumps(
            second.objects, sort_keys=True
        )


def test_output_is_json_serialisable_as_plain_types() -> None:
    for pb in examples():
        objects = stack.render(pb, served=SERVED).objects
        assert json.loads(json.dumps(list(objects))) == list(objects)


def empty_values(value: Any, path: str = "") -> Iterator[str]:
    """Paths of empty maps, lists and string fields, which the API server drops on
    write (an empty string inside a list, such as the core apiGroup, is kept)."""
    if isinstance(value, dict):
        # An empty emptyDir is how the volume type is chosen; the server keeps it.
        if not value and not path.endswith(".emptyDir"):
            yield path
        for k, v in value.items():
            yield from empty_values(v, f"{path}.{k}")
    elif isinstance(value, list):
        if not value:
            yield path
        for i, item in enumerate(value):
            if item != "":
                yield from empty_values(item, f"{path}[{i}]")
    elif value == "":
        yield path


@pytest.mark.parametrize("pb", examples(), ids=["managed", "external", "largest", "no-api"])
def test_objects_have_nothing_the_api_server_would_drop(pb: models.PulseBase) -> None:
    for obj in stack.render(pb, served=SERVED).objects:
        assert list(empty_values(obj)) == [], obj["metadata"]["name"]


@pytest.mark.parametrize("pb", examples(), ids=["managed", "external", "largest", "no-api"])
def test_objects_carry_namespace_and_component_labels_and_nothing_the_reconciler_owns(
    pb: models.PulseBase,
) -> None:
    component_values = {
        "postgres",
        "redis",
        "objectstore",
        "api",
        "edge",
        "monitoring",
        "backups",
        "drill",
    }
    for obj in stack.render(pb, served=SERVED).objects:
        metadata: dict[str, Any] = obj["metadata"]
        assert {"apiVersion", "kind", "metadata"} <= set(obj)
        assert "status" not in obj
        assert "ownerReferences" not in metadata
        assert metadata["namespace"] == pb.metadata.namespace
        assert labels.common(pb.metadata.name).items() <= metadata["labels"].items()
        assert metadata["labels"][labels.COMPONENT_LABEL] in component_values


def test_object_identities_are_unique() -> None:
    objects: tuple[Object, ...] = stack.render(everything("shop"), served=SERVED).objects
    identities = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(identities) == len(set(identities))


def pod_template(workload: Object) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]  # type: ignore[no-any-return]
    return workload["spec"]["template"]  # type: ignore[no-any-return]


def test_workloads_are_selected_only_by_their_own_pods() -> None:
    """A selector that matches another workload's pods would let PDBs, Services and
    spread constraints count the wrong pods."""
    objects = stack.render(pulsebase(), served=SERVED).objects
    templates = [
        (o["metadata"]["name"], pod_template(o)["metadata"]["labels"])
        for o in objects
        if o["kind"] in WORKLOADS
    ]
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        selector = obj["spec"]["selector"]["matchLabels"]
        matched = [name for name, pod in templates if selector.items() <= pod.items()]
        assert matched == [obj["metadata"]["name"]]


def test_volume_claims_carry_no_label_a_gitops_tool_would_adopt_them_by() -> None:
    from pulsebase_operator.api import models
    from pulsebase_operator.render import stack

    pb = models.PulseBase.from_body(
        {"metadata": {"name": "shop", "namespace": "prod"}, "spec": {"version": "2.4.1"}}
    )
    for obj in stack.render(pb, served=SERVED).objects:
        for template in obj.get("spec", {}).get("volumeClaimTemplates", []):
            assert "app.kubernetes.io/instance" not in template["metadata"]["labels"]
