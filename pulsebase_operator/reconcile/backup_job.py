"""What `pulsebase-operator backup-job` does in the backup Jobs: read the PulseBase, find
the primary by Patroni's role label, and run the backup there.

pgBackRest reads the data directory, so it runs in the primary's `postgres` container,
through the exec API (kube.exec), with the same wrapper the tests run locally
(backups.pgbackrest with a runner). The vector-table dump lists the tables over the
primary Service, runs the server's own pg_dump in the same container, and streams its
output into the backups bucket as it comes; a dump that fails leaves no object there.

Every event is one JSON line on stdout; a failure is one line naming the step, and an
exit code that says which kind of step failed (EXIT_*).
"""

from __future__ import annotations

import datetime
import io
import json
import os
import queue
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from pydantic import ValidationError

from pulsebase_operator.api import models
from pulsebase_operator.backups import job, pgbackrest, vectors
from pulsebase_operator.backups.errors import BackupError
from pulsebase_operator.kube import exec as kube_exec
from pulsebase_operator.kube.client import Kube, KubeError
from pulsebase_operator.policy import backups as backup_policy
from pulsebase_operator.policy import retention
from pulsebase_operator.render import backups as render_backups
from pulsebase_operator.render import labels, naming, objectstore, postgres

KINDS: tuple[str, ...] = (*job.JOB_KINDS, "vectors")
CONTAINER = "postgres"

# Exit codes: what failed, for a person reading `kubectl get pods` and for alerts.
EXIT_OK = 0
EXIT_BACKUP = 1  # pgBackRest or pg_dump failed, or the upload did
EXIT_SPEC = 2  # the PulseBase is missing, invalid, or has backups off
EXIT_CLUSTER = 3  # the API server refused or no primary is running
EXIT_RETENTION = 4  # the backup succeeded; planning or expiring after it failed

VECTOR_PREFIX = "vector-tables/"
# Chunks of pg_dump's output held between the exec stream and the upload.
PIPE_CHUNKS = 64


Emit = Callable[[Mapping[str, Any]], None]


def json_lines(*, name: str, namespace: str, out: IO[str] = sys.stdout) -> Emit:
    def emit(fields: Mapping[str, Any]) -> None:
        line = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "namespace": namespace,
            "name": name,
            **fields,
        }
        out.write(json.dumps(line, default=str) + "\n")
        out.flush()

    return emit


