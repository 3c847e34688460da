"""The models give the defaults a user relies on and refuse what the API server refuses."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pulsebase_operator.api import models
from tests.support.invalid_cases import CREATE_CASES, Case


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


@given(st.from_regex(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", fullmatch=True))
def test_every_dns_label_up_to_forty_characters_is_a_valid_name(name: str) -> None:
    assert models.PulseBase.from_body(body({"version": "1.0.0"}, name=name)).metadata.name == name


@given(st.text(min_size=41, max_size=60, alphabet="abc-"))
def test_longer_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        models.PulseBase.from_body(body({"version": "1.0.0"}, name=name))
