"""The models give the defaults a user relies on and refuse what the API server refuses."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pulsebase_operator.api import models, schedules
from tests.support.invalid_cases import CREATE_CASES, OPERATOR_CASES, Case


def body(spec: dict, name: str = "shop") -> dict:
    return {"metadata": {"name": name, "namespace": "prod"}, "spec": spec}


def test_minimal_spec_gets_release_plan_defaults() -> None:
    pb = models.PulseBase.from_body(body({"version": "2.4.1"}))
    spec = pb.spec
    assert spec.postgres.mode is models.Mode.MANAGED
    assert spec.postgres.instances == 3
    assert spec.redis.shards == 3 and spec.redis.replicas_per_shard == 1
    assert spec.cdn.provider is models.CdnProvider.EDGE
    assert spec.backup.rpo == "15m" and spec.backup.rto == "1h"
    assert (spec.backup.retention.daily, spec.backup.retention.weekly) == (30, 52)
    assert spec.monitoring.thresholds.api_latency_p95 == "500ms"
    assert spec.monitoring.thresholds.availability_percent == "99.9"
    assert spec.deletion_policy is models.DeletionPolicy.RETAIN


def test_examples_are_valid() -> None:
    import yaml

    for path in ("examples/pulsebase.yaml", "examples/pulsebase-external.yaml"):
        with open(path) as stream:
            docs = [d for d in yaml.safe_load_all(stream) if d and d["kind"] == "PulseBase"]
        assert docs, path
        for doc in docs:
            models.PulseBase.from_body(doc)


def test_unknown_fields_are_ignored_so_an_older_operator_reads_newer_objects() -> None:
    pb = models.PulseBase.from_body(body({"version": "2.4.1", "futureField": {"x": 1}}))
    assert pb.spec.version == "2.4.1"


@pytest.mark.parametrize("case", [c for c in CREATE_CASES if c.models_reject], ids=lambda c: c.id)
def test_models_refuse_what_the_api_server_refuses(case: Case) -> None:
    with pytest.raises(ValidationError) as caught:
        models.PulseBase.from_body(body(case.spec, name=case.name))
    expected = re.sub(r"\[\d+\]", "", case.field_path).split(".")
    locations = [
        [str(p) for p in e["loc"] if not isinstance(p, int)] for e in caught.value.errors()
    ]
    # The error points at the field, or at the object whose rule names the field.
    assert any(expected[: len(loc)] == loc for loc in locations), (locations, expected)


@pytest.mark.parametrize("case", OPERATOR_CASES, ids=lambda c: c.id)
def test_models_refuse_what_only_the_operator_can_tell(case: Case) -> None:
    with pytest.raises(ValidationError) as caught:
        models.PulseBase.from_body(body(case.spec, name=case.name))
    assert case.message in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [
        ("30 * * * *", 60),
        ("0 1 * * *", 1440),
        ("*/15 * * * *", 15),
        ("0,10 3 * * *", 10),
        ("5/20 * * * *", 20),
        ("50 22,23 * * *", 60),
        ("59 23 * * *", 1440),
        ("0 0 * * 1", 1440),
    ],
)
def test_shortest_interval_of_a_schedule(expression: str, minutes: int) -> None:
    assert schedules.shortest_interval_minutes(expression) == minutes


@given(st.from_regex(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", fullmatch=True))
def test_every_dns_label_up_to_forty_characters_is_a_valid_name(name: str) -> None:
    assert models.PulseBase.from_body(body({"version": "1.0.0"}, name=name)).metadata.name == name


@given(st.text(min_size=41, max_size=60, alphabet="abc-"))
def test_longer_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        models.PulseBase.from_body(body({"version": "1.0.0"}, name=name))


@pytest.mark.parametrize(
    "spec",
    [
        # Whole bytes however written; isInteger() on the server would refuse these two.
        {"postgres": {"storage": {"size": "1.5Gi"}}},
        {"postgres": {"storage": {"size": "100Ti"}}},
        {"postgres": {"storage": {"size": "7Ei"}}},
        {"postgres": {"storage": {"size": "1e3"}}},
        {"api": {"resources": {"requests": {"cpu": "0"}, "limits": {"cpu": "999999"}}}},
        {"api": {"resources": {"requests": {"cpu": "1m"}}}},
        {"api": {"extraEnv": [{"name": "FOO"}, {"name": "BAR"}]}},
        {"cdn": {"edge": {"assetMaxAge": "8760h"}}},
        {"cdn": {"edge": {"assetMaxAge": "1000000000ms"}}},
        {"monitoring": {"thresholds": {"apiLatencyP95": "1ms", "dbQueryP95": "1h"}}},
        {"postgres": {"parameters": {"Shared_Buffers": "1GB"}}},
        {"redis": {"mode": "external", "external": {"endpoints": ["cache:65535", "b:1"]}}},
        {"objectStorage": {"buckets": {"assets": "shop-backups", "backups": "shop-assets"}}},
    ],
)
def test_values_at_the_edges_are_accepted(spec: dict) -> None:
    models.PulseBase.from_body(body({"version": "2.4.1", **spec}))


@pytest.mark.parametrize(
    ("size", "whole"),
    [("1", True), ("0.5Ki", True), ("0.0001Ki", False), ("500m", False), ("1.5", False)],
)
def test_byte_quantities_must_be_whole(size: str, whole: bool) -> None:
    spec = {"version": "2.4.1", "redis": {"storage": {"size": size}}}
    if whole:
        models.PulseBase.from_body(body(spec))
    else:
        with pytest.raises(ValidationError, match="whole number of bytes"):
            models.PulseBase.from_body(body(spec))


@pytest.mark.parametrize(
    "size", ["8Ei", "9223372036854775807", "10E", "99999999999999999999999999999"]
)
def test_byte_quantities_stay_below_8ei(size: str) -> None:
    # The API server caps binary quantities at 2**63 - 1, so 8Ei - 1 is refused as well.
    with pytest.raises(ValidationError, match="below 8Ei"):
        models.PulseBase.from_body(body({"version": "2.4.1", "cdn": {"edge": {"cacheSize": size}}}))


@pytest.mark.parametrize("age", ["0s", "999ms", "8761h", "99999999999999999999h"])
def test_durations_out_of_range_name_the_range(age: str) -> None:
    spec = {"version": "2.4.1", "cdn": {"edge": {"assetMaxAge": age}}}
    with pytest.raises(ValidationError, match="must be between 1s and 8760h"):
        models.PulseBase.from_body(body(spec))


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("https://s3.example.com:0", "port must be between 1 and 65535"),
        ("https://s3.example.com:123456", "port must be between 1 and 65535"),
        ("https://user@s3.example.com/", "must not contain credentials"),
    ],
)
def test_external_s3_endpoint(endpoint: str, message: str) -> None:
    spec = {
        "version": "2.4.1",
        "objectStorage": {
            "mode": "external",
            "external": {
                "endpoint": endpoint,
                "accessKeyId": {"name": "s", "key": "a"},
                "secretAccessKey": {"name": "s", "key": "b"},
            },
        },
    }
    with pytest.raises(ValidationError, match=message):
        models.PulseBase.from_body(body(spec))


def test_a_query_with_an_at_sign_is_refused_as_a_query_not_as_credentials() -> None:
    external = {
        "endpoint": "https://s3.example.com:9000/path?x=a@b",
        "accessKeyId": {"name": "s", "key": "a"},
        "secretAccessKey": {"name": "s", "key": "b"},
    }
    spec = {"version": "2.4.1", "objectStorage": {"mode": "external", "external": external}}
    with pytest.raises(ValidationError, match="no path, query or fragment"):
        models.PulseBase.from_body(body(spec))
    external["endpoint"] = "https://s3.example.com:9000/"
    models.PulseBase.from_body(body(spec))


@pytest.mark.parametrize(
    "spec",
    [
        # No pgBackRest to speak TLS: backups off, or nothing of the database managed.
        {"backup": {"enabled": False}},
        {
            "postgres": {
                "mode": "external",
                "external": {
                    "host": "db.example.com",
                    "username": {"name": "db", "key": "user"},
                    "password": {"name": "db", "key": "pass"},
                },
            }
        },
    ],
    ids=["backups-off", "external-database"],
)
def test_a_plain_http_object_storage_is_accepted_where_pgbackrest_never_calls_it(
    spec: dict,
) -> None:
    storage = {
        "mode": "external",
        "external": {
            "endpoint": "http://minio.storage.svc:9000",
            "accessKeyId": {"name": "s", "key": "a"},
            "secretAccessKey": {"name": "s", "key": "b"},
        },
    }
    pb = models.PulseBase.from_body(body({"version": "2.4.1", "objectStorage": storage, **spec}))
    assert pb.spec.object_storage.external is not None