def main(
    *,
    kind: str,
    name: str,
    namespace: str,
    api_client: Any,
    emit: Emit,
    err: IO[str] = sys.stderr,
) -> int:
    def fail(code: int, message: str) -> int:
        emit({"event": "failed", "error": message, "exitCode": code})
        print(f"error: {message}", file=err)
        return code

    if kind not in KINDS:
        return fail(EXIT_SPEC, f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    kube = Kube(api_client)
    try:
        pb = read_pulsebase(kube, name=name, namespace=namespace)
        pod = find_primary(kube, name=name, namespace=namespace)
    except SpecError as error:
        return fail(EXIT_SPEC, str(error))
    except (KubeError, PrimaryError) as error:
        return fail(EXIT_CLUSTER, str(error))
    emit({"event": "primary found", "pod": pod, "kind": kind})

    in_primary = kube_exec.PodExec(api_client, namespace=namespace, pod=pod, container=CONTAINER)
    try:
        if kind == "vectors":
            dump_to_bucket(pb, in_primary=in_primary, emit=emit)
        else:
            job.run(
                stanza_in(in_primary),
                kind=kind,
                policy=backup_policy.retention_policy(pb),
                log=emit,
            )
    except job.RetentionError as error:
        return fail(EXIT_RETENTION, str(error))
    except BackupError as error:
        return fail(EXIT_BACKUP, str(error))
    emit({"event": "done", "kind": kind})
    return EXIT_OK


class SpecError(Exception):
    pass


class PrimaryError(Exception):
    pass


def read_pulsebase(kube: Kube, *, name: str, namespace: str) -> models.PulseBase:
    body = kube.get(models.API_VERSION, models.KIND, namespace, name)
    if body is None:
        raise SpecError(f"read {models.KIND} {namespace}/{name} failed: it does not exist")
    try:
        pb = models.PulseBase.from_body(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(
            f"read {models.KIND} {namespace}/{name} failed: {where}: {first['msg']}"
        ) from None
    # The read succeeded: say which of the two keeps this PulseBase from being backed up.
    if pb.spec.postgres.mode is models.Mode.EXTERNAL:
        raise SpecError(
            f"{models.KIND} {namespace}/{name} uses an external database; the operator "
            "backs up only the one it runs"
        )
    if not pb.spec.backup.enabled:
        raise SpecError(
            f"{models.KIND} {namespace}/{name} has backups disabled (spec.backup.enabled is false)"
        )
    return pb


def find_primary(kube: Kube, *, name: str, namespace: str) -> str:
    """The running pod Patroni labelled primary; PrimaryError when there is none, or two."""
    selector = ",".join(
        f"{key}={value}"
        for key, value in {
            **labels.selector(name, postgres.COMPONENT),
            postgres.ROLE_LABEL: postgres.PRIMARY,
        }.items()
    )
    pods = [
        pod
        for pod in kube.list("v1", "Pod", namespace, selector)
        if (pod.get("status") or {}).get("phase") == "Running"
        and not pod["metadata"].get("deletionTimestamp")
    ]
    names = sorted(pod["metadata"]["name"] for pod in pods)
    if not names:
        raise PrimaryError(f"find the primary failed: no running pod matches {selector}")
    # During a failover two pods can carry the label for a moment; backing up the one
    # about to be demoted would mix timelines, so wait for the next run instead.
    if len(names) > 1:
        raise PrimaryError(f"find the primary failed: {', '.join(names)} all claim it")
    return str(names[0])


def stanza_in(in_primary: kube_exec.PodExec) -> pgbackrest.Stanza:
    """The stanza as the primary's container sees it: its pgbackrest.conf (mounted from
    the ConfigMap) and its PGBACKREST_* variables (the S3 keys among them)."""
    return pgbackrest.Stanza(
        name=render_backups.STANZA,
        config=render_backups.CONFIG_FILE,
        runner=pod_runner(in_primary),
    )


def pod_runner(in_primary: kube_exec.PodExec) -> Callable[..., kube_exec.Finished]:
    # The exec API carries no environment: the container's own applies, which already
    # holds every PGBACKREST_* variable pgBackRest needs, so `env` is not sent.
    def run(
        args: Sequence[str], *, step: str, env: Mapping[str, str], timeout: float
    ) -> kube_exec.Finished:
        del env
        try:
            return in_primary.run(args, step=step, timeout=timeout)
        except kube_exec.ExecError as error:
            raise BackupError(step=step, reason=error.reason, timed_out=error.timed_out) from None

    return run


# --- the vector-table dump ----------------------------------------------------------


def dump_to_bucket(
    pb: models.PulseBase,
    *,
    in_primary: kube_exec.PodExec,
    emit: Emit,
    s3: Any = None,
    now: datetime.datetime | None = None,
    conn_params: Mapping[str, Any] | None = None,
    connection_args: Sequence[str] | None = None,
) -> str | None:
    """Dump the vector tables into the backups bucket; the key written, or None when no
    table has a vector column.

    `conn_params` reach the database from here to list the tables (default: the primary
    Service); `connection_args` are pg_dump's where it runs (default: the container's
    socket, as the superuser).
    """
    conn_params = conn_params or primary_connection(pb)
    tables = vectors.vector_tables(conn_params)
    if not tables:
        emit({"event": "no vector tables", "database": conn_params["dbname"]})
        return None
    emit({"event": "vector tables", "tables": [f"{s}.{t}" for s, t in tables]})

    # pg_dump of the server's own version runs beside it, as the superuser over the
    # container's socket; its output comes back over the exec stream.
    if connection_args is None:
        connection_args = [
            f"--host={postgres.SOCKET_DIR}",
            f"--port={postgres.PORT}",
            f"--username={postgres.SUPERUSER}",
            f"--dbname={conn_params['dbname']}",
        ]
    args = [*vectors.dump_arguments(tables), *connection_args]
    moment = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    key = f"{VECTOR_PREFIX}{moment.strftime('%Y%m%dT%H%M%SZ')}.dump"
    client = s3 if s3 is not None else bucket_client(pb)
    stream_into(
        client,
        bucket=objectstore.buckets(pb).backups,
        key=key,
        produce=lambda sink: _pg_dump(in_primary, args, sink=sink, conn_params=conn_params),
    )
    emit({"event": "vector tables dumped", "key": key, "tables": len(tables)})
    expire_dumps(
        client,
        bucket=objectstore.buckets(pb).backups,
        policy=backup_policy.retention_policy(pb),
        now=moment,
        emit=emit,
    )
    return key


# DeleteObjects takes at most this many keys per request.
DELETE_BATCH = 1000


def expire_dumps(
    client: Any,
    *,
    bucket: str,
    policy: retention.Policy,
    now: datetime.datetime,
    emit: Emit,
) -> list[str]:
    """Apply the calendar retention to the dumps under VECTOR_PREFIX, as to the physical
    backups; the keys deleted. Objects not named as dumps are never touched. Raises
    job.RetentionError: the dump just written stands."""
    step = "expire vector-table dumps"
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=VECTOR_PREFIX
        )
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        decisions = retention.plan(
            retention.dumps_from_keys(keys, prefix=VECTOR_PREFIX), policy=policy, now=now
        )
        for decision in decisions:
            emit({"event": "retention decision", "tier": "vector-tables", **decision.as_dict()})
        expired = [d.label for d in decisions if d.action == "expire"]
        for start in range(0, len(expired), DELETE_BATCH):
            batch = expired[start : start + DELETE_BATCH]
            answer = client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            refused = answer.get("Errors") or []
            kept_back = {e.get("Key") for e in refused}
            for key in batch:
                if key not in kept_back:
                    emit({"event": "dump expired", "key": key})
            if refused:
                first = refused[0]
                raise job.RetentionError(
                    step=step,
                    reason=f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                )
    except job.RetentionError:
        raise
    except Exception as error:  # botocore's own errors, the S3 server's answers
        raise job.RetentionError(step=step, reason=str(error)) from None
    return expired


def primary_connection(pb: models.PulseBase) -> dict[str, Any]:
    """The primary Service, as the superuser; the password and database come from the
    Secrets through the Job's environment."""
    return {
        "host": f"{naming.postgres_primary(pb.metadata.name)}.{pb.metadata.namespace}.svc",
        "port": postgres.PORT,
        "user": postgres.SUPERUSER,
        "password": os.environ.get("PGPASSWORD", ""),
        "dbname": os.environ.get("PGDATABASE", "postgres"),
        "connect_timeout": 10,
    }


def bucket_client(pb: models.PulseBase) -> Any:
    """S3 client for the backups bucket; the keys come from AWS_* variables."""
    import boto3
    from botocore.config import Config

    region, path_style = objectstore.addressing(pb)
    return boto3.client(
        "s3",
        endpoint_url=objectstore.endpoint(pb),
        region_name=region,
        config=Config(
            s3={"addressing_style": "path" if path_style else "virtual"},
            retries={"max_attempts": 3},
        ),
    )


def _pg_dump(
    in_primary: kube_exec.PodExec,
    args: Sequence[str],
    *,
    sink: Callable[[bytes], object],
    conn_params: Mapping[str, Any],
) -> None:
    step = "dump vector tables"
    try:
        code, err = in_primary.stream(args, step=step, timeout=vectors.DUMP_TIMEOUT, on_stdout=sink)
    except kube_exec.ExecError as error:
        raise BackupError(step=step, reason=error.reason, timed_out=error.timed_out) from None
    if code != 0:
        reason = vectors.dump_failure(err, returncode=code, conn_params=conn_params)
        raise BackupError(step=step, reason=reason)


class _Pipe(io.RawIOBase):
    """Bytes handed from a producer thread to a reader; the reader's last read raises
    the producer's error instead of returning the end, so an upload of a failed dump
    is aborted rather than completed short."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(PIPE_CHUNKS)
        self._buffer = b""
        self._ended = False
        self.abandoned = threading.Event()

    def readable(self) -> bool:
        return True

    def put(self, item: bytes | BaseException | None) -> None:
        while not self.abandoned.is_set():
            try:
                self._chunks.put(item, timeout=1.0)
                return
            except queue.Full:
                continue
        raise BackupError(step="upload vector tables", reason="the upload stopped reading")

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            if self._ended:
                return 0
            item = self._chunks.get()
            if item is None:
                self._ended = True
                return 0
            if isinstance(item, BaseException):
                raise item
            self._buffer = item
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def stream_into(
    client: Any, *, bucket: str, key: str, produce: Callable[[Callable[[bytes], object]], None]
) -> None:
    """Upload what `produce` writes to its sink as one object; nothing is left under
    `key` when `produce` raises."""
    pipe = _Pipe()

    def producer() -> None:
        try:
            try:
                produce(pipe.put)
            except BaseException as error:  # handed to the reader, raised in the upload
                pipe.put(error)
            else:
                pipe.put(None)
        except BackupError:
            # The upload stopped reading (it failed on its own); its error is the one
            # reported, so the producer just ends.
            pass

    thread = threading.Thread(target=producer, name="pg_dump", daemon=True)
    thread.start()
    try:
        client.upload_fileobj(io.BufferedReader(pipe), bucket, key)
    except BackupError:
        raise
    except Exception as error:  # botocore's own errors, and the S3 server's answers
        raise BackupError(step="upload vector tables", reason=str(error)) from None
    finally:
        pipe.abandoned.set()
        thread.join(timeout=30)


# --- `pulsebase-operator backups list` ----------------------------------------------


def list_backups(
    api_client: Any, *, name: str, namespace: str, now: datetime.datetime | None = None
) -> list[dict[str, Any]]:
    """Every backup set pgBackRest knows for this PulseBase, oldest first, with what the
    retention policy decides for it: the catalog as pgBackRest itself reads it in the
    primary, never a copy. Raises SpecError, PrimaryError, KubeError or BackupError."""
    kube = Kube(api_client)
    pb = read_pulsebase(kube, name=name, namespace=namespace)
    pod = find_primary(kube, name=name, namespace=namespace)
    in_primary = kube_exec.PodExec(api_client, namespace=namespace, pod=pod, container=CONTAINER)
    entry = pgbackrest.info(stanza_in(in_primary))
    return catalog_rows(entry, policy=backup_policy.retention_policy(pb), now=now)


def catalog_rows(
    entry: Mapping[str, Any], *, policy: retention.Policy, now: datetime.datetime | None = None
) -> list[dict[str, Any]]:
    """One row per set of a stanza's `info` entry, with the policy's decision."""
    sets = retention.backups_from_info([entry])
    decisions = {
        d.label: d
        for d in retention.plan(sets, policy=policy, now=now or datetime.datetime.now(datetime.UTC))
    }
    raw = {b["label"]: b for b in entry.get("backup") or [] if isinstance(b, Mapping)}
    rows = []
    for backup in sorted(sets, key=lambda b: b.stopped):
        info = raw.get(backup.label, {})
        decision = decisions.get(backup.label)
        rows.append(
            {
                "label": backup.label,
                "type": backup.kind,
                "stopped": backup.stopped.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "prior": backup.prior,
                "failed": backup.failed,
                "sizeBytes": (info.get("info") or {}).get("size"),
                "action": decision.action if decision else "keep",
                "reason": decision.reason if decision else "",
            }
        )
    return rows


def format_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a table for a terminal, widest value per column."""
    header = ("LABEL", "TYPE", "STOPPED", "SIZE", "ACTION", "REASON")
    lines = [header] + [
        (
            str(r["label"]),
            str(r["type"]) + (" (failed)" if r["failed"] else ""),
            str(r["stopped"]),
            _size(r["sizeBytes"]),
            str(r["action"]),
            str(r["reason"]),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
        + "   "
        + line[-1]
        for line in lines
    )


def _size(value: Any) -> str:
    if not isinstance(value, int):
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"
