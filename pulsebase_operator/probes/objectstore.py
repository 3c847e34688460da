"""Object storage over the S3 API: the endpoint, every bucket, and the newest backup.

One GetBucketVersioning request per bucket answers two questions at once: the bucket
exists and these credentials may use it, and whether versioning is on. The newest object
in the backups bucket, by LastModified, gives the age of the latest backup; the listing is
capped (see MAX_LIST_PAGES), so in a very large bucket the age is an upper bound.

Requests use botocore's own timeouts (`connect_timeout`, `read_timeout`) and exactly one
attempt, so a dead endpoint costs one timeout and not a retry schedule. The age compares
the server's LastModified with our clock; clock skew shows up in it, and a negative age is
reported as 0.
"""

from __future__ import annotations

import datetime
import functools
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from botocore.config import Config

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
from pulsebase_operator.probes.targets import ObjectStoreTarget

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

COMPONENT = "objectStorage"

BUCKET_MISSING = "BucketMissing"
BUCKET_FORBIDDEN = "BucketForbidden"
TLS_FAILED = "TlsFailed"
REQUEST_FAILED = "RequestFailed"
INVALID_TARGET = "InvalidTarget"

# 50 pages of LIST_PAGE_SIZE keys. A backups bucket holding more than that (a WAL archive kept for
# months, say) is listed only that far, in key order, and the age may then be too old.
# Listing by a prefix that sorts the newest backups first would remove the cap.
MAX_LIST_PAGES = 50
LIST_PAGE_SIZE = 1000  # the most S3 returns in one page

_MISSING_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})
_FORBIDDEN_CODES = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled"})
_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)

_TIMEOUTS = (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError)

_session_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    # One session for all probes: its loader keeps the parsed S3 service model, which
    # otherwise costs every probe tens of milliseconds of CPU. Sessions are not safe to
    # share between threads, so clients are made under a lock; the clients themselves are.
    return boto3.session.Session()


class _EndpointError(Exception):
    """The endpoint itself failed: checking further buckets would only fail again."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def blank_values(target: ObjectStoreTarget | None = None) -> dict[str, Any]:
    return {"latencySeconds": None, "buckets": {}, "newestBackupAgeSeconds": None}


def probe(target: ObjectStoreTarget, *, timeout: float, previous: Reading | None = None) -> Reading:
    measured_at = now()
    values = blank_values(target)
    deadline = time.monotonic() + timeout
    secrets = (target.secret_access_key, target.access_key_id)
    names = list(dict.fromkeys([*target.buckets, *filter(None, [target.backups_bucket])]))
    buckets: dict[str, dict[str, Any]] = values["buckets"]
    missing: list[str] = []
    forbidden: list[str] = []
    notes: list[str] = []

    def unhealthy(reason: str, message: str) -> Reading:
        return failed(
            COMPONENT,
            reason=reason,
            message=sentence(scrub(message, secrets=secrets)),
            measured_at=measured_at,
            values=values,
            previous=previous,
        )

    try:
        client = s3_client(target, timeout=timeout)
    except (ValueError, botocore.exceptions.BotoCoreError) as error:
        return unhealthy(
            INVALID_TARGET, f"Cannot use {target.endpoint!r} as an S3 endpoint: {error}"
        )
    try:
        # The first request made also gives the latency.
        started = time.monotonic()
        if not names:
            _list_buckets(client)
            values["latencySeconds"] = seconds(time.monotonic() - started)
        for number, name in enumerate(names):
            if time.monotonic() > deadline:
                raise _EndpointError(
                    TIMEOUT,
                    f"The object storage probe ran out of time after {number} of "
                    f"{len(names)} buckets ({timeout:g} s)",
                )
            buckets[name], problem = _bucket(client, name)
            if values["latencySeconds"] is None:
                values["latencySeconds"] = seconds(time.monotonic() - started)
            if problem == BUCKET_MISSING:
                missing.append(name)
            elif problem == BUCKET_FORBIDDEN:
                forbidden.append(name)
        if target.backups_bucket and buckets[target.backups_bucket]["reachable"]:
            values["newestBackupAgeSeconds"] = _newest_age(
                client,
                target.backups_bucket,
                measured_at=measured_at,
                deadline=deadline,
                notes=notes,
            )
    except _EndpointError as error:
        return unhealthy(error.reason, error.message)
    finally:
        client.close()

    if missing or forbidden:
        parts = []
        if missing:
            parts.append(f"missing buckets: {', '.join(missing)}")
        if forbidden:
            parts.append(f"buckets these credentials may not use: {', '.join(forbidden)}")
        return unhealthy(
            BUCKET_MISSING if missing else BUCKET_FORBIDDEN,
            f"Object storage at {target.endpoint} has {'; '.join(parts)}",
        )

    text = f"Object storage answered in {duration(values['latencySeconds'])}"
    if buckets:
        text += f"; {len(buckets)} bucket{'s' if len(buckets) != 1 else ''} reachable"
    age = values["newestBackupAgeSeconds"]
    if target.backups_bucket:
        text += f"; newest backup {_age(age)} old" if age is not None else "; no backup yet"
    text += "".join(f"; {note}" for note in notes)
    return Reading(
        component=COMPONENT,
        healthy=True,
        reason=HEALTHY,
        message=sentence(scrub(text, secrets=secrets)),
        measured_at=measured_at,
        values=values,
    )


def s3_client(target: ObjectStoreTarget, *, timeout: float) -> S3Client:
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        # total_max_attempts counts the first try; max_attempts would add one retry.
        retries={"total_max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": "path" if target.force_path_style else "auto"},
    )
    with _session_lock:
        return _session().client(
            "s3",
            endpoint_url=target.endpoint,
            region_name=target.region,
            aws_access_key_id=target.access_key_id,
            aws_secret_access_key=target.secret_access_key,
            verify=target.verify_tls,
            config=config,
        )


def _bucket(client: S3Client, name: str) -> tuple[dict[str, Any], str | None]:
    """The bucket's entry in values, and BUCKET_MISSING or BUCKET_FORBIDDEN if it is."""
    unusable: dict[str, Any] = {"reachable": False, "versioning": None}
    try:
        status = client.get_bucket_versioning(Bucket=name).get("Status")
    except botocore.exceptions.ClientError as error:
        code = error_code(error)
        if code in _MISSING_CODES:
            return unusable, BUCKET_MISSING
        if code not in _FORBIDDEN_CODES:
            raise _endpoint_failure(error) from error
        # The key may lack s3:GetBucketVersioning and still use the bucket: ask with HEAD
        # before calling the bucket forbidden.
        try:
            client.head_bucket(Bucket=name)
        except botocore.exceptions.ClientError as head_error:
            if error_code(head_error) in _MISSING_CODES:
                return unusable, BUCKET_MISSING
            return unusable, BUCKET_FORBIDDEN
        except botocore.exceptions.BotoCoreError as head_error:
            raise _endpoint_failure(head_error) from head_error
        return {"reachable": True, "versioning": None}, None
    except botocore.exceptions.BotoCoreError as error:
        raise _endpoint_failure(error) from error
    # A bucket whose versioning was never turned on has no Status at all.
    return {"reachable": True, "versioning": status or "Disabled"}, None


