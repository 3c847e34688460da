"""Embeddings: find the tables that hold pgvector columns, dump exactly those with the
server's own pg_dump, and check that their HNSW and IVFFlat indexes answer.

A physical backup restores embeddings too, but only into a cluster of the same major
version; a logical dump of the vector tables restores into any newer server and spares
re-embedding the rows, which costs far more than storing them. The dump carries the
tables (with their sequences, constraints and indexes) and `CREATE EXTENSION IF NOT
EXISTS vector`, and nothing else: schemas other than the extension's, and roles named
as owners, must exist where it is restored (or use `pg_restore --no-owner`).

An index is usable when pg_index says it is valid and ready and the planner picks it
for a nearest-neighbour query with sequential scans switched off; the check runs that
query too. The connection needs SELECT on the tables it checks; the dump needs a role
that can read them all.

Every step is bounded: `connect_timeout` and a `statement_timeout` for the catalog and
the checks, a deadline for pg_dump, past which its process group is stopped. A failure
raises BackupError naming the step, with the password and anything shaped like a secret
masked. The password reaches pg_dump in its environment (PGPASSWORD), never in its
arguments, which any user on the host can read.

Tested against PostgreSQL 16.2 with pgvector 0.6.2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pulsebase_operator.backups import process
from pulsebase_operator.backups.errors import BackupError
from pulsebase_operator.backups.pgbackrest import MASK, scrub

Table = tuple[str, str]  # (schema, table)

EXTENSION = "vector"
INDEX_METHODS = ("hnsw", "ivfflat")
APPLICATION_NAME = "pulsebase-backup"
NEIGHBOURS = 5

# Deadlines in seconds. The catalog answers at once; a nearest-neighbour query through a
# healthy index takes milliseconds; a dump of many millions of embeddings takes hours.
CATALOG_TIMEOUT = 60.0
CHECK_TIMEOUT = 60.0
DUMP_TIMEOUT = 6 * 3600.0

# libpq's keywords and the variables that carry them to pg_dump. A keyword outside this
# list is refused rather than dropped, so that pg_dump never reaches another server
# than the queries did.
_LIBPQ_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}
_SECRET_NAME = re.compile(r"(?i)(key|secret|pass|token)")
_PASSWORD_SETTING = re.compile(r"(?i)\b(password\s*=\s*)\S+")
# pg_dump's own complaints: "pg_dump: error: query failed: ...".
_DUMP_ERROR = re.compile(r"\berror: .*$", re.MULTILINE)

# Columns of pgvector's own type in user tables and partitions, never in the catalogs.
# Materialized views are left out: their dump holds a query, not the rows.
_VECTOR_TABLES = """
SELECT DISTINCT n.nspname, c.relname
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_depend d
    ON d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid
 WHERE t.typname = 'vector'
   AND e.extname = %(extension)s
   AND a.attnum > 0
   AND NOT a.attisdropped
   AND c.relkind IN ('r', 'p')
   AND n.nspname <> 'information_schema'
   AND n.nspname NOT LIKE 'pg\\_%%'
 ORDER BY 1, 2
"""

# Every HNSW and IVFFlat index with what a query through it needs: the indexed column or
# expression, the ordering operator of its operator class and that operator's right-hand
# type, and the column's declared dimensions; and whether a build of it is under way.
# Indexes of partitioned tables (relkind 'I') hold no data; the partitions' own indexes
# are checked instead.
_VECTOR_INDEXES = """
SELECT i.indexrelid::bigint, n.nspname, t.relname, c.relname, am.amname,
       i.indisvalid, i.indisready,
       pg_get_indexdef(i.indexrelid, 1, false),
       op.nspname, op.oprname, format_type(op.amoprighttype, NULL),
       coalesce(col.atttypmod, -1),
       EXISTS (SELECT FROM pg_stat_progress_create_index p
                WHERE p.index_relid = i.indexrelid)
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_am am ON am.oid = c.relam
  JOIN pg_opclass oc ON oc.oid = i.indclass[0]
  LEFT JOIN pg_attribute col ON col.attrelid = i.indrelid AND col.attnum = i.indkey[0]
  LEFT JOIN LATERAL (
        SELECT on_.nspname, o.oprname, ao.amoprighttype
          FROM pg_amop ao
          JOIN pg_operator o ON o.oid = ao.amopopr
          JOIN pg_namespace on_ ON on_.oid = o.oprnamespace
         WHERE ao.amopfamily = oc.opcfamily AND ao.amoppurpose = 'o'
         ORDER BY ao.amopstrategy
         LIMIT 1) op ON true
 WHERE am.amname = ANY(%(methods)s)
   AND c.relkind = 'i'
 ORDER BY 2, 3, 4
