"""The vector dump's and index check's own logic: pg_dump's patterns and environment,
masking, and reading a plan."""

from __future__ import annotations

import pytest

from pulsebase_operator.backups import vectors


def test_table_patterns_are_quoted_so_pg_dump_reads_names_literally() -> None:
    assert vectors._pattern("public", "docs") == '"public"."docs"'
    assert vectors._pattern("media", 'Odd"Name*') == '"media"."Odd""Name*"'


def test_connection_parameters_reach_pg_dump_as_libpq_variables_only() -> None:
    env = vectors._libpq_env(
        {
            "host": "db",
            "port": 5432,
            "dbname": "app",
            "user": "u",
            "password": "pw",
            "sslmode": None,
        }
    )
    assert env["PGHOST"] == "db"
    assert env["PGPORT"] == "5432"
    assert env["PGDATABASE"] == "app"
    assert env["PGPASSWORD"] == "pw"
    assert "PGSSLMODE" not in env
    assert {k for k in env if k.startswith("PG")} == {
        "PGHOST",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGPASSWORD",
        "PGAPPNAME",
    }


def test_an_unknown_connection_parameter_is_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="service"):
        vectors._libpq_env({"host": "db", "service": "elsewhere"})


def test_masking_hides_the_password_given_and_any_password_setting() -> None:
    text = "failed: password=hunter2 and s3cret-pw appears\n again"
    masked = vectors._mask(text, {"password": "s3cret-pw", "user": "app"})
    assert masked == "failed: password=*** and *** appears again"


def test_the_indexes_a_plan_scans_are_read_from_any_node_on_that_table() -> None:
    plan = [
        {
            "Plan": {
                "Node Type": "Limit",
                "Plans": [
                    {
                        "Node Type": "Index Scan",
                        "Index Name": "docs_hnsw",
                        "Relation Name": "docs",
                    },
                    {"Node Type": "Index Scan", "Index Name": "other_pkey", "Relation Name": "x"},
                ],
            }
        }
    ]
    assert vectors._scanned_indexes(plan, table="docs") == {"docs_hnsw"}
    assert vectors._scanned_indexes(plan, table="nothing") == set()
    assert vectors._scanned_indexes(None, table="docs") == set()
