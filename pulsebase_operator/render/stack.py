"""The whole stack in one call: every child object, credential and component of a
PulseBase. The reconciler applies `objects`, creates `secrets` once, and reads the
readiness of each component's `workloads` to write status.
"""

from __future__ import annotations

from dataclasses import dataclass

from pulsebase_operator.api import models
from pulsebase_operator.render import app, cdn, credentials, objectstore, postgres, redis
from pulsebase_operator.render.parts import Component, GeneratedSecret, Object


@dataclass(frozen=True)
class Rendered:
    objects: tuple[Object, ...]
    secrets: tuple[GeneratedSecret, ...]
    components: tuple[Component, ...]
    buckets: models.BucketStatus


def render(pb: models.PulseBase) -> Rendered:
    objects: list[Object] = []
    components: list[Component] = []
    for module in (postgres, redis, objectstore, app, cdn):
        part = module.render(pb)
        objects.extend(part.objects)
        components.append(part.component)
    return Rendered(
        objects=tuple(objects),
        secrets=tuple(credentials.generated(pb)),
        components=tuple(components),
        buckets=objectstore.buckets(pb),
    )