"""


@dataclasses.dataclass(frozen=True)
class _IndexRow:
    """One row of _VECTOR_INDEXES, in its order."""

    oid: int
    schema: str
    table: str
    name: str
    method: str
    valid: bool
    ready: bool
    key: str
    op_schema: str | None
    op_name: str | None
    op_type: str | None
    dims: int
    building: bool


@dataclasses.dataclass(frozen=True)
class IndexCheck:
    """What the check found for one index.

    `used`: the planner chose it for a nearest-neighbour query with sequential scans off,
    and that query ran. `usable_after`: seconds from the start of the check until the
    index was valid, ready and used (None: not within the wait). `reason` says why it
    is not usable, and is empty when it is.
    """

    schema: str
    table: str
    name: str
    method: str
    valid: bool
    ready: bool
    used: bool
    usable_after: float | None
    query_seconds: float | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.valid and self.ready and self.used


def vector_tables(
    conn_params: Mapping[str, Any], *, timeout: float = CATALOG_TIMEOUT
) -> list[Table]:
    """Every table with a column of pgvector's `vector` type, as (schema, table), sorted."""
    step = "list vector tables"
    with _connect(conn_params, step=step, timeout=timeout) as conn:
        try:
            rows = conn.execute(_VECTOR_TABLES, {"extension": EXTENSION}).fetchall()
        except psycopg.Error as error:
            raise _failed(step, error, conn_params) from None
    return [(str(schema), str(table)) for schema, table in rows]


def dump_vector_tables(
    conn_params: Mapping[str, Any],
    *,
    out_path: str | Path,
    pg_dump: str = "pg_dump",
    timeout: float = DUMP_TIMEOUT,
) -> list[Table]:
    """Dump the vector tables into `out_path` (pg_dump's custom format); the tables dumped.

    `pg_dump` is the binary to run, of the server's major version or newer. With no
    vector table there is nothing to dump: no file is written and the list is empty.
    The file appears only once pg_dump has succeeded, so a failed or stopped dump never
    leaves a partial one under the final name.
    """
    env = _libpq_env(conn_params)
    tables = vector_tables(conn_params)
    if not tables:
        return []
    target = Path(out_path)
    partial = target.with_name(target.name + ".partial")
    args = dump_arguments(tables, pg_dump=pg_dump, out_path=partial)
    try:
        _run_dump(args, env=env, timeout=timeout, conn_params=conn_params)
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return tables


def dump_arguments(
    tables: Iterable[Table], *, pg_dump: str = "pg_dump", out_path: str | Path | None = None
) -> list[str]:
    """The pg_dump command line for these tables, writing to `out_path` (None: stdout).

    The connection is not in it: it comes from PG* variables, or from the arguments a
    caller adds before the table list is read by pg_dump (options may come in any order).
    """
    args = [
        pg_dump,
        "--format=custom",
        "--no-password",
        # A table dropped since the catalog was read fails the dump instead of vanishing.
        "--strict-names",
        # Without the extension a restore into a new database has no vector type.
        f"--extension={EXTENSION}",
    ]
    if out_path is not None:
        args.append(f"--file={out_path}")
    return args + [f"--table={_pattern(schema, table)}" for schema, table in tables]


def dump_failure(err: str, *, returncode: int, conn_params: Mapping[str, Any]) -> str:
    """Why pg_dump failed, from what it wrote to stderr: its error lines, secrets masked."""
    errors = [line.strip() for line in _DUMP_ERROR.findall(err)]
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    reason = " ".join(errors) or (lines[-1] if lines else "")
    return _mask(reason or f"pg_dump exited with {returncode}", conn_params)


