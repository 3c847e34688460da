"""The pinned helm binary and the chart, for the chart's unit and end-to-end tests.

hack/build-tools.sh builds helm from the Go module proxy beside the control plane
(`make tools`); PULSEBASE_HELM points at another binary. Helm's cache, config and data
folders go to a temporary folder, so tests never read or write the user's repositories.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "pulsebase-operator"
BUILD_TOOLS = REPO / "hack" / "build-tools.sh"
HELM_ENV = "PULSEBASE_HELM"
RELEASE = "pulsebase-operator"
RELEASE_NAMESPACE = "pulsebase-system"
# The control plane the e2e suite runs; the chart must template for it without a cluster.
KUBE_VERSION = "v1.34.3"


@cache
def binary() -> Path | None:
    """The helm binary, or None when it has not been built."""
    env = os.environ.get(HELM_ENV)
    if env:
        return Path(env)
    out = subprocess.run(
        ["bash", str(BUILD_TOOLS), "--print-helm"], capture_output=True, text=True, check=True
    )
    path = Path(out.stdout.strip())
    return path if os.access(path, os.X_OK) else None


@cache
def _home() -> str:
    home = tempfile.mkdtemp(prefix="pulsebase-helm-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    helm = binary()
    assert helm is not None, "helm is not built: run `make tools`"
    home = _home()
    env = {
        **os.environ,
        "HELM_CACHE_HOME": f"{home}/cache",
        "HELM_CONFIG_HOME": f"{home}/config",
        "HELM_DATA_HOME": f"{home}/data",
    }
    return subprocess.run(
        [str(helm), *args], input=stdin, capture_output=True, text=True, env=env, check=False
    )


def values_args(values: dict[str, Any] | None) -> list[str]:
    """Values as a file on stdin: exact types, unlike --set, which guesses them."""
    return ["--values", "-"] if values else []


def template_result(
    values: dict[str, Any] | None = None, *, chart: Path = CHART
) -> subprocess.CompletedProcess[str]:
    return run(
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        RELEASE_NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *values_args(values),
        stdin=yaml.safe_dump(values) if values else None,
    )


def template(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's objects for these values, parsed."""
    done = template_result(values)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
