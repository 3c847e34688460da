"""Labels that tie children to their PulseBase (for selection, pruning and watching), and
the annotations the operator writes on them."""

from __future__ import annotations

MANAGED_BY = "pulsebase-operator"
INSTANCE = "pulsebase.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
# The hash of what the operator last applied; a change means "apply again".
APPLIED_HASH = "pulsebase.io/applied-hash"
# On pod templates, the hash of the configuration the pods read; a change rolls them.
CONFIG_HASH = "pulsebase.io/config-hash"


def common(name: str) -> dict[str, str]:
    """Labels on every child; `managed-by` plus `instance` is the pruning selector."""
    return {
        "app.kubernetes.io/name": "pulsebase",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        INSTANCE: name,
    }


def unowned(name: str, component: str | None = None) -> dict[str, str]:
    """Labels for what may outlive the PulseBase (credentials, volume claims).

    No `app.kubernetes.io/instance`: GitOps tools that track their resources by that
    label (Argo CD's default before 3.0) would otherwise adopt these objects, and could
    prune credentials and volumes the deletion policy keeps.
    """
    result = {
        "app.kubernetes.io/name": "pulsebase",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        INSTANCE: name,
    }
    if component is not None:
        result[COMPONENT_LABEL] = component
    return result


def component(name: str, component: str, version: str | None = None) -> dict[str, str]:
    result = {**common(name), COMPONENT_LABEL: component}
    if version is not None:
        result["app.kubernetes.io/version"] = version
    return result


def selector(name: str, component: str) -> dict[str, str]:
    """The immutable subset used in Deployment and StatefulSet selectors."""
    return {INSTANCE: name, COMPONENT_LABEL: component}


def prune_selector(name: str) -> str:
    return f"app.kubernetes.io/managed-by={MANAGED_BY},{INSTANCE}={name}"
