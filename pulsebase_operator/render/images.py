"""Default images of every component, pinned by tag; each spec may override them.

The postgres image bundles Patroni, PostgreSQL, pgvector and pgBackRest.
"""

from __future__ import annotations

from pulsebase_operator import __version__


def api(version: str) -> str:
    """The release image; build metadata's '+', not allowed in a tag, becomes '_' as OCI
    registries do for Helm chart versions (2.4.1+build.7 is tagged 2.4.1_build.7)."""
    return f"ghcr.io/pulsebase/pulsebase:{version.replace('+', '_')}"


# The program in that image. A container's `command` replaces the image's entrypoint, and
# the image does not put its venv on PATH, so jobs name the program by its full path.
OPERATOR_COMMAND = "/venv/bin/pulsebase-operator"


def operator() -> str:
    """This operator's own image, which the backup and drill jobs run: the same release
    as the operator that renders them, so the job and its renderer agree."""
    return f"ghcr.io/pulsebase/pulsebase-operator:{__version__}"


def postgres(major: int) -> str:
    return f"ghcr.io/pulsebase/postgres-patroni:{major}"


def redis() -> str:
    return "docker.io/valkey/valkey:8.0"


def objectstore() -> str:
    return "docker.io/chrislusf/seaweedfs:3.80"


def edge() -> str:
    return "docker.io/nginxinc/nginx-unprivileged:1.27"
