"""Fixtures for running the operator against the real local control plane."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.support.localcluster import LocalCluster, free_port

GROUP, VERSION, PLURAL = "pulsebase.io", "v1alpha1", "pulsebases"
OPERATOR_USER = "pulsebase-operator"
# Long enough that a pass within seconds can only have been woken by a watch event.
RESYNC_SECONDS = 30


class Operator:
    """The operator as a real process, started and stopped by the test."""

    def __init__(
        self,
        cluster: LocalCluster,
        log_path: Path,
        *,
        kubeconfig: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.cluster = cluster
        self.log_path = log_path
        self.kubeconfig = kubeconfig or cluster.operator_kubeconfig
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pulsebase_operator.cli",
                "run",
                "--kubeconfig",
                str(self.kubeconfig),
                "--resync-seconds",
                str(RESYNC_SECONDS),
                "--log-level",
                "DEBUG",
                "--metrics-address",
                f"127.0.0.1:{self.metrics_port}",
                # KWOK runs no containers, so nothing answers behind a managed Service;
                # tests that probe real servers ask for --probes external.
                *(() if "--probes" in self.extra_args else ("--probes", "none")),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, sig: int = signal.SIGTERM) -> bool:
        """Signal the process; True when it exited by itself within 15 s."""
        if self.process is None:
            return True
        self.process.send_signal(sig)
        exited = True
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            exited = False
            self.process.kill()
            self.process.wait()
        self.process = None
        return exited

    def metric(self, name: str) -> float:
        """The sum of every sample of `name` on the operator's /metrics page."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((name + " ", name + "{"))
        )

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


@pytest.fixture(scope="session")
def api_client(control_plane: LocalCluster) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(
        config_file=str(control_plane.kubeconfig), client_configuration=configuration
    )
    return k8s.ApiClient(configuration)


@pytest.fixture(scope="session")
def crd_installed(control_plane: LocalCluster) -> None:
    done = control_plane.kubectl("apply", "--server-side", "-f", "crds/")
    assert done.returncode == 0, done.stderr
    control_plane.wait_established("pulsebases.pulsebase.io")


@pytest.fixture(scope="session")
def operator(
    control_plane: LocalCluster,
    crd_installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    running = Operator(control_plane, tmp_path_factory.mktemp("operator") / "operator.log")
    running.start()
    yield running
    running.stop()
    if os.environ.get("PULSEBASE_SHOW_OPERATOR_LOG"):
        print(running.log_path.read_text())


@pytest.fixture(scope="module")
def sole_operator(operator: Operator) -> Iterator[None]:
    """Pause the shared operator for a module that runs an operator of its own: both
    would reconcile the namespaces under test."""
    operator.stop()
    yield
    operator.start()


# prometheus-operator's PrometheusRule, reduced to what the API server needs to serve it.
PROMETHEUS_RULE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "prometheusrules.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "plural": "prometheusrules",
            "singular": "prometheusrule",
            "kind": "PrometheusRule",
            "listKind": "PrometheusRuleList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                },
            }
        ],
    },
}


def install_prometheus_rule_crd(cluster: LocalCluster) -> None:
    assert apply(cluster, PROMETHEUS_RULE_CRD).returncode == 0
    name = PROMETHEUS_RULE_CRD["metadata"]["name"]
    cluster.wait_established(name)


def remove_prometheus_rule_crd(cluster: LocalCluster) -> None:
    """Delete the CRD and wait until it is gone, with every PrometheusRule in it."""
    name = PROMETHEUS_RULE_CRD["metadata"]["name"]
    done = cluster.kubectl("delete", "crd", name, "--ignore-not-found", "--timeout=120s")
    assert done.returncode == 0, done.stderr


@pytest.fixture
def prometheus_rule_crd(control_plane: LocalCluster) -> Iterator[None]:
    """The PrometheusRule kind served for one test, and removed after it in any case:
    the other tests share this control plane and expect a cluster without it."""
    install_prometheus_rule_crd(control_plane)
    try:
        yield
    finally:
        remove_prometheus_rule_crd(control_plane)


@pytest.fixture
def namespace(control_plane: LocalCluster) -> Iterator[str]:
    """A fresh namespace that enforces the restricted pod security standard."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    apply(control_plane, manifest)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


def apply(
    cluster: LocalCluster, *manifests: dict[str, Any], server_side: bool = False
) -> subprocess.CompletedProcess[str]:
    args = ["apply", "-f", "-"] + (["--server-side"] if server_side else [])
    done = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=yaml.safe_dump_all(manifests),
        text=True,
        capture_output=True,
        check=False,
    )
    return done


def example(path: str, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
    """The documents of an example, moved into the test's namespace."""
    with open(path) as stream:
        docs = [d for d in yaml.safe_load_all(stream) if d and d["kind"] != "Namespace"]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        if name and doc["kind"] == "PulseBase":
            doc["metadata"]["name"] = name
    return docs


def wait_for(predicate: Callable[[], Any], *, timeout: float = 120, what: str = "") -> Any:
    """Poll until `predicate` returns something truthy; fail with `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}; last: {last!r}")
