"""Writes docs/spec.md, the field reference, from the CRD schema (itself from the models).

`python hack/spec_reference.py > docs/spec.md`; a unit test fails when the page is stale.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pulsebase_operator.api import crd, models

INTRO = f"""# PulseBase spec reference

`apiVersion: {models.API_VERSION}`, `kind: {models.KIND}` (short name `pb`). Generated
from the operator's models by `hack/spec_reference.py`; do not edit by hand.

Defaults are applied by the operator in memory and never written into the stored
object, so `kubectl get pb -o yaml` shows exactly what you applied. Rules marked
*rule* are CEL validations: the API server refuses a violating object with the field
path and the message shown.

| field | type | default | description |
|---|---|---|---|
"""


def _type(node: dict[str, Any]) -> str:
    kind = node.get("type", "object")
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object" and "additionalProperties" in node:
        return f"map of {_type(node['additionalProperties'])}"
    return str(kind)


def _bounds(node: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minimum", "min"),
        ("maximum", "max"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("maxLength", "max length"),
    ):
        if key in node:
            parts.append(f"{label} {node[key]}")
    for rule in node.get("x-kubernetes-validations", []):
        if "oldSelf" not in rule["rule"]:
            parts.append(f"*rule:* {rule['message']}")
    return f" ({'; '.join(parts)})" if parts else ""


def _default(model_defaults: dict[str, Any], path: str) -> str:
    value = model_defaults
    for step in path.split(".")[1:]:
        if not isinstance(value, dict) or step not in value:
            return ""
        value = value[step]
    if isinstance(value, dict | list) and value:
        return ""
    if value is None:
        return ""
    return f"`{json.dumps(value).strip(chr(34))}`"


def rows(
    node: dict[str, Any], path: str, defaults: dict[str, Any], required: bool = False
) -> list[str]:
    out = []
    if path != "spec":
        description = " ".join(node.get("description", "").split())
        default = "required" if required else _default(defaults, path)
        out.append(f"| `{path}` | {_type(node)} | {default} | {description}{_bounds(node)} |")
    holder = node.get("items", node) if node.get("type") == "array" else node
    prefix = f"{path}[]" if node.get("type") == "array" else path
    for name, child in (holder.get("properties") or {}).items():
        out.extend(rows(child, f"{prefix}.{name}", defaults, name in holder.get("required", [])))
    return out


def transition_rules(spec: dict[str, Any]) -> list[str]:
    return [
        f"- `spec{rule['fieldPath']}`: {rule['message']}"
        for rule in spec.get("x-kubernetes-validations", [])
    ]


def main() -> None:
    schema = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    defaults = models.PulseBaseSpec(version="0.0.0").model_dump(by_alias=True, mode="json")
    sys.stdout.write(INTRO)
    sys.stdout.write("\n".join(rows(spec, "spec", defaults)) + "\n")
    sys.stdout.write("\n## Changes the API server refuses\n\n")
    sys.stdout.write("Checked against the stored object on every update:\n\n")
    sys.stdout.write("\n".join(transition_rules(spec)) + "\n")
    name_rule = schema["x-kubernetes-validations"][0]["message"]
    sys.stdout.write(f"\n## Name\n\n{name_rule}.\n")


if __name__ == "__main__":
    main()
