"""Which source a restoring PulseBase is rendered with, or why its pass stops there."""

from __future__ import annotations

from typing import Any, cast

from pulsebase_operator.api import models
from pulsebase_operator.kube.client import Kube
from pulsebase_operator.reconcile import stack
from tests.unit.render.examples import EXTERNAL_POSTGRES


class Objects:
    """Only `get`: the lookup reads and never writes."""

    def __init__(self, *found: dict[str, Any]) -> None:
        self.found = {(o["kind"], o["metadata"]["name"]): o for o in found}
        self.reads: list[tuple[str, str]] = []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        self.reads.append((kind, name))
        return self.found.get((kind, name))


def body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": name, "namespace": "prod"},
        "spec": {"version": "2.4.1", **spec},
    }


COPY = models.PulseBase.from_body(
    body("copy", bootstrap={"recovery": {"source": {"pulseBase": "shop"}}})
)
STATEFULSET = {"kind": "StatefulSet", "metadata": {"name": "copy-postgres"}}


def lookup(
    *found: dict[str, Any], copy: models.PulseBase = COPY
) -> tuple[models.PulseBase | None, str | None]:
    return stack._recovery_source(cast(Kube, Objects(*found)), copy)


def test_an_existing_source_is_rendered_with() -> None:
    source, refused = lookup(body("shop"))
    assert refused is None and source is not None and source.metadata.name == "shop"


def test_a_missing_source_stops_a_copy_that_was_never_bootstrapped() -> None:
    source, refused = lookup()
    assert source is None and refused is not None
    assert "PulseBase shop does not exist in namespace prod" in refused


def test_a_source_deleted_after_the_bootstrap_no_longer_holds_the_copy_up() -> None:
    assert lookup(STATEFULSET) == (None, None)


def test_a_source_whose_spec_is_invalid_is_named() -> None:
    source, refused = lookup(body("shop", version="2.4"))
    assert source is None and refused is not None
    assert refused.startswith("spec.bootstrap.recovery.source.pulseBase: PulseBase shop has")
    assert "spec.version" in refused


def test_a_source_with_an_external_database_is_refused() -> None:
    _, refused = lookup(body("shop", postgres=EXTERNAL_POSTGRES))
    assert refused is not None and "external PostgreSQL" in refused


def test_a_source_changed_after_the_bootstrap_no_longer_holds_the_copy_up() -> None:
    # Backups turned off on the source later: the running copy is still reconciled.
    assert lookup(body("shop", backup={"enabled": False}), STATEFULSET) == (None, None)
    assert lookup(body("shop", version="2.4"), STATEFULSET) == (None, None)


def test_a_pulsebase_without_recovery_reads_nothing() -> None:
    objects = Objects()
    plain = models.PulseBase.from_body(body("shop"))
    assert stack._recovery_source(cast(Kube, objects), plain) == (None, None)
    assert objects.reads == []


def test_a_target_before_the_sources_oldest_backup_stops_a_copy_not_yet_bootstrapped() -> None:
    recovery = {"source": {"pulseBase": "shop"}, "targetTime": "2026-11-01T00:00:00Z"}
    copy = models.PulseBase.from_body(body("copy", bootstrap={"recovery": recovery}))
    shop = {**body("shop"), "status": {"backup": {"recoverableFrom": "2026-11-03T02:00:14Z"}}}
    source, refused = lookup(shop, copy=copy)
    assert source is None and refused is not None
    assert refused.startswith("spec.bootstrap.recovery.targetTime: 2026-11-01T00:00:00Z is")
    assert (
        "PulseBase shop reaches: no restore to a time reaches before 2026-11-03T02:00:14Z"
        in refused
    )
    # Its backups expired under a copy already bootstrapped: that copy is not held up.
    assert lookup(shop, STATEFULSET, copy=copy) == (None, None)
