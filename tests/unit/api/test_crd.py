"""The CRD in crds/ is the models' output, and it is a structural schema."""

from __future__ import annotations

from typing import Any

import yaml

from pulsebase_operator.api import crd


def test_crd_file_matches_the_models() -> None:
    with open("crds/pulsebase.yaml") as stream:
        on_disk = yaml.safe_load(stream)
    assert on_disk == crd.crd(), "crds/pulsebase.yaml is stale: run 'make crds'"


def _walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        found.append((path, schema))
        for key in ("properties",):
            for name, sub in schema.get(key, {}).items():
                found.extend(_walk(sub, f"{path}.{name}"))
        if isinstance(schema.get("items"), dict):
            found.extend(_walk(schema["items"], f"{path}[]"))
        if isinstance(schema.get("additionalProperties"), dict):
            found.extend(_walk(schema["additionalProperties"], f"{path}{{}}"))
    return found


def test_schema_is_structural_and_has_no_defaults() -> None:
    schema = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "default" not in node, f"{path} has a schema default (GitOps drift)"
        for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "title"):
            assert forbidden not in node, f"{path} has {forbidden}"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path


def test_every_spec_field_is_described() -> None:
    spec = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    undocumented = [
        path
        for path, node in _walk(spec, "spec")
        if path != "spec"
        and "description" not in node
        and not path.endswith("[]")
        and not path.endswith("{}")
    ]
    assert not undocumented, undocumented


def test_names_printer_columns_and_categories() -> None:
    spec = crd.crd()["spec"]
    assert spec["names"]["shortNames"] == ["pb"]
    assert "pulsebase" in spec["names"]["categories"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:5] == ["Version", "Phase", "Ready", "Last Backup", "Age"]


def test_spec_reference_page_is_current() -> None:
    import subprocess
    import sys

    generated = subprocess.run(
        [sys.executable, "hack/spec_reference.py"], capture_output=True, text=True, check=True
    ).stdout
    with open("docs/spec.md") as stream:
        assert stream.read() == generated, "docs/spec.md is stale: run 'make crds'"


def test_extra_env_is_a_map_keyed_by_name() -> None:
    spec = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    extra_env = spec["properties"]["api"]["properties"]["extraEnv"]
    assert extra_env["x-kubernetes-list-type"] == "map"
    assert extra_env["x-kubernetes-list-map-keys"] == ["name"]
    assert "name" in extra_env["items"]["required"]


def test_every_duration_is_bounded_without_risking_an_overflow() -> None:
    spec = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    durations = [
        (path, node)
        for path, node in _walk(spec, "spec")
        if any(
            "must be a duration" in r["message"] for r in node.get("x-kubernetes-validations", [])
        )
    ]
    assert len(durations) == 8, [path for path, _ in durations]
    for path, node in durations:
        bounds = [r for r in node["x-kubernetes-validations"] if "duration(self)" in r["rule"]]
        assert len(bounds) == 1, path
        assert bounds[0]["message"].startswith("must be between"), path
        assert "self.matches(r'^(0*(" in bounds[0]["rule"], path  # the overflow guard