def check_vector_indexes(
    conn_params: Mapping[str, Any],
    *,
    wait: float = 0.0,
    poll_interval: float = 1.0,
    timeout: float = CHECK_TIMEOUT,
) -> list[IndexCheck]:
    """Check every HNSW and IVFFlat index; one result each, by schema, table and name.

    With `wait` above zero an index not yet usable (still being built, say after a
    restore) is looked at again every `poll_interval` seconds until it is usable or
    `wait` has passed since the start; with the default each index is looked at once.
    An index that stays invalid (a failed CREATE INDEX CONCURRENTLY) is reported, not
    raised; only a catalog that cannot be read or a lost connection raise BackupError.
    """
    started = time.monotonic()
    deadline = started + wait
    results: dict[int, IndexCheck] = {}
    with _connect(conn_params, step="check vector indexes", timeout=timeout) as conn:
        while True:
            try:
                rows = conn.execute(_VECTOR_INDEXES, {"methods": list(INDEX_METHODS)}).fetchall()
            except psycopg.Error as error:
                raise _failed("list vector indexes", error, conn_params) from None
            pending = [row for row in rows if not _usable(results.get(int(row[0])))]
            for row in pending:
                check = _check_index(conn, row=row, conn_params=conn_params)
                if check.ok:
                    check = _replace(check, usable_after=round(time.monotonic() - started, 3))
                results[int(row[0])] = check
            present = {int(row[0]) for row in rows}
            # An index dropped while we waited is no longer ours to report.
            results = {oid: check for oid, check in results.items() if oid in present}
            if all(check.ok for check in results.values()) or time.monotonic() >= deadline:
                break
            time.sleep(max(0.0, min(poll_interval, deadline - time.monotonic())))
    return sorted(results.values(), key=lambda c: (c.schema, c.table, c.name))


# --- one index ------------------------------------------------------------------------


def _check_index(
    conn: psycopg.Connection[Any], *, row: tuple[Any, ...], conn_params: Mapping[str, Any]
) -> IndexCheck:
    index = _IndexRow(*row)
    found = IndexCheck(
        schema=index.schema,
        table=index.table,
        name=index.name,
        method=index.method,
        valid=bool(index.valid),
        ready=bool(index.ready),
        used=False,
        usable_after=None,
        query_seconds=None,
        reason="",
    )
    # The planner ignores an index that is not valid, so no query can show more. A
    # concurrent build leaves it invalid (and not even ready, when the build itself
    # failed) both while it runs and after it failed; only the progress view tells which.
    if index.building:
        return _replace(found, reason="not valid yet: a concurrent build is under way")
    if not (index.valid and index.ready):
        return _replace(
            found,
            reason="not valid: left by a failed or cancelled build"
            " (REINDEX INDEX CONCURRENTLY it, or drop it)",
        )
    if index.op_schema is None or index.op_name is None or index.op_type is None:
        return _replace(found, reason="its operator class has no ordering operator")

    relation = sql.Identifier(index.schema, index.table)
    # Catalog text deparsed by the server itself (the indexed column or expression, an
    # operator, a type name), so it is safe to embed as SQL. The operator is qualified:
    # the extension's schema need not be on our search_path.
    column = sql.SQL("({})").format(sql.SQL(index.key))
    operator = sql.SQL("OPERATOR({}.{})").format(
        sql.Identifier(index.op_schema), sql.SQL(index.op_name)
    )
    query = sql.SQL("SELECT 1 FROM {relation} ORDER BY {column} {operator} %s::{type}").format(
        relation=relation, column=column, operator=operator, type=sql.SQL(index.op_type)
    ) + sql.SQL(" LIMIT {}").format(sql.Literal(NEIGHBOURS))
    try:
        probe = _query_vector(conn, relation=relation, column=column, dims=int(index.dims))
        if probe is None:
            return _replace(
                found,
                reason="no vector to query with: the table is empty and the column"
                " declares no dimensions",
            )
        with conn.transaction():
            # With sequential scans off the plan says whether the index can serve the
            # query at all, not whether it is cheaper than reading a small table.
            conn.execute("SET LOCAL enable_seqscan = off")
            plan_row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + query, [probe]).fetchone()
            began = time.monotonic()
            conn.execute(query, [probe]).fetchall()
            query_seconds = time.monotonic() - began
    except psycopg.Error as error:
        if conn.broken:
            raise _failed(f"check index {index.schema}.{index.name}", error, conn_params) from None
        reason = _error_text(error, conn_params)
        return _replace(found, reason=f"the nearest-neighbour query failed: {reason}")

    scanned = _scanned_indexes(plan_row[0] if plan_row else None, table=index.table)
    if index.name in scanned:
        return _replace(found, used=True, query_seconds=query_seconds)
    # Two vector indexes on one column and operator: the planner picks one, and the
    # other cannot be shown to serve queries without dropping the first.
    chosen = f" (it chose {', '.join(sorted(scanned))})" if scanned else ""
    return _replace(
        found,
        query_seconds=query_seconds,
        reason=f"the planner does not use it for a nearest-neighbour query{chosen}",
    )


