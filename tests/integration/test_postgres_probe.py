"""The PostgreSQL probe against a real primary and its streaming replica."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from pulsebase_operator.probes import PostgresTarget, Reading, postgres
from tests.integration.servers import PROBE_PASSWORD, Postgres, PostgresPair, poll, wait_until

TIMEOUT = 2.0


def probe(target: PostgresTarget, previous: Reading | None = None) -> Reading:
    return postgres.probe(target, timeout=TIMEOUT, previous=previous)


@pytest.fixture
def primary(postgres_pair: PostgresPair) -> Postgres:
    return postgres_pair.primary


@pytest.fixture
def replica(postgres_pair: PostgresPair) -> Iterator[Postgres]:
    yield postgres_pair.replica
    # Leave the pair as found: replay running and the replica caught up.
    postgres_pair.replica.execute("SELECT pg_wal_replay_resume()")
    poll(
        lambda: probe(postgres_pair.primary.target()),
        lambda r: r.values["replicationLagBytes"] == 0,
    )


def test_the_primary_reports_its_role_and_its_replica_with_measured_lag(
    primary: Postgres, replica: Postgres
) -> None:
    reading = poll(
        lambda: probe(primary.target(volume_bytes=10 * 2**30)),
        lambda r: r.healthy and r.values["replicationLagSeconds"] is not None,
    )

    assert (reading.component, reading.reason) == ("postgres", "Healthy")
    values = reading.values
    assert values["role"] == "primary"
    assert values["latencySeconds"] > 0
    [member] = values["members"]
    assert member["name"] == replica.name
    assert (member["address"], member["role"], member["state"]) == (
        "127.0.0.1",
        "replica",
        "streaming",
    )
    assert isinstance(member["lagBytes"], int) and member["lagBytes"] >= 0
    assert isinstance(member["lagSeconds"], float) and member["lagSeconds"] >= 0
    assert values["replicationLagBytes"] == member["lagBytes"]
    assert values["databaseBytes"] > 0
    assert values["volumeBytes"] == 10 * 2**30
    assert reading.measured_at.tzinfo is not None


def test_the_replica_reports_itself_as_a_replica(replica: Postgres) -> None:
    reading = probe(replica.target())

    assert reading.healthy
    assert reading.values["role"] == "replica"
    assert reading.values["members"] == []
    assert reading.values["replicationLagBytes"] is None
    assert "replica" in reading.message


def test_byte_lag_grows_while_the_replica_stops_replaying(
    primary: Postgres, replica: Postgres
) -> None:
    replica.execute("SELECT pg_wal_replay_pause()")
    wait_until(
        lambda: replica.execute("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused",
        "replay to pause",
    )
    primary.execute("CREATE TABLE IF NOT EXISTS lag_probe (n int)")
    primary.execute("INSERT INTO lag_probe SELECT generate_series(1, 5000)")

    lagging = poll(lambda: probe(primary.target()), lambda r: r.values["replicationLagBytes"] > 0)
    primary.execute("INSERT INTO lag_probe SELECT generate_series(1, 5000)")
    more = probe(primary.target())

    assert lagging.healthy  # lag is a measurement; alerting on it is for the alert rules
    assert more.values["replicationLagBytes"] > lagging.values["replicationLagBytes"]
    assert more.values["members"][0]["lagBytes"] == more.values["replicationLagBytes"]


def test_connections_are_counted_against_max_connections(primary: Postgres) -> None:
    target = primary.target()
    extra = [
        psycopg.connect(
            host=target.host,
            port=target.port,
            dbname=target.database,
            user=target.user,
            password=target.password,
        )
        for _ in range(3)
    ]
    try:
        reading = probe(target)
    finally:
        for conn in extra:
            conn.close()

    assert reading.values["maxConnections"] == 20
    # The three above and the probe's own; a backend closed just before may linger briefly.
    assert 4 <= reading.values["connections"] <= 20
    assert f"{reading.values['connections']} of 20 connections" in reading.message


def test_query_p95_is_a_rate_between_probes(primary: Postgres) -> None:
    target = primary.target()
    first = probe(target)
    assert first.values["statementsAvailable"] is True
    assert first.values["queryP95Seconds"] is None  # no interval yet

    with psycopg.connect(
        host=target.host,
        port=target.port,
        dbname=target.database,
        user=target.user,
        password=target.password,
    ) as conn:
        for _ in range(5):
            conn.execute("SELECT pg_sleep(0.05)")
    second = probe(target, previous=first)
    quiet = probe(target, previous=second)

    assert 0.04 <= second.values["queryP95Seconds"] < 5
    # Nothing slow ran since the second probe: the sleeps count no more.
    assert quiet.values["queryP95Seconds"] < 0.04


def test_a_database_without_pg_stat_statements_says_so(primary: Postgres) -> None:
    first = probe(primary.target(database="plain"))
    second = probe(primary.target(database="plain"), previous=first)

    assert second.healthy
    assert second.values["statementsAvailable"] is False
    assert second.values["queryP95Seconds"] is None
    assert "pg_stat_statements is not installed in database 'plain'" in second.message


def test_a_wrong_password_is_an_authentication_failure_that_never_shows_the_password(
    primary: Postgres,
) -> None:
    wrong = "not-the-password-31337"
    reading = probe(primary.target(password=wrong))

    assert (reading.healthy, reading.reason) == (False, "AuthenticationFailed")
    assert "password authentication failed" in reading.message
    for secret in (wrong, PROBE_PASSWORD):
        assert secret not in reading.message
        assert secret not in repr(reading)
    assert reading.values["latencySeconds"] is None


def test_a_missing_database_is_named(primary: Postgres) -> None:
    reading = probe(primary.target(database="nowhere"))

    assert (reading.healthy, reading.reason) == (False, "DatabaseMissing")


def test_a_stopped_server_is_unreachable_at_once(postgres_server: Postgres) -> None:
    target = postgres_server.target()
    before = probe(target)
    postgres_server.stop()

    started = time.monotonic()
    reading = probe(target, previous=before)

    assert time.monotonic() - started < TIMEOUT + 3  # refused at once; loose for busy machines
    assert (reading.healthy, reading.reason) == (False, "Unreachable")
    assert "Connection refused" in reading.message
    assert reading.state is before.state  # the next good probe still has a baseline


def test_a_frozen_server_times_out_within_the_connect_timeout(postgres_server: Postgres) -> None:
    assert postgres_server.process is not None
    postgres_server.process.freeze()
    try:
        started = time.monotonic()
        reading = postgres.probe(postgres_server.target(), timeout=1)
        took = time.monotonic() - started
    finally:
        postgres_server.process.thaw()

    assert (reading.healthy, reading.reason) == (False, "Timeout")
    assert took < 2 + 3  # libpq's smallest connect timeout is 2 s; loose for busy machines


def test_without_the_preloaded_library_statements_are_unavailable(
    postgres_server: Postgres,
) -> None:
    postgres_server.stop()
    postgres_server.start("shared_preload_libraries=")

    reading = probe(postgres_server.target())

    assert reading.healthy
    assert reading.values["statementsAvailable"] is False
    assert "shared_preload_libraries" in reading.message
