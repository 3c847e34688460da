"""Targets a probe cannot even try: still a Reading, never an exception."""

from __future__ import annotations

from pulsebase_operator.probes import HttpTarget, ObjectStoreTarget, http, objectstore


def test_an_s3_endpoint_that_is_no_url_is_an_invalid_target() -> None:
    target = ObjectStoreTarget(
        endpoint="not a url",
        region="us-east-1",
        access_key_id="AKIAEXAMPLEEXAMPLE00",
        secret_access_key="a-secret-access-key-1234",
        buckets=("media",),
    )

    reading = objectstore.probe(target, timeout=1)

    assert (reading.healthy, reading.reason) == (False, "InvalidTarget")
    assert "a-secret-access-key-1234" not in reading.message


def test_a_url_of_another_scheme_is_refused_before_any_request() -> None:
    reading = http.probe(HttpTarget(url="file:///etc/passwd"), timeout=1)

    assert (reading.healthy, reading.reason) == (False, "InvalidUrl")
