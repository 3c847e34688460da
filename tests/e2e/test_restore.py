"""Against the real control plane: the object storage's certificate, made once, and a
PulseBase restored from another's backups (its bootstrap, or why there is none yet)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import yaml
from cryptography import x509
from kubernetes import client as k8s

from tests.e2e.conftest import (
    OPERATOR_USER,
    RESYNC_SECONDS,
    Operator,
    apply,
    example,
    wait_for,
)
from tests.e2e.test_stack import MANAGED, get_pb, names
from tests.support.fixtures import audit_lines, count_writes
from tests.support.localcluster import LocalCluster

pytestmark = pytest.mark.e2e


def secret(api: k8s.ApiClient, namespace: str, name: str) -> Any:
    try:
        return k8s.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except k8s.ApiException as error:
        if error.status == 404:
            return None
        raise


def copy_manifest(namespace: str, source: str, target: str | None = None) -> dict[str, Any]:
    recovery: dict[str, Any] = {"source": {"pulseBase": source}}
    if target:
        recovery["targetTime"] = target
    return {
        "apiVersion": "pulsebase.io/v1alpha1",
        "kind": "PulseBase",
        "metadata": {"name": "copy", "namespace": namespace},
        "spec": {"version": "2.4.1", "bootstrap": {"recovery": recovery}},
    }


def refused_copy(
    control_plane: LocalCluster, api_client: k8s.ApiClient, copy: dict[str, Any]
) -> str:
    """Apply the copy, wait for its refusal, check nothing of it was made; the message."""
    namespace = copy["metadata"]["namespace"]
    assert apply(control_plane, copy).returncode == 0
    pb = wait_for(
        lambda: (
            (p := get_pb(api_client, namespace, "copy")).get("status", {}).get("phase") == "Failed"
            and p
        ),
        what="the copy to be refused",
    )
    ready = next(c for c in pb["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "RestoreRefused"
    children = names(api_client, namespace)
    assert "copy-postgres" not in children["StatefulSet"]
    assert not [s for s in children["Secret"] if s.startswith("copy-")]
    return str(pb["status"]["message"])


def test_the_object_storage_certificate_is_made_once_for_its_service_names(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    assert apply(control_plane, *example(MANAGED, namespace)).returncode == 0
    found = wait_for(
        lambda: secret(api_client, namespace, "shop-objectstore-tls"), what="the TLS Secret"
    )
    data = {k: base64.b64decode(v) for k, v in found.data.items()}
    assert set(data) == {"ca.crt", "tls.crt", "tls.key"}
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    service = f"shop-objectstore.{namespace}"
    assert sans.get_values_for_type(x509.DNSName) == [
        "shop-objectstore",
        service,
        f"{service}.svc",
        f"{service}.svc.cluster.local",
    ]

    # Later passes leave it alone: woken by child events, none writes to the Secret.
    version = found.metadata.resource_version
    mark = audit_lines(control_plane.audit_log)
    for touch in range(3):
        control_plane.kubectl(
            "annotate",
            "statefulset",
            "shop-objectstore",
            "-n",
            namespace,
            f"example.com/touched={touch}",
            "--overwrite",
        )
        time.sleep(2)
    writes = [
        w
        for w in count_writes(
            control_plane.audit_log, OPERATOR_USER, since_line=mark, namespace=namespace
        )
        if "/secrets" in w["requestURI"]
    ]
    assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]
    assert secret(api_client, namespace, "shop-objectstore-tls").metadata.resource_version == (
        version
    )


def test_a_restore_from_a_missing_source_creates_nothing_and_says_why(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    message = refused_copy(control_plane, api_client, copy_manifest(namespace, "shop"))
    assert message.startswith("spec.bootstrap.recovery.source.pulseBase: PulseBase shop")
    assert "does not exist" in message

    # Once the source exists, the next pass renders the restore into Patroni's config.
    assert apply(control_plane, *example(MANAGED, namespace)).returncode == 0
    config = wait_for(
        lambda: _config_map(api_client, namespace, "copy-postgres"),
        timeout=RESYNC_SECONDS + 30,
        what="the copy's Patroni ConfigMap",
    )
    patroni = yaml.safe_load(config.data["patroni.yml"])
    assert patroni["bootstrap"]["method"] == "pgbackrest_restore"
    assert "repo1-s3-bucket = shop-backups" in config.data["restore.conf"]
    # The pass applies the ConfigMap before the StatefulSet; the next moment has both.
    wait_for(
        lambda: "copy-postgres" in names(api_client, namespace)["StatefulSet"],
        timeout=30,
        what="the copy's StatefulSet",
    )


def test_a_target_before_the_sources_oldest_backup_is_refused_before_anything_is_made(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    assert apply(control_plane, *example(MANAGED, namespace)).returncode == 0
    wait_for(lambda: get_pb(api_client, namespace, "shop").get("status"), what="shop's status")
    # What the source's reading of its bucket would write; no bucket is read here.
    oldest = {"status": {"backup": {"recoverableFrom": "2026-11-03T02:00:14Z"}}}
    patched = control_plane.kubectl(
        "patch", "pb", "shop", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(oldest),
    )  # fmt: skip
    assert patched.returncode == 0, patched.stderr

    copy = copy_manifest(namespace, "shop", target="2026-11-03T01:00:00Z")
    message = refused_copy(control_plane, api_client, copy)
    assert message.startswith("spec.bootstrap.recovery.targetTime: 2026-11-03T01:00:00Z is")
    assert (
        "PulseBase shop reaches: no restore to a time reaches before 2026-11-03T02:00:14Z"
        in message
    )
    # The source's passes keep what its status says of its backups.
    backup = get_pb(api_client, namespace, "shop")["status"]["backup"]
    assert backup["recoverableFrom"] == "2026-11-03T02:00:14Z"


def _config_map(api: k8s.ApiClient, namespace: str, name: str) -> Any:
    try:
        return k8s.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except k8s.ApiException as error:
        if error.status == 404:
            return None
        raise
