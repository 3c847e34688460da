"""docs/argocd/argocd-cm.yaml carries exactly docs/argocd/health.lua, so the snippet
people paste into Argo CD is the script the tests run."""

from __future__ import annotations

import yaml

from tests.unit.argocd import health_check


def test_argocd_cm_embeds_exactly_the_script() -> None:
    script = health_check.SCRIPT.read_text()
    text = health_check.CONFIGMAP.read_text()
    assert text == health_check.configmap(script), (
        "docs/argocd/argocd-cm.yaml is out of date: "
        "python -m tests.unit.argocd.health_check > docs/argocd/argocd-cm.yaml"
    )
    assert yaml.safe_load(text)["data"][health_check.KEY] == script
