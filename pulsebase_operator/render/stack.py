"""The whole stack in one call: every child object, credential and component of a
PulseBase. The reconciler applies `objects`, creates `secrets` once, and reads the
readiness of each component's `workloads` to write status.

Some kinds exist only where an add-on installed their CRD (`OPTIONAL_KINDS`: the
PrometheusRule of prometheus-operator). The caller says which of them the cluster
serves; the others are left out, and `unserved` names those the spec asked for.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pulsebase_operator.api import models
from pulsebase_operator.render import (
    app,
    backups,
    cdn,
    credentials,
    drill,
    monitoring,
    objectstore,
    postgres,
    redis,
)
from pulsebase_operator.render.parts import Component, GeneratedSecret, Object

Kind = tuple[str, str]  # apiVersion, kind


@dataclass(frozen=True)
class OptionalKind:
    api_version: str
    kind: str
    plural: str  # the resource name discovery lists

    @property
    def key(self) -> Kind:
        return self.api_version, self.kind


OPTIONAL_KINDS: tuple[OptionalKind, ...] = (
    OptionalKind(monitoring.API_VERSION, monitoring.KIND, "prometheusrules"),
)


@dataclass(frozen=True)
class Rendered:
    objects: tuple[Object, ...]
    secrets: tuple[GeneratedSecret, ...]
    components: tuple[Component, ...]
    buckets: models.BucketStatus
    # Optional kinds the spec asks for that the cluster does not serve.
    unserved: tuple[Kind, ...] = ()


def render(
    pb: models.PulseBase,
    *,
    served: Collection[Kind] = (),
    recovery_source: models.PulseBase | None = None,
) -> Rendered:
    """Every child of `pb`; objects of an optional kind only if `served` holds that kind.
    `recovery_source` is the PulseBase whose backups the database is restored from."""
    objects: list[Object] = []
    components: list[Component] = []
    for module in (postgres, redis, objectstore, app, cdn):
        if module is postgres:
            part = postgres.render(pb, source=recovery_source)
        else:
            part = module.render(pb)
        objects.extend(part.objects)
        components.append(part.component)
    objects.extend(backups.backup_objects(pb))
    objects.extend(drill.drill_objects(pb))

    unserved: list[Kind] = []
    rule = monitoring.prometheus_rule(pb)
    if rule is not None:
        if (monitoring.API_VERSION, monitoring.KIND) in served:
            objects.append(rule)
        else:
            unserved.append((monitoring.API_VERSION, monitoring.KIND))
    return Rendered(
        objects=tuple(objects),
        secrets=tuple(credentials.generated(pb)),
        components=tuple(components),
        buckets=objectstore.buckets(pb),
        unserved=tuple(unserved),
    )
