"""What to probe: where each dependency listens and how to log in to it.

Plain frozen values built by the reconcile pass from the spec and the Secrets it reads;
nothing here opens a connection. Secrets live in these objects only as long as a probe
needs them, and their repr hides them, so a target that ends up in a log line or a
traceback gives nothing away.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    sslmode: str = "prefer"
    volume_bytes: int | None = None  # capacity of the data volume, when known


@dataclass(frozen=True)
class RedisTarget:
    endpoints: tuple[tuple[str, int], ...]  # seed nodes, tried in order
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    cluster: bool = True  # False: a single node, asked no CLUSTER commands


@dataclass(frozen=True)
class ObjectStoreTarget:
    endpoint: str
    region: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    buckets: tuple[str, ...]  # every bucket to check
    backups_bucket: str | None = None  # its newest object gives the backup age
    force_path_style: bool = True
    verify_tls: bool | str = True  # False, True, or the path of a CA bundle


@dataclass(frozen=True)
class HttpTarget:
    url: str


Target = PostgresTarget | RedisTarget | ObjectStoreTarget | HttpTarget
