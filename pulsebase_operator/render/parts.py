"""The shapes builders return: objects to apply, credentials to generate once, and the
components whose readiness status reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Object = dict[str, Any]


@dataclass(frozen=True)
class GeneratedSecret:
    """A Secret whose values the operator generates once and never overwrites.

    `random_keys` are filled with random URL-safe text of the given length; each entry of
    `templates` is then formatted with those values (for files that embed them). With
    `certificate_for` set, the Secret holds instead a new private CA and a server
    certificate for those DNS names (render.certificates.issue).
    """

    name: str
    namespace: str
    labels: dict[str, str]
    random_keys: tuple[tuple[str, int], ...]
    templates: tuple[tuple[str, str], ...] = ()
    # The component whose stored data embeds these values (PostgreSQL keeps its role
    # passwords in the database), so fresh values would lock the data out; None if
    # new values simply take effect when pods restart.
    data_of: str | None = None
    certificate_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workload:
    kind: str  # StatefulSet, Deployment or Job
    name: str


@dataclass(frozen=True)
class Component:
    """One dependency as status reports it: how it is run and what must be ready."""

    name: str  # postgres, redis, objectStorage, api, cdn
    mode: str  # managed, external or disabled
    endpoint: str | None
    workloads: tuple[Workload, ...] = field(default=())


@dataclass(frozen=True)
class Part:
    """What one component's builder returns."""

    objects: tuple[Object, ...]
    component: Component
