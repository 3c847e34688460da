"""Fixtures every suite may use: the local control plane and its audit-log helpers, and
the real dependency servers of tests/integration (PostgreSQL, Redis, S3, HTTP)."""

pytest_plugins = [
    "tests.support.fixtures",
    "tests.integration.servers",
    "tests.integration.backupbed",
]
