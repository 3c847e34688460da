"""`helm lint` is clean in every mode the chart supports, and the chart matches the repo."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

import pulsebase_operator
from tests.unit.chart import helm

MODES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["a", "b"]},
    "two replicas": {"replicas": 2},
    "monitoring": {
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
    },
    "dashboard": {"dashboard": {"enabled": True, "namespace": "monitoring"}},
}


@pytest.mark.parametrize("values", MODES.values(), ids=MODES.keys())
def test_helm_lint_is_clean(values: dict[str, Any]) -> None:
    done = helm.run(
        "lint",
        str(helm.CHART),
        "--strict",
        "--kube-version",
        helm.KUBE_VERSION,
        *helm.values_args(values),
        stdin=yaml.safe_dump(values) if values else None,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


def test_chart_crd_is_a_copy_of_the_generated_one() -> None:
    # Helm installs what is in the chart's crds/; crds/ at the top is what `make crds` writes.
    chart_copy = (helm.CHART / "crds" / "pulsebase.yaml").read_bytes()
    generated = (helm.REPO / "crds" / "pulsebase.yaml").read_bytes()
    assert chart_copy == generated, (
        "charts/pulsebase-operator/crds/pulsebase.yaml differs from crds/pulsebase.yaml: "
        "copy it over after `make crds`"
    )


def test_app_version_is_the_operator_version() -> None:
    chart = yaml.safe_load((helm.CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == pulsebase_operator.__version__


# Values whose content is a Kubernetes structure, documented as a whole.
DOCUMENTED_WHOLE = frozenset(
    {"resources", "podSecurityContext", "securityContext", "dashboard.labels"}
)


def _leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in DOCUMENTED_WHOLE:
            yield from _leaves(value, f"{path}.")
        else:
            yield path


def test_every_value_is_documented_in_the_install_guide() -> None:
    values = yaml.safe_load((helm.CHART / "values.yaml").read_text())
    guide = (helm.REPO / "docs" / "install.md").read_text()
    undocumented = [path for path in _leaves(values) if f"`{path}`" not in guide]
    assert not undocumented, f"docs/install.md does not list: {undocumented}"