def _list_buckets(client: S3Client) -> None:
    try:
        client.list_buckets()
    except botocore.exceptions.ClientError as error:
        # A key scoped to its buckets may not list them; the endpoint still answered.
        if error_code(error) not in _FORBIDDEN_CODES:
            raise _endpoint_failure(error) from error
    except botocore.exceptions.BotoCoreError as error:
        raise _endpoint_failure(error) from error


def _newest_age(
    client: S3Client,
    bucket: str,
    *,
    measured_at: datetime.datetime,
    deadline: float,
    notes: list[str],
) -> float | None:
    newest: datetime.datetime | None = None
    paginator = client.get_paginator("list_objects_v2")
    try:
        for number, page in enumerate(
            paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": LIST_PAGE_SIZE}),
            start=1,
        ):
            for item in page.get("Contents", []):
                modified = item["LastModified"]
                newest = modified if newest is None or modified > newest else newest
            more = page.get("IsTruncated", False)
            if more and number >= MAX_LIST_PAGES:
                notes.append(f"backup age from the first {number} pages of {bucket} only")
                break
            if more and time.monotonic() > deadline:
                notes.append(f"backup age from the first {number} pages of {bucket}: out of time")
                break
    except botocore.exceptions.ClientError as error:
        if error_code(error) not in _FORBIDDEN_CODES:
            raise _endpoint_failure(error) from error
        notes.append(f"these credentials may not list {bucket}, so the backup age is unknown")
        return None
    except botocore.exceptions.BotoCoreError as error:
        raise _endpoint_failure(error) from error
    if newest is None:
        return None
    return seconds(max(0.0, (measured_at - newest).total_seconds()))


def error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _endpoint_failure(error: Exception) -> _EndpointError:
    detail = str(error).strip() or type(error).__name__
    if isinstance(error, botocore.exceptions.ClientError):
        if error_code(error) in _CREDENTIAL_CODES:
            return _EndpointError(
                AUTHENTICATION_FAILED, f"Object storage refused the credentials: {detail}"
            )
        return _EndpointError(REQUEST_FAILED, f"Object storage refused a probe request: {detail}")
    if isinstance(error, botocore.exceptions.SSLError):
        return _EndpointError(TLS_FAILED, f"TLS with the object storage endpoint failed: {detail}")
    if isinstance(error, _TIMEOUTS):
        return _EndpointError(TIMEOUT, f"Object storage did not answer in time: {detail}")
    return _EndpointError(UNREACHABLE, f"Could not reach object storage: {detail}")


def _age(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"
