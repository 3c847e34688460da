"""The Argo CD Applications in examples/argocd point at what this repository holds and
order the operator before the stack. (The end-to-end suite renders the overlays and
validates them against the API server.)"""

from __future__ import annotations

from typing import Any

import yaml

from tests.unit.argocd.health_check import ROOT

EXAMPLES = ROOT / "examples" / "argocd"
WAVE = "argocd.argoproj.io/sync-wave"


def application(name: str) -> dict[str, Any]:
    with (EXAMPLES / name).open() as stream:
        app: dict[str, Any] = yaml.safe_load(stream)
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    return app


def kustomization(path: str) -> dict[str, Any]:
    with (ROOT / path / "kustomization.yaml").open() as stream:
        found: dict[str, Any] = yaml.safe_load(stream)
    return found


def test_the_operator_is_synced_in_a_wave_before_the_stack() -> None:
    operator, stack = application("operator.yaml"), application("stack.yaml")
    assert int(operator["metadata"]["annotations"][WAVE]) < int(
        stack["metadata"]["annotations"][WAVE]
    )


def test_the_stack_syncs_before_its_crd_exists_and_retries() -> None:
    policy = application("stack.yaml")["spec"]["syncPolicy"]
    assert "SkipDryRunOnMissingResource=true" in policy["syncOptions"]
    assert policy["retry"]["limit"] > 0


def test_the_operator_application_installs_the_chart_in_this_repository() -> None:
    source = application("operator.yaml")["spec"]["source"]
    assert source["path"] == "charts/pulsebase-operator"
    assert (ROOT / source["path"] / "Chart.yaml").is_file()
    assert (ROOT / source["path"] / "crds").is_dir()


def test_the_stack_application_deploys_the_production_overlay_into_its_namespace() -> None:
    spec = application("stack.yaml")["spec"]
    overlay = kustomization(spec["source"]["path"])
    assert spec["source"]["path"] == "examples/argocd/stack/overlays/production"
    assert spec["destination"]["namespace"] == overlay["namespace"]
    # Git losing the PulseBase must not delete a production stack.
    assert spec["syncPolicy"]["automated"]["prune"] is False


def test_no_application_is_named_like_the_pulsebase_it_deploys() -> None:
    # Argo CD's label tracking (the default before 3.0) would claim the operator's
    # unowned objects, which carry app.kubernetes.io/instance=<PulseBase name>.
    with (EXAMPLES / "stack" / "base" / "pulsebase.yaml").open() as stream:
        pulsebase = yaml.safe_load(stream)["metadata"]["name"]
    names = {application(f)["metadata"]["name"] for f in ("operator.yaml", "stack.yaml")}
    assert pulsebase not in names | {application("root.yaml")["metadata"]["name"]}


def test_the_root_application_syncs_exactly_the_two_applications() -> None:
    source = application("root.yaml")["spec"]["source"]
    assert source["path"] == "examples/argocd"
    assert source["directory"]["include"] == "{operator.yaml,stack.yaml}"
    repos = {application(f.name)["spec"]["source"]["repoURL"] for f in EXAMPLES.glob("*.yaml")}
    assert len(repos) == 1, "every Application should point at the same repository"


def test_every_overlay_builds_on_the_base() -> None:
    for overlay in ("staging", "production"):
        found = kustomization(f"examples/argocd/stack/overlays/{overlay}")
        assert found["resources"] == ["../../base"]
        assert found["namespace"] == f"pulsebase-{overlay}"
