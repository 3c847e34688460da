"""What reaches the log: JSON lines with context, and never a secret or an e-mail address."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsebase_operator.kube.client import PermanentError, _classify
from pulsebase_operator.telemetry import logging as telemetry_logging

secrets = st.text(
    alphabet="abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=32
)


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def configured() -> None:
    """The operator's pipeline, set up inside the test: pytest's own logging capture
    resets the root logger between a fixture and the test."""
    structlog.reset_defaults()
    telemetry_logging.configure("DEBUG")


def test_a_line_is_one_json_object_with_context(capsys: pytest.CaptureFixture[str]) -> None:
    configured()
    structlog.contextvars.bind_contextvars(namespace="prod", name="shop", correlation_id="c1")
    try:
        structlog.get_logger("pulsebase_operator.reconcile").info("pass complete", writes=0)
    finally:
        structlog.contextvars.clear_contextvars()
    (line,) = lines(capsys)
    assert line["event"] == "pass complete"
    assert (line["namespace"], line["name"], line["correlation_id"]) == ("prod", "shop", "c1")
    assert {"timestamp", "level", "logger"} <= set(line)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=secrets, user=st.sampled_from(["app", "postgres", "replicator"]))
def test_no_secret_reaches_the_output(
    capsys: pytest.CaptureFixture[str], password: str, user: str
) -> None:
    configured()
    capsys.readouterr()
    log = structlog.get_logger("pulsebase_operator.reconcile")
    # Fields named like secrets, whatever they hold.
    log.info("pass complete", password=password, api_key=password, db={"token": password})
    # Free text: connection strings, URLs, headers, keys, as error messages quote them.
    log.warning(
        "pass deferred",
        reason=f"postgresql://{user}:{password}@db:5432/app "
        f"host=db user={user} password={password} Authorization: Bearer {password}",
    )
    # kopf's own lines go through the same pipeline.
    logging.getLogger("kopf.objects").error(
        "Handler failed: {'env': [{'name': 'S3_SECRET_ACCESS_KEY', 'value': '%s'}], "
        "'password': '%s'}",
        password,
        password,
    )
    # The API server's refusal, classified by the real boundary code, then logged.
    refusal = type("Refusal", (Exception,), {})()
    refusal.status = 422
    refusal.body = json.dumps(
        {
            "message": f'Secret "x" is invalid: data.password: "{password}"'
            f" secretAccessKey: {password}"
        }
    )
    error = _classify("apply Secret prod/x", refusal)
    assert isinstance(error, PermanentError)
    log.error("pass failed", step=error.step, reason=error.detail)

    out = capsys.readouterr().out
    assert out.count("\n") == 4
    assert password not in out


def test_e_mail_addresses_and_cloud_keys_are_removed(capsys: pytest.CaptureFixture[str]) -> None:
    configured()
    structlog.get_logger("x").info("user jane.doe@example.com uploaded with AKIAABCDEFGHIJKLMNOP")
    out = capsys.readouterr().out
    assert "jane.doe@example.com" not in out
    assert "AKIAABCDEFGHIJKLMNOP" not in out
    assert "[email]" in out


def test_ordinary_text_is_left_alone(capsys: pytest.CaptureFixture[str]) -> None:
    configured()
    structlog.get_logger("x").info("Created StatefulSet shop-postgres", writes=3, name="shop")
    (line,) = lines(capsys)
    assert line["event"] == "Created StatefulSet shop-postgres"
    assert line["writes"] == 3
