"""Pytest glue for the local control plane: the `control_plane` fixture and audit-log helpers.

tests/conftest.py registers this module as a plugin, so every test can ask for
`control_plane`.

Set PULSEBASE_KUBECONFIG_REUSE=DIR to run against a cluster already started with
`python -m tests.support.localcluster up --state-dir DIR` (fast edit-test loops); otherwise
one cluster is started per test session in a temporary folder and stopped at the end
(PULSEBASE_KEEP_STATE=1 keeps that folder, with its logs and audit log, for a post-mortem).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.localcluster import ClusterError, LocalCluster, resolve_bin_dir

REUSE_ENV = "PULSEBASE_KUBECONFIG_REUSE"
KEEP_ENV = "PULSEBASE_KEEP_STATE"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@pytest.fixture(scope="session")
def control_plane() -> Iterator[LocalCluster]:
    """A ready control plane; `.kubeconfig`, `.operator_kubeconfig`, `.audit_log`,
    `.state_dir` and `.kubectl(*args)` are what tests use."""
    reuse = os.environ.get(REUSE_ENV)
    if reuse:
        yield _attach(Path(reuse))
        return
    cluster = _start(Path(tempfile.mkdtemp(prefix="pulsebase-control-plane-")))
    try:
        yield cluster
    finally:
        cluster.stop()
        if not os.environ.get(KEEP_ENV):
            shutil.rmtree(cluster.state_dir, ignore_errors=True)


def _start(state_dir: Path) -> LocalCluster:
    cluster = LocalCluster(state_dir, _bin_dir())
    try:
        cluster.start()
    except ClusterError as err:
        # start() already stopped what it had started; the folder stays for its logs.
        problem = f"{err}\nstate and logs kept in {state_dir}"
    else:
        return cluster
    pytest.fail(problem, pytrace=False)


def _bin_dir() -> Path:
    # pytest.fail outside the except block, so the report shows the message once.
    try:
        return resolve_bin_dir(build=False)
    except ClusterError as err:
        problem = str(err)
    pytest.fail(problem, pytrace=False)


def _attach(state_dir: Path) -> LocalCluster:
    try:
        cluster = LocalCluster.attach(state_dir)
    except ClusterError as err:
        problem = str(err)
    else:
        if cluster.is_ready():
            return cluster
        problem = (
            f"the cluster in {state_dir} is not ready; "
            "see `python -m tests.support.localcluster status`"
        )
    pytest.fail(f"{REUSE_ENV}: {problem}", pytrace=False)


def audit_lines(audit_log: Path | str) -> int:
    """How many complete lines the audit log has now: a bookmark for `count_writes`."""
    try:
        with open(audit_log, "rb") as fh:
            return sum(1 for line in fh if line.endswith(b"\n"))
    except FileNotFoundError:
        return 0


def count_writes(
    audit_log: Path | str, user: str, since_line: int = 0, namespace: str | None = None
) -> list[dict[str, Any]]:
    """The audit events of the write requests `user` made after line `since_line`.

    One event per request: the policy omits RequestReceived, and only ResponseComplete
    (or Panic) events are kept, so watches' ResponseStarted events never count twice."""
    events = []
    with open(audit_log, "rb") as fh:
        for number, line in enumerate(fh):
            # The apiserver may be halfway through writing the last line: skip it.
            if number < since_line or not line.endswith(b"\n"):
                continue
            event = json.loads(line)
            if (
                event.get("verb") in WRITE_VERBS
                and event.get("stage") in ("ResponseComplete", "Panic")
                and event.get("user", {}).get("username") == user
                and namespace in (None, event.get("objectRef", {}).get("namespace"))
            ):
                events.append(event)
    return events
