"""PostgreSQL: one short connection per probe, a few catalogue queries, and query times.

The probe connects as the monitoring user, times the connection and a `SELECT 1`, then
reads the node's role, its streaming replicas from pg_stat_replication, connection counts,
the database size and, when the extension is usable, pg_stat_statements. The user needs
the pg_monitor role: without it PostgreSQL hides replica addresses and states and the
query ids of other users' statements.

The query p95 is an approximation. pg_stat_statements keeps, per statement, a call count
and a total time, not a histogram of single calls. The probe keeps those counters in
Reading.state, and on the next probe takes each statement's mean time over the interval
(time added / calls added) and reports the 95th percentile of those means, each weighted
by its calls in the interval. A statement whose calls vary widely contributes its mean
only, so the figure understates a tail made of a few slow calls of an otherwise fast
statement. The first probe, and the first after a server restart, have no interval and
report None.

Every call is bounded: `connect_timeout` for the connection (libpq rounds anything under
2 s up to 2 s) and `statement_timeout` on the server for each query. A server that stops
answering in the middle of a query is not bounded here; `run` stops waiting for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pulsebase_operator.probes import rates
from pulsebase_operator.probes.reading import (
    AUTHENTICATION_FAILED,
    HEALTHY,
    TIMEOUT,
    UNREACHABLE,
    Reading,
    duration,
    failed,
    now,
    seconds,
)
from pulsebase_operator.probes.redaction import scrub, sentence
from pulsebase_operator.probes.targets import PostgresTarget

COMPONENT = "postgres"
APPLICATION_NAME = "pulsebase-probe"

DATABASE_MISSING = "DatabaseMissing"
TOO_MANY_CONNECTIONS = "TooManyConnections"
NOT_READY = "NotReady"
QUERY_FAILED = "QueryFailed"

# Statement key: (userid, dbid, queryid); counters: (calls, total milliseconds).
Statements = Mapping[tuple[int, int, int], tuple[int, float]]

# Phrases in libpq's messages that say why a connection was refused, checked in order.
_CONNECT_FAILURES = (
    (AUTHENTICATION_FAILED, ("authentication failed", "no password supplied", "pg_hba.conf")),
    (AUTHENTICATION_FAILED, ('role "',)),  # role "x" does not exist
    (DATABASE_MISSING, ('database "',)),  # database "x" does not exist
    (TOO_MANY_CONNECTIONS, ("too many clients", "remaining connection slots")),
    (NOT_READY, ("starting up", "shutting down", "in recovery mode", "not yet accepting")),
    (TIMEOUT, ("timeout expired",)),
)

_OVERVIEW = """
SELECT pg_is_in_recovery(),
       current_setting('max_connections')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
       pg_database_size(current_database()),
       current_setting('server_version_num')::int,
       pg_postmaster_start_time()::text,
       coalesce(host(inet_server_addr()), '')
"""
# On a replica the members are its cascading standbys, measured against the WAL it has
# received, since pg_current_wal_lsn() is refused during recovery.
_MEMBERS = """
SELECT application_name,
       host(client_addr),
       state,
       pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                ELSE pg_current_wal_lsn() END,
           replay_lsn)::bigint,
       extract(epoch FROM replay_lag)::float8
  FROM pg_stat_replication
 ORDER BY application_name, client_addr