def _query_vector(
    conn: psycopg.Connection[Any], *, relation: sql.Composable, column: sql.Composable, dims: int
) -> str | None:
    """A vector to search for, as text: one from the table, else zeros of its dimensions."""
    sample = conn.execute(
        sql.SQL("SELECT {column}::text FROM {relation} WHERE {column} IS NOT NULL LIMIT 1").format(
            column=column, relation=relation
        )
    ).fetchone()
    if sample is not None:
        return str(sample[0])
    # vector(n) keeps n as its type modifier; -1 means no declared dimensions.
    if dims > 0:
        return "[" + ",".join("0" for _ in range(dims)) + "]"
    return None


def _scanned_indexes(plan: object, *, table: str) -> set[str]:
    """The indexes of this table that nodes of an EXPLAIN (FORMAT JSON) plan scan."""
    if isinstance(plan, list):
        return set().union(*(_scanned_indexes(node, table=table) for node in plan))
    if not isinstance(plan, dict):
        return set()
    found = set()
    if "Index Name" in plan and plan.get("Relation Name") == table:
        found.add(str(plan["Index Name"]))
    for node in [plan.get("Plan"), *(plan.get("Plans") or [])]:
        found |= _scanned_indexes(node, table=table)
    return found


def _usable(check: IndexCheck | None) -> bool:
    return check is not None and check.ok


def _replace(check: IndexCheck, **changes: Any) -> IndexCheck:
    return dataclasses.replace(check, **changes)


# --- connections and pg_dump ---------------------------------------------------------


@contextlib.contextmanager
def _connect(
    conn_params: Mapping[str, Any], *, step: str, timeout: float
) -> Iterator[psycopg.Connection[Any]]:
    params = {"application_name": APPLICATION_NAME, **conn_params}
    # libpq rounds a connect_timeout under 2 s up to 2 s anyway.
    params.setdefault("connect_timeout", max(2, math.ceil(timeout)))
    try:
        conn = psycopg.connect(**params, autocommit=True)
    except psycopg.Error as error:
        raise _failed(step, error, conn_params) from None
    with conn:
        try:
            # A server-side bound on every query, so a locked catalog cannot hold us.
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                [f"{max(1, int(timeout * 1000))}ms"],
            )
        except psycopg.Error as error:
            raise _failed(step, error, conn_params) from None
        yield conn


def _run_dump(
    args: list[str], *, env: dict[str, str], timeout: float, conn_params: Mapping[str, Any]
) -> None:
    step = "dump vector tables"
    done = process.run(args, step=step, env=env, timeout=timeout)
    if done.returncode != 0:
        reason = dump_failure(
            f"{done.err}\n{done.out}", returncode=done.returncode, conn_params=conn_params
        )
        raise BackupError(step=step, reason=reason)


def _libpq_env(conn_params: Mapping[str, Any]) -> dict[str, str]:
    unknown = sorted(set(conn_params) - set(_LIBPQ_ENV))
    if unknown:
        raise ValueError(f"connection parameters pg_dump cannot take: {', '.join(unknown)}")
    # Nothing else from our own environment: a stray PGSERVICE or PGHOST there could
    # point pg_dump at another server than the one whose tables were listed.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    env.update({_LIBPQ_ENV[k]: str(v) for k, v in conn_params.items() if v is not None})
    env.setdefault("PGAPPNAME", APPLICATION_NAME)
    return env


def _pattern(schema: str, table: str) -> str:
    # Double quotes make pg_dump read a name literally (case, dots, * and ?); a double
    # quote inside is written twice.
    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return f"{quoted(schema)}.{quoted(table)}"


def _failed(step: str, error: psycopg.Error, conn_params: Mapping[str, Any]) -> BackupError:
    return BackupError(step=step, reason=_error_text(error, conn_params))


def _error_text(error: psycopg.Error, conn_params: Mapping[str, Any]) -> str:
    primary = error.diag.message_primary
    return _mask(primary or str(error) or type(error).__name__, conn_params)


def _mask(text: str, conn_params: Mapping[str, Any]) -> str:
    text = _PASSWORD_SETTING.sub(rf"\1{MASK}", text)
    return scrub(text, secrets=_secrets(conn_params))


def _secrets(conn_params: Mapping[str, Any]) -> Iterable[str]:
    return [str(v) for k, v in conn_params.items() if v and _SECRET_NAME.search(k)]
