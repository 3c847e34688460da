"""The PulseBase CRD, generated from the models.

pydantic's JSON Schema is close to what the API server wants but not the same: a
structural schema has no `$ref`, no `anyOf` for optional fields, no titles, and (by our
rule) no defaults. `crd()` rewrites one into the other; `crds/pulsebase.yaml` is its
output and a test fails when the file and the models drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

from pulsebase_operator.api import models

# Root-level rules see metadata.name; children names are built from it.
_NAME_RULE = models.cel(
    f"self.metadata.name.size() <= {models.NAME_MAX_LENGTH} && "
    f"self.metadata.name.matches('{models.NAME_PATTERN}')",
    f"metadata.name must be a DNS-1035 label of at most {models.NAME_MAX_LENGTH} "
    "characters: lower-case letters, digits and '-', starting with a letter",
)


def _bucket_not_the_others_default(field: str, other: str) -> dict[str, str]:
    """A bucket set to the name the other one defaults to would be shared by both."""
    buckets = "self.spec.objectStorage.buckets"
    return models.cel(
        f"!has(self.spec.objectStorage) || !has({buckets}) || !has({buckets}.{field}) || "
        f"has({buckets}.{other}) || {buckets}.{field} != self.metadata.name + '-{other}'",
        models.default_bucket_message(other),
        field_path=f".spec.objectStorage.buckets.{field}",
    )


_RECOVERY = "self.spec.bootstrap.recovery"
_NOT_FROM_ITSELF = models.cel(
    f"!has(self.spec.bootstrap) || !has({_RECOVERY}) || "
    f"{_RECOVERY}.source.pulseBase != self.metadata.name",
    models.SELF_RESTORE_MESSAGE,
    field_path=".spec.bootstrap.recovery.source.pulseBase",
)

_ROOT_RULES = [
    _NAME_RULE,
    _NOT_FROM_ITSELF,
    _bucket_not_the_others_default("assets", "backups"),
    _bucket_not_the_others_default("backups", "assets"),
]

_DROPPED_KEYWORDS = {"title", "default", "examples"}


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline references and reduce pydantic's forms to structural ones, recursively."""
    schema = dict(schema)

    if "$ref" in schema:
        target = defs[schema.pop("$ref").split("/")[-1]]
        schema = _merge(_resolve(target, defs), _resolve(schema, defs))

    # Optional fields come as anyOf [X, null]; absence already means "not set".
    if "anyOf" in schema:
        variants = [v for v in schema.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {variants}")
        schema = _merge(_resolve(variants[0], defs), schema)

    for key in _DROPPED_KEYWORDS:
        schema.pop(key, None)
    if kind := schema.pop(models.FORMAT_KEY, None):
        rule = models.cel(models.FORMAT_CEL[kind], models.FORMAT_MESSAGES[kind])
        schema["x-kubernetes-validations"] = [rule, *schema.get("x-kubernetes-validations", [])]

    if "properties" in schema:
        schema["type"] = "object"
        schema["properties"] = {
            name: _resolve(prop, defs) for name, prop in schema["properties"].items()
        }
        schema.pop("additionalProperties", None)
    elif schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        if extra in (None, True, {}):
            schema.pop("additionalProperties", None)
            schema["x-kubernetes-preserve-unknown-fields"] = True
        else:
            schema["additionalProperties"] = _resolve(extra, defs)

    if "items" in schema:
        schema["items"] = _resolve(schema["items"], defs)
    if "enum" in schema and "type" not in schema:
        schema["type"] = "string"
    return schema


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **{k: v for k, v in extra.items() if k != "x-kubernetes-validations"}}
    rules = base.get("x-kubernetes-validations", []) + extra.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def schema_of(model: type[models.Model]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _resolve(raw, defs)


def _status_schema() -> dict[str, Any]:
    status = schema_of(models.PulseBaseStatus)
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["maxItems"] = 64
    return status


def openapi_schema() -> dict[str, Any]:
    spec = schema_of(models.PulseBaseSpec)
    spec["description"] = "Desired state of the whole stack. See docs/spec.md."
    return {
        "type": "object",
        "description": "A PulseBase: API servers, PostgreSQL, a Redis cluster, object "
        "storage and a CDN, run and kept healthy as one stack.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": _status_schema(),
        },
        "x-kubernetes-validations": copy.deepcopy(_ROOT_RULES),
    }


PRINTER_COLUMNS = [
    {
        "name": "Version",
        "type": "string",
        "jsonPath": ".spec.version",
        "description": "Requested PulseBase release",
    },
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": ".status.readyComponents",
        "description": "Ready components out of those in use",
    },
    {"name": "Last Backup", "type": "date", "jsonPath": ".status.backup.lastSuccessful"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{models.PLURAL}.{models.GROUP}",
            "labels": {"app.kubernetes.io/name": "pulsebase-operator"},
        },
        "spec": {
            "group": models.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": models.KIND,
                "listKind": f"{models.KIND}List",
                "plural": models.PLURAL,
                "singular": models.SINGULAR,
                "shortNames": list(models.SHORT_NAMES),
                "categories": list(models.CATEGORIES),
            },
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": copy.deepcopy(PRINTER_COLUMNS),
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }
