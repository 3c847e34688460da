"""The HTTP probe against a small real server, and run() with one endpoint that hangs."""

from __future__ import annotations

import time

from pulsebase_operator import probes
from pulsebase_operator.probes import HttpTarget, http
from tests.integration.servers import HttpServer, free_port


def test_a_2xx_answer_is_healthy(http_server: HttpServer) -> None:
    reading = http.probe(HttpTarget(url=http_server.url("/ok")), timeout=2)

    assert (reading.component, reading.healthy, reading.reason) == ("api", True, "Healthy")
    assert reading.values["statusCode"] == 200
    assert reading.values["latencySeconds"] > 0


def test_a_503_is_a_server_error(http_server: HttpServer) -> None:
    reading = http.probe(HttpTarget(url=http_server.url("/down")), timeout=2)

    assert (reading.healthy, reading.reason) == (False, "ServerError")
    assert reading.values["statusCode"] == 503
    assert "503" in reading.message


def test_an_answer_slower_than_the_timeout_is_a_timeout(http_server: HttpServer) -> None:
    started = time.monotonic()
    reading = http.probe(HttpTarget(url=http_server.url("/slow")), timeout=0.5)

    assert (reading.healthy, reading.reason) == (False, "Timeout")
    assert reading.values == {"latencySeconds": None, "statusCode": None}
    assert time.monotonic() - started < 5


def test_nothing_listening_is_unreachable() -> None:
    reading = http.probe(HttpTarget(url=f"http://127.0.0.1:{free_port()}/"), timeout=1)

    assert (reading.healthy, reading.reason) == (False, "Unreachable")


def test_the_url_in_messages_carries_no_query_string(http_server: HttpServer) -> None:
    reading = http.probe(HttpTarget(url=http_server.url("/down?token=abc123")), timeout=2)

    assert "abc123" not in reading.message


def test_run_returns_every_reading_while_one_endpoint_still_trickles(
    http_server: HttpServer,
) -> None:
    # /drip sends a byte every 0.2 s, so the client's socket timeout never fires and the
    # probe thread keeps going; only run()'s own deadline ends the wait for it.
    targets = {
        "api": HttpTarget(url=http_server.url("/drip")),
        "cdn": HttpTarget(url=http_server.url("/ok")),
    }

    started = time.monotonic()
    readings = probes.run(targets, timeout=1)
    took = time.monotonic() - started

    assert took < 10  # the trickle goes on for 30 s
    assert (readings["api"].healthy, readings["api"].reason) == (False, "Timeout")
    assert (readings["cdn"].component, readings["cdn"].healthy) == ("cdn", True)
