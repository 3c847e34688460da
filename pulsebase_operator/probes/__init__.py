"""Live probes: the only code that talks to PostgreSQL, Redis, object storage and HTTP.

Pure I/O. Each module probes one kind of dependency and returns a Reading; `run` probes a
whole stack concurrently within one timeout. Nothing here writes status, exports metrics
or knows about Kubernetes: the reconcile pass turns Readings into conditions and
status.health, and telemetry turns them into metrics. A probe never raises for a failing
dependency; it reports the failure, with secrets scrubbed from any library text it quotes.
"""

from pulsebase_operator.probes import http, objectstore, postgres, redis
from pulsebase_operator.probes.reading import Reading
from pulsebase_operator.probes.runner import run
from pulsebase_operator.probes.targets import (
    HttpTarget,
    ObjectStoreTarget,
    PostgresTarget,
    RedisTarget,
    Target,
)

__all__ = [
    "HttpTarget",
    "ObjectStoreTarget",
    "PostgresTarget",
    "Reading",
    "RedisTarget",
    "Target",
    "http",
    "objectstore",
    "postgres",
    "redis",
    "run",
]
