"""The backup Job's cluster side: reading the PulseBase, finding the primary, turning
exec failures into backup errors, and its JSON lines."""

from __future__ import annotations

import datetime
import io
import json
from typing import Any

import pytest

from pulsebase_operator.api import models
from pulsebase_operator.backups import job
from pulsebase_operator.backups.errors import BackupError
from pulsebase_operator.kube import exec as kube_exec
from pulsebase_operator.policy import backups as backup_policy
from pulsebase_operator.policy import retention
from pulsebase_operator.reconcile import backup_job


class FakeKube:
    def __init__(self, *, body: dict[str, Any] | None = None, pods: list[Any] = ()) -> None:  # type: ignore[assignment]
        self.body = body
        self.pods = list(pods)
        self.selectors: list[str] = []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        assert (api_version, kind) == (models.API_VERSION, models.KIND)
        return self.body

    def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[Any]:
        assert (api_version, kind, namespace) == ("v1", "Pod", "prod")
        self.selectors.append(selector)
        return self.pods


def pod(name: str, *, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-04T01:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


EXTERNAL_POSTGRES = {
    "mode": "external",
    "external": {
        "host": "db.example.com",
        "username": {"name": "db", "key": "user"},
        "password": {"name": "db", "key": "pass"},
    },
}


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": "shop", "namespace": "prod"},
        "spec": {"version": "2.4.1", **spec},
    }


def test_the_primary_is_the_one_running_pod_with_patronis_role_label() -> None:
    kube = FakeKube(pods=[pod("shop-postgres-1"), pod("shop-postgres-0", phase="Pending")])
    found = backup_job.find_primary(kube, name="shop", namespace="prod")  # type: ignore[arg-type]
    assert found == "shop-postgres-1"
    (selector,) = kube.selectors
    assert "app.kubernetes.io/component=postgres" in selector
    assert selector.endswith(",role=primary")


@pytest.mark.parametrize(
    ("pods", "message"),
    [
        ([], "no running pod matches"),
        ([pod("shop-postgres-0", deleting=True)], "no running pod matches"),
        ([pod("shop-postgres-0"), pod("shop-postgres-1")], "all claim it"),
    ],
    ids=["none", "only a deleted one", "two during a failover"],
)
def test_no_primary_or_two_is_an_error_naming_the_step(pods: list[Any], message: str) -> None:
    with pytest.raises(backup_job.PrimaryError, match=message) as raised:
        backup_job.find_primary(FakeKube(pods=pods), name="shop", namespace="prod")  # type: ignore[arg-type]
    assert str(raised.value).startswith("find the primary failed: ")


def test_retention_comes_from_the_pulsebase_with_its_time_zone() -> None:
    kube = FakeKube(
        body=body(backup={"timeZone": "Europe/Paris", "retention": {"daily": 7, "weekly": 4}})
    )
    pb = backup_job.read_pulsebase(kube, name="shop", namespace="prod")  # type: ignore[arg-type]
    policy = backup_policy.retention_policy(pb)
    assert (policy.daily, policy.weekly, policy.time_zone) == (7, 4, "Europe/Paris")


@pytest.mark.parametrize(
    ("found", "message"),
    [
        (None, "it does not exist"),
        (body(backup={"retention": {"daily": 0}}), "backup.retention.daily"),
        (
            body(backup={"enabled": False}),
            r"^PulseBase prod/shop has backups disabled \(spec.backup.enabled is false\)$",
        ),
        (
            body(postgres=EXTERNAL_POSTGRES),
            "^PulseBase prod/shop uses an external database; the operator backs up only the "
            "one it runs$",
        ),
    ],
    ids=["missing", "invalid", "backups off", "external database"],
)
def test_a_missing_invalid_or_backup_less_pulsebase_is_refused(
    found: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(backup_job.SpecError, match=message):
        backup_job.read_pulsebase(FakeKube(body=found), name="shop", namespace="prod")  # type: ignore[arg-type]


def test_exec_failures_become_backup_errors_with_the_same_step() -> None:
    class Failing:
        def run(self, args: Any, *, step: str, timeout: float) -> Any:
            raise kube_exec.ExecError(step, "no answer within 5 s", timed_out=True)

    runner = backup_job.pod_runner(Failing())  # type: ignore[arg-type]
    with pytest.raises(BackupError) as raised:
        runner(["pgbackrest", "backup"], step="full backup", env={"X": "1"}, timeout=5)
    assert raised.value.step == "full backup"
    assert raised.value.timed_out


def test_the_stanza_runs_with_the_mounted_config_in_the_pod() -> None:
    stanza = backup_job.stanza_in(object())  # type: ignore[arg-type]
    assert (stanza.name, stanza.config) == ("pulsebase", "/etc/pgbackrest/pgbackrest.conf")
    assert stanza.runner is not None and stanza.run_as is None


def test_events_are_one_json_object_per_line_with_the_resource() -> None:
    out = io.StringIO()
    emit = backup_job.json_lines(name="shop", namespace="prod", out=out)
    emit({"event": "backup taken", "label": "20261204-010000F"})
    emit({"event": "done"})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["backup taken", "done"]
    assert all(line["name"] == "shop" and line["namespace"] == "prod" for line in lines)
    assert lines[0]["label"] == "20261204-010000F"


def test_an_unknown_kind_exits_2_with_one_line() -> None:
    err = io.StringIO()
    events: list[Any] = []
    code = backup_job.main(
        kind="diff", name="shop", namespace="prod", api_client=None, emit=events.append, err=err
    )
    assert code == backup_job.EXIT_SPEC
    assert err.getvalue().count("\n") == 1
    assert err.getvalue().startswith("error: kind must be one of stanza, full, incr, vectors")


class RefusingBucket:
    """Lists three old dumps and refuses to delete the first, as an S3 server answers
    DeleteObjects when a key is locked."""

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        keys = [f"vector-tables/2024010{day}T030000Z.dump" for day in (1, 2, 3)]

        class Pages:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"Contents": [{"Key": k} for k in keys]}]

        return Pages()

    def delete_objects(self, **request: Any) -> dict[str, Any]:
        (refused, *_) = request["Delete"]["Objects"]
        return {"Errors": [{"Key": refused["Key"], "Code": "AccessDenied", "Message": "locked"}]}


def test_a_dump_the_bucket_refuses_to_delete_is_a_retention_error_naming_it() -> None:
    now = datetime.datetime(2026, 12, 4, tzinfo=datetime.UTC)
    with pytest.raises(job.RetentionError) as raised:
        backup_job.expire_dumps(
            RefusingBucket(),
            bucket="b",
            policy=retention.Policy(daily=1, weekly=0),
            now=now,
            emit=lambda _: None,
        )
    assert raised.value.step == "expire vector-table dumps"
    assert raised.value.reason == "vector-tables/20240101T030000Z.dump: AccessDenied locked"


def test_each_dump_deleted_is_logged_even_when_the_bucket_refuses_another() -> None:
    events: list[dict[str, Any]] = []
    with pytest.raises(job.RetentionError):
        backup_job.expire_dumps(
            RefusingBucket(),
            bucket="b",
            policy=retention.Policy(daily=1, weekly=0),
            now=datetime.datetime(2026, 12, 4, tzinfo=datetime.UTC),
            emit=events.append,
        )
    expired = [e["key"] for e in events if e["event"] == "dump expired"]
    assert expired == ["vector-tables/20240102T030000Z.dump"]