"""
_STATEMENTS_SCHEMA = """
SELECT n.nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pg_stat_statements'
"""


@dataclass(frozen=True)
class _State:
    # The postmaster's start time and address: counters from another server process, or
    # from before a restart, are not comparable with this one's.
    server: tuple[str, str]
    statements: Statements | None  # None: not read at this probe


def blank_values(target: PostgresTarget | None = None) -> dict[str, Any]:
    return {
        "latencySeconds": None,
        "role": None,
        "members": None,
        "replicationLagBytes": None,
        "replicationLagSeconds": None,
        "connections": None,
        "maxConnections": None,
        "databaseBytes": None,
        "volumeBytes": target.volume_bytes if target is not None else None,
        "statementsAvailable": None,
        "queryP95Seconds": None,
    }


def probe(target: PostgresTarget, *, timeout: float, previous: Reading | None = None) -> Reading:
    measured_at = now()
    values = blank_values(target)
    where = f"{target.host}:{target.port}"

    def failure(reason: str, message: str, error: Exception) -> Reading:
        detail = scrub(_detail(error), secrets=(target.password,))
        return failed(
            COMPONENT,
            reason=reason,
            message=sentence(f"{message}: {detail}" if detail else message),
            measured_at=measured_at,
            values=values,
            previous=previous,
        )

    started = time.monotonic()
    try:
        conn = psycopg.connect(
            host=target.host,
            port=target.port,
            dbname=target.database,
            user=target.user,
            password=target.password,
            sslmode=target.sslmode,
            connect_timeout=max(2, math.ceil(timeout)),
            # Server-side bound on each query, so a slow catalogue never holds the probe.
            options=f"-c statement_timeout={max(1, int(timeout * 1000))}",
            application_name=APPLICATION_NAME,
            autocommit=True,
        )
    except psycopg.Error as error:
        reason = _connect_failure(error)
        return failure(reason, f"Could not connect to PostgreSQL at {where}", error)

    with conn:
        try:
            conn.execute("SELECT 1").fetchone()
            values["latencySeconds"] = seconds(time.monotonic() - started)
            server = _read_overview(conn, values)
            _read_members(conn, values)
            statements, problem = _read_statements(
                conn, database=target.database, version=server[2]
            )
        except psycopg.errors.QueryCanceled as error:
            return failure(TIMEOUT, f"PostgreSQL at {where} did not answer in time", error)
        except psycopg.Error as error:
            # OperationalError covers far more than a lost connection (SQLSTATE classes
            # 53 to 58), so the connection itself says which it was.
            if conn.broken:
                return failure(UNREACHABLE, f"Lost the connection to PostgreSQL at {where}", error)
            return failure(QUERY_FAILED, f"PostgreSQL at {where} refused a probe query", error)

    identity = (server[0], server[1])
    values["statementsAvailable"] = statements is not None
    before = previous.state if previous is not None else None
    if not isinstance(before, _State) or before.server != identity:
        before = None
    if statements is not None and before is not None and before.statements is not None:
        means = rates.interval_means(before.statements, statements)
        p95 = rates.weighted_percentile(means, 0.95)
        values["queryP95Seconds"] = seconds(p95) if p95 is not None else None
    if statements is None and before is not None:
        # Keep the last snapshot, so the next good read measures over the whole gap.
        statements = before.statements
    if problem:
        problem = scrub(problem, secrets=(target.password,))

    return Reading(
        component=COMPONENT,
        healthy=True,
        reason=HEALTHY,
        message=_summary(values, problem=problem),
        measured_at=measured_at,
        values=values,
        state=_State(server=identity, statements=statements),
    )


def _read_overview(conn: psycopg.Connection[Any], values: dict[str, Any]) -> tuple[str, str, int]:
    row = conn.execute(_OVERVIEW).fetchone()
    assert row is not None  # a SELECT without FROM returns one row
    in_recovery, max_connections, connections, database_bytes, version, started, addr = row
    values["role"] = "replica" if in_recovery else "primary"
    values["maxConnections"] = int(max_connections)
    values["connections"] = int(connections)
    values["databaseBytes"] = int(database_bytes)
    return str(started), str(addr), int(version)


def _read_members(conn: psycopg.Connection[Any], values: dict[str, Any]) -> None:
    members = []
    for name, address, state, lag_bytes, lag_seconds in conn.execute(_MEMBERS).fetchall():
        # replay_lag turns NULL once a standby has caught up and no WAL has been written
        # for a while; with nothing left to replay that lag is zero, not unknown.
        if lag_seconds is None and lag_bytes == 0:
            lag_seconds = 0.0
        members.append(
            {
                "name": name,
                "address": address,
                "role": "replica",
                "state": state,
                "lagBytes": int(lag_bytes) if lag_bytes is not None else None,
                "lagSeconds": seconds(lag_seconds) if lag_seconds is not None else None,
            }
        )
    values["members"] = members
    lag_bytes = [m["lagBytes"] for m in members if m["lagBytes"] is not None]
    lag_seconds = [m["lagSeconds"] for m in members if m["lagSeconds"] is not None]
    values["replicationLagBytes"] = max(lag_bytes) if lag_bytes else None
    values["replicationLagSeconds"] = max(lag_seconds) if lag_seconds else None


def _read_statements(
    conn: psycopg.Connection[Any], *, database: str, version: int
) -> tuple[Statements | None, str | None]:
    """The statement counters, or None and why they cannot be read."""
    row = conn.execute(_STATEMENTS_SCHEMA).fetchone()
    if row is None:
        return None, f"pg_stat_statements is not installed in database {database!r}"
    # Statements run inside functions appear a second time with toplevel false (with
    # pg_stat_statements.track = all); their time is already inside the calling statement.
    toplevel = sql.SQL(" AND toplevel") if version >= 140000 else sql.SQL("")
    query = sql.SQL(
        "SELECT userid, dbid, queryid, calls, total_exec_time"
        " FROM {}.pg_stat_statements WHERE queryid IS NOT NULL{}"
    ).format(sql.Identifier(row[0]), toplevel)
    try:
        rows = conn.execute(query).fetchall()
    except psycopg.Error as error:
        if conn.broken or isinstance(error, psycopg.errors.QueryCanceled):
            raise  # a timeout or a lost connection fails the whole probe
        # Most often "must be loaded via shared_preload_libraries", or a server older
        # than 13, whose view has no total_exec_time.
        return None, f"pg_stat_statements cannot be read: {_detail(error)}"
    statements = {
        (int(userid), int(dbid), int(queryid)): (int(calls), float(total_ms))
        for userid, dbid, queryid, calls, total_ms in rows
    }
    return statements, None


def _connect_failure(error: psycopg.Error) -> str:
    if isinstance(error, psycopg.errors.ConnectionTimeout):
        return TIMEOUT
    if error.sqlstate in ("28P01", "28000"):
        return AUTHENTICATION_FAILED
    text = str(error).lower()
    for reason, phrases in _CONNECT_FAILURES:
        if any(phrase in text for phrase in phrases):
            return reason
    return UNREACHABLE


def _detail(error: Exception) -> str:
    """The part of a libpq message that says what went wrong, without the preamble."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    # 'connection failed: connection to server at "h", port 5432 failed: FATAL:  ...'
    text = text.rpartition(" failed: ")[2] if " failed: " in text else text
    for prefix in ("FATAL:", "ERROR:"):
        text = text.removeprefix(prefix).strip()
    return text.rstrip(".")


def _summary(values: Mapping[str, Any], *, problem: str | None) -> str:
    parts = [f"PostgreSQL {values['role']} answered in {duration(values['latencySeconds'])}"]
    members = values["members"] or []
    if members:
        lag = values["replicationLagBytes"]
        behind = f", at most {lag} bytes behind" if lag is not None else ""
        parts.append(f"{len(members)} streaming replica{'s' if len(members) > 1 else ''}{behind}")
    elif values["role"] == "primary":
        parts.append("no streaming replicas")
    parts.append(f"{values['connections']} of {values['maxConnections']} connections in use")
    if problem:
        parts.append(f"query times unavailable: {problem}")
    elif values["queryP95Seconds"] is not None:
        parts.append(f"query p95 {duration(values['queryP95Seconds'])}")
    else:
        parts.append("query p95 from the next probe on")
    return sentence("; ".join(parts))
