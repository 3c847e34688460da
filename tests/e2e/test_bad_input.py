"""Bad manifests are refused by the real API server, naming the field, and create nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.e2e.conftest import GROUP, PLURAL, VERSION, Operator, wait_for
from tests.support.invalid_cases import CREATE_CASES, OPERATOR_CASES, UPDATE_CASES, Case
from tests.support.localcluster import LocalCluster

pytestmark = pytest.mark.e2e


def manifest(case: Case, spec: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PulseBase",
        "metadata": {"name": case.name, "namespace": namespace},
        "spec": spec,
    }


def refusal(api: k8s.ApiClient, body: dict[str, Any], *, replace: bool = False) -> str:
    """Send the manifest; return the API server's message, failing if it was accepted."""
    custom = k8s.CustomObjectsApi(api)
    meta = body["metadata"]
    if replace:
        current = custom.get_namespaced_custom_object(
            GROUP, VERSION, meta["namespace"], PLURAL, meta["name"]
        )
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        send = lambda: custom.replace_namespaced_custom_object(  # noqa: E731
            GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], body
        )
    else:
        send = lambda: custom.create_namespaced_custom_object(  # noqa: E731
            GROUP, VERSION, meta["namespace"], PLURAL, body
        )
    with pytest.raises(k8s.ApiException) as caught:
        send()
    assert caught.value.status == 422, caught.value.body
    return str(caught.value.body)


@pytest.fixture(scope="module")
def bad_input_namespace(control_plane: LocalCluster, crd_installed: None) -> str:
    name = "e2e-bad-input"
    control_plane.kubectl("create", "namespace", name)
    return name


@pytest.mark.parametrize("case", CREATE_CASES, ids=lambda c: c.id)
def test_invalid_spec_is_refused_on_create(
    api_client: k8s.ApiClient, bad_input_namespace: str, case: Case
) -> None:
    message = refusal(api_client, manifest(case, case.spec, bad_input_namespace))
    assert case.field_path in message, message
    assert case.message in message, message


@pytest.mark.parametrize("case", UPDATE_CASES, ids=lambda c: c.id)
def test_forbidden_change_is_refused_on_update(
    api_client: k8s.ApiClient, bad_input_namespace: str, case: Case
) -> None:
    custom = k8s.CustomObjectsApi(api_client)
    name = f"upd-{case.id}"[:40].rstrip("-")
    case = Case(**{**case.__dict__, "name": name})
    assert case.before is not None
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        bad_input_namespace,
        PLURAL,
        manifest(case, case.before, bad_input_namespace),
    )
    try:
        message = refusal(api_client, manifest(case, case.spec, bad_input_namespace), replace=True)
        assert case.field_path in message, message
        assert case.message in message, message
        stored = custom.get_namespaced_custom_object(
            GROUP, VERSION, bad_input_namespace, PLURAL, name
        )
        assert stored["spec"] == case.before  # nothing of the refused change was kept
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, bad_input_namespace, PLURAL, name)


def test_refused_manifests_create_no_children(
    api_client: k8s.ApiClient, bad_input_namespace: str, operator: object
) -> None:
    time.sleep(5)  # give the running operator its chance to act
    apps = k8s.AppsV1Api(api_client)
    core = k8s.CoreV1Api(api_client)
    assert apps.list_namespaced_stateful_set(bad_input_namespace).items == []
    assert apps.list_namespaced_deployment(bad_input_namespace).items == []
    secrets = core.list_namespaced_secret(bad_input_namespace).items
    assert all(not s.metadata.name.startswith("bad-") for s in secrets)


@pytest.mark.parametrize("case", OPERATOR_CASES, ids=lambda c: c.id)
def test_a_spec_only_the_models_refuse_fails_with_invalid_spec_naming_the_field(
    api_client: k8s.ApiClient, operator: Operator, namespace: str, case: Case
) -> None:
    custom = k8s.CustomObjectsApi(api_client)
    # The API server accepts it: these rules need a cron parser, a time zone database
    # or the other PulseBase, which a CEL rule does not have.
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest(case, case.spec, namespace)
    )

    def failed() -> dict[str, Any] | None:
        pb = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, case.name)
        status = pb.get("status") or {}
        return status if status.get("phase") == "Failed" else None

    status = wait_for(failed, timeout=60, what=f"{case.id} reported Failed")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "InvalidSpec"
    assert case.field_path.removeprefix("spec.") in ready["message"]
    assert case.message in ready["message"]
    apps = k8s.AppsV1Api(api_client)
    assert apps.list_namespaced_stateful_set(namespace).items == []
