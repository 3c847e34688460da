"""Embeddings against a real PostgreSQL 16 with pgvector: the vector tables are found,
dumped and restored row for row, and a broken index is named."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pulsebase_operator import backups
from tests.integration.servers import PG_SUPERUSER_PASSWORD, Postgres, wait_until

ROWS = 300


@dataclass
class VectorDatabase:
    """A database of its own on the pgvector server, with the extension created."""

    server: Postgres
    name: str

    def params(self, **changes: Any) -> dict[str, Any]:
        return {**self.server.conninfo(dbname=self.name), **changes}

    def execute(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.server.execute(query, params or (), dbname=self.name)


def new_database(server: Postgres) -> VectorDatabase:
    name = f"vectors_{uuid.uuid4().hex[:8]}"
    # template0: nothing another test created in template1 comes along.
    server.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    return VectorDatabase(server=server, name=name)


@pytest.fixture
def vector_db(pgvector_server: Postgres) -> Iterator[VectorDatabase]:
    db = new_database(pgvector_server)
    db.execute("CREATE EXTENSION vector")
    try:
        yield db
    finally:
        pgvector_server.execute(f"DROP DATABASE {db.name} WITH (FORCE)")


def add_embeddings(db: VectorDatabase) -> None:
    """Two tables with embeddings, indexed by HNSW (L2) and IVFFlat (cosine), in two
    schemas, and one table that held a vector column and dropped it. The `WHERE g > 0`
    ties each array to its row, so that every row gets random values of its own."""
    db.execute(
        "CREATE TABLE docs (id bigserial PRIMARY KEY, title text NOT NULL,"
        " embedding vector(8) NOT NULL)"
    )
    db.execute(
        "INSERT INTO docs (title, embedding)"
        " SELECT 'doc ' || g, array(SELECT random() FROM generate_series(1, 8) WHERE g > 0)"
        "::vector FROM generate_series(1, %s) g",
        [ROWS],
    )
    db.execute("CREATE INDEX docs_embedding_hnsw ON docs USING hnsw (embedding vector_l2_ops)")

    db.execute("CREATE SCHEMA media")
    db.execute('CREATE TABLE media."Images" (id int PRIMARY KEY, v vector(4))')
    db.execute(
        'INSERT INTO media."Images" SELECT g,'
        " array(SELECT random() - 0.5 FROM generate_series(1, 4) WHERE g > 0)::vector"
        " FROM generate_series(1, %s) g",
        [ROWS],
    )
    db.execute(
        'CREATE INDEX images_v_ivfflat ON media."Images"'
        " USING ivfflat (v vector_cosine_ops) WITH (lists = 10)"
    )

    db.execute("CREATE TABLE notes (id int PRIMARY KEY, body text, draft vector(3))")
    db.execute("ALTER TABLE notes DROP COLUMN draft")
    db.execute("INSERT INTO notes VALUES (1, 'no embeddings here')")


def run_tool(server: Postgres, tool: str, *args: str) -> None:
    result = subprocess.run(
        [
            str(server.bindir / tool),
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            *args,
        ],
        env={**os.environ, "PGPASSWORD": PG_SUPERUSER_PASSWORD},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{tool} failed: {result.stderr}"


def test_the_pgvector_server_creates_the_extension_and_builds_hnsw(
    vector_db: VectorDatabase,
) -> None:
    version = vector_db.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    server = vector_db.execute("SHOW server_version")
    vector_db.execute("CREATE TABLE t (v vector(3))")
    vector_db.execute("INSERT INTO t VALUES ('[1,2,3]'), ('[4,5,6]')")
    vector_db.execute("CREATE INDEX t_v ON t USING hnsw (v vector_l2_ops)")
    nearest = vector_db.execute("SELECT v::text FROM t ORDER BY v <-> '[4,5,7]' LIMIT 1")
    assert version and nearest == [("[4,5,6]",)]
    print(f"\nPostgreSQL {server[0][0]}, pgvector {version[0][0]}")


def test_vector_tables_are_exactly_those_with_a_vector_column(vector_db: VectorDatabase) -> None:
    add_embeddings(vector_db)

    assert backups.vector_tables(vector_db.params()) == [("media", "Images"), ("public", "docs")]


def test_dumped_vector_tables_restore_into_a_new_database_row_for_row(
    vector_db: VectorDatabase, tmp_path: Path
) -> None:
    add_embeddings(vector_db)
    server = vector_db.server
    out = tmp_path / "vectors.dump"

    started = time.monotonic()
    dumped = backups.dump_vector_tables(
        vector_db.params(), out_path=out, pg_dump=str(server.bindir / "pg_dump")
    )
    dump_seconds = time.monotonic() - started
    assert dumped == [("media", "Images"), ("public", "docs")]
    assert out.stat().st_size > 0
    assert not out.with_name(out.name + ".partial").exists()

    # A database with no extension and no tables; the dump brings the extension itself,
    # but not schemas other than the extension's, which the restore side creates.
    fresh = new_database(server)
    try:
        fresh.execute("CREATE SCHEMA media")
        started = time.monotonic()
        run_tool(server, "pg_restore", "--exit-on-error", "--no-owner", "-d", fresh.name, str(out))
        restore_seconds = time.monotonic() - started

        for count in ("SELECT count(*) FROM docs", 'SELECT count(*) FROM media."Images"'):
            assert fresh.execute(count) == vector_db.execute(count) == [(ROWS,)]
        # Every embedding comes back exactly, digit for digit.
        for query in (
            "SELECT id, title, embedding::text FROM docs ORDER BY id",
            'SELECT id, v::text FROM media."Images" ORDER BY id',
        ):
            assert fresh.execute(query) == vector_db.execute(query)
        tables = fresh.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace::regnamespace::text IN ('public', 'media') ORDER BY 1"
        )
        assert tables == [("Images",), ("docs",)], "only the vector tables were dumped"
        # The sequence came along, so new rows do not collide with restored ones.
        fresh.execute("INSERT INTO docs (title, embedding) VALUES ('new', '[0,0,0,0,0,0,0,0]')")

        # The indexes were rebuilt by the restore and answer at once.
        checks = backups.check_vector_indexes(fresh.params(), wait=30)
        assert [(c.name, c.ok) for c in checks] == [
            ("images_v_ivfflat", True),
            ("docs_embedding_hnsw", True),
        ]
    finally:
        server.execute(f"DROP DATABASE {fresh.name} WITH (FORCE)")
    print(
        f"\ndump of {2 * ROWS} embeddings {dump_seconds:.2f} s ({out.stat().st_size} bytes),"
        f" restore {restore_seconds:.2f} s"
    )


def test_a_database_without_vector_tables_writes_no_dump(
    vector_db: VectorDatabase, tmp_path: Path
) -> None:
    out = tmp_path / "vectors.dump"
    pg_dump = str(vector_db.server.bindir / "pg_dump")

    assert backups.dump_vector_tables(vector_db.params(), out_path=out, pg_dump=pg_dump) == []
    assert not out.exists()


def test_both_vector_indexes_are_valid_and_used(vector_db: VectorDatabase) -> None:
    add_embeddings(vector_db)

    checks = backups.check_vector_indexes(vector_db.params())

    assert [(c.schema, c.table, c.name, c.method) for c in checks] == [
        ("media", "Images", "images_v_ivfflat", "ivfflat"),
        ("public", "docs", "docs_embedding_hnsw", "hnsw"),
    ]
    for check in checks:
        assert check.ok, check
        assert (check.valid, check.ready, check.used, check.reason) == (True, True, True, "")
        assert check.usable_after is not None and check.usable_after >= 0
        assert check.query_seconds is not None
    print("\n" + ", ".join(f"{c.name} usable after {c.usable_after:.3f} s" for c in checks))


def test_an_index_marked_invalid_is_reported_by_name(vector_db: VectorDatabase) -> None:
    add_embeddings(vector_db)
    vector_db.execute(
        "CREATE INDEX docs_embedding_spare ON docs USING hnsw (embedding vector_l2_ops)"
    )
    vector_db.execute(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'docs_embedding_spare'::regclass"
    )

    started = time.monotonic()
    checks = {c.name: c for c in backups.check_vector_indexes(vector_db.params(), wait=1.5)}
    waited = time.monotonic() - started

    broken = checks["docs_embedding_spare"]
    assert not broken.ok
    assert (broken.valid, broken.ready, broken.used) == (False, True, False)
    assert broken.usable_after is None
    assert broken.reason.startswith("not valid")
    # The others still pass, and the check waited for the broken one before giving up.
    assert checks["docs_embedding_hnsw"].ok and checks["images_v_ivfflat"].ok
    assert waited >= 1.5


def test_a_failed_concurrent_build_leaves_an_index_reported_invalid(
    vector_db: VectorDatabase,
) -> None:
    # HNSW needs declared dimensions; the concurrent build fails after the index was
    # entered in the catalog, which leaves it there, invalid.
    vector_db.execute("CREATE TABLE loose (v vector)")
    vector_db.execute("INSERT INTO loose VALUES ('[1,2]'), ('[1,2,3]')")
    with pytest.raises(psycopg.Error, match="dimensions"):
        vector_db.execute("CREATE INDEX CONCURRENTLY loose_v ON loose USING hnsw (v vector_l2_ops)")

    [check] = backups.check_vector_indexes(vector_db.params())

    assert (check.name, check.ok, check.valid) == ("loose_v", False, False)
    assert "not valid" in check.reason


def test_an_index_still_being_built_is_waited_for_and_timed(vector_db: VectorDatabase) -> None:
    add_embeddings(vector_db)
    # An open write on the table holds the concurrent build in its wait for writers,
    # with the index already in the catalog, neither ready nor valid.
    holder = psycopg.connect(**vector_db.params())
    holder.execute("INSERT INTO docs (title, embedding) VALUES ('held', '[1,1,1,1,1,1,1,1]')")
    failures: list[BaseException] = []

    def build() -> None:
        try:
            vector_db.execute(
                "CREATE INDEX CONCURRENTLY docs_embedding_late ON docs"
                " USING hnsw (embedding vector_l2_ops)"
            )
        except BaseException as error:
            failures.append(error)

    builder = threading.Thread(target=build, daemon=True)
    builder.start()
    try:
        wait_until(
            lambda: bool(
                vector_db.execute(
                    "SELECT 1 FROM pg_stat_progress_create_index"
                    " WHERE index_relid = 'docs_embedding_late'::regclass"
                )
            ),
            "the concurrent build to wait for the open write",
        )
        first = {c.name: c for c in backups.check_vector_indexes(vector_db.params())}
        assert not first["docs_embedding_late"].ok
        assert "under way" in first["docs_embedding_late"].reason

        release = threading.Timer(1.0, holder.commit)
        release.start()
        checks = backups.check_vector_indexes(vector_db.params(), wait=30, poll_interval=0.2)
        release.join()
    finally:
        holder.close()
        builder.join(timeout=30)
    assert not failures, failures

    late = {c.name: c for c in checks}["docs_embedding_late"]
    assert late.ok, late
    assert late.usable_after is not None and 1.0 <= late.usable_after < 30
    print(f"\na concurrently built index was usable after {late.usable_after:.2f} s")


def test_a_refused_connection_names_the_step_and_not_the_password(
    vector_db: VectorDatabase,
) -> None:
    wrong = "wrong-password-7315"

    with pytest.raises(backups.BackupError) as caught:
        backups.vector_tables(vector_db.params(password=wrong))

    assert caught.value.step == "list vector tables"
    assert "password authentication failed" in caught.value.reason
    assert wrong not in str(caught.value)


def test_a_dump_past_its_deadline_is_stopped_and_leaves_no_file(
    vector_db: VectorDatabase, tmp_path: Path
) -> None:
    add_embeddings(vector_db)
    out = tmp_path / "vectors.dump"

    with pytest.raises(backups.BackupError) as caught:
        backups.dump_vector_tables(
            vector_db.params(),
            out_path=out,
            pg_dump=str(vector_db.server.bindir / "pg_dump"),
            timeout=0.01,
        )

    assert caught.value.step == "dump vector tables"
    assert caught.value.timed_out
    assert not out.exists()
    assert not out.with_name(out.name + ".partial").exists()
