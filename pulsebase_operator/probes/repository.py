"""The backup repository as the backups bucket holds it, read over S3 without pgBackRest.

pgBackRest keeps its catalog in `pgbackrest/backup/<stanza>/backup.info` (an INI file
whose values are JSON; `backup.info.copy` is its twin, read when the first is missing or
damaged) and its WAL archive in `pgbackrest/archive/<stanza>/<pg version>-<id>/<16 hex
digits of timeline and log>/<segment>-<checksum>`. Beside it the operator keeps
`vector-tables/` (logical dumps) and `configuration/` (one document per generation).

This module turns those into plain values: the sets in the shape of `pgbackrest info
--output=json` (so the retention policy counts them as it plans), the time of the newest
archived WAL segment, and the newest object of each other kind. It does I/O with the
bucket only; what the values mean for status is the caller's.

Listing is bounded: the archive is never listed whole. Only the folder names of the
archive, then the newest archive id's newest timeline-and-log folder are listed (at
most 256 segments, one page), and every listing stops after MAX_LIST_PAGES pages; a
note says when it stopped early. An archive id with more folders than that (20 000
folders of 4 GB of WAL each) would be read among its first folders only.
"""

from __future__ import annotations

import configparser
import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from pulsebase_operator.probes import objectstore
from pulsebase_operator.probes.redaction import scrub, sentence
from pulsebase_operator.probes.targets import ObjectStoreTarget

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STANZA = "pulsebase"
REPO_PREFIX = "pgbackrest"
VECTOR_TABLES_PREFIX = "vector-tables/"
CONFIGURATION_PREFIX = "configuration/"

# Pages of objectstore.LIST_PAGE_SIZE keys per listing of vector-tables/ or
# configuration/: 20 000 objects, decades of daily dumps. Beyond that the newest is
# looked for among the first pages only, and a note says so.
MAX_LIST_PAGES = 20

_ARCHIVE_ID = re.compile(r"^(?P<version>[0-9.]+)-(?P<id>[0-9]+)/$")
_LOG_FOLDER = re.compile(r"^[0-9A-F]{16}/$")
# A WAL segment as archive-push names it: 24 hex digits, then the checksum (and a
# compression suffix when compressed); .partial and .backup files are not segments.
_SEGMENT = re.compile(r"^[0-9A-F]{24}-[0-9a-f]{40}(\.[a-z0-9]+)?$")
_GENERATION = re.compile(r"-generation-(?P<n>[0-9]+)\.json$")


class RepositoryError(Exception):
    """The repository could not be read: the message says which step and why."""


@dataclass(frozen=True)
class Newest:
    key: str
    modified: datetime.datetime


@dataclass
class Repository:
    """What the backups bucket holds now."""

    info: list[dict[str, Any]] | None  # pgbackrest info --output=json; None: no catalog
    newest_wal: Newest | None
    newest_vector_tables: Newest | None
    newest_configuration: Newest | None
    configuration_generations: frozenset[int]
    notes: list[str] = field(default_factory=list)


def read(target: ObjectStoreTarget, *, timeout: float, stanza: str = STANZA) -> Repository:
    """Read the repository in target.backups_bucket; RepositoryError when it cannot."""
    if not target.backups_bucket:
        raise RepositoryError("no backups bucket is configured")
    bucket = target.backups_bucket
    secrets = (target.secret_access_key, target.access_key_id)
    client = objectstore.s3_client(target, timeout=timeout)
    notes: list[str] = []
    try:
        info = _catalog(client, bucket, stanza=stanza, notes=notes)
        wal = _newest_wal(client, bucket, stanza=stanza, notes=notes)
        vectors = _newest_under(client, bucket, VECTOR_TABLES_PREFIX, notes=notes)
        configuration, generations = _configurations(client, bucket, notes=notes)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        detail = str(error).strip() or type(error).__name__
        raise RepositoryError(
            sentence(
                scrub(f"Could not read the backups in bucket {bucket}: {detail}", secrets=secrets)
            )
        ) from None
    finally:
        client.close()
    return Repository(
        info=info,
        newest_wal=wal,
        newest_vector_tables=vectors,
        newest_configuration=configuration,
        configuration_generations=generations,
        notes=notes,
    )


def catalog_from_info(text: str, *, stanza: str = STANZA) -> list[dict[str, Any]]:
    """backup.info as `pgbackrest info --output=json` shows its sets; ValueError when
    the text is not such a file."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # labels are case-sensitive
    try:
        parser.read_string(text)
    except configparser.Error as error:
        raise ValueError(f"backup.info is not an INI file: {error}") from None
    if not parser.has_section("backup:current"):
        raise ValueError("backup.info has no [backup:current] section")
    sets = []
    for label, raw in parser.items("backup:current"):
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"backup.info: set {label} is not JSON: {error}") from None
        if not isinstance(entry, Mapping):
            raise ValueError(f"backup.info: set {label} is not a JSON object")
        sets.append(_set(label, entry))
    sets.sort(key=lambda s: (s["timestamp"]["start"] or 0, s["label"]))
    return [{"name": stanza, "backup": sets}]


def _set(label: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    reference = entry.get("backup-reference")
    return {
        "label": label,
        "type": entry.get("backup-type"),
        "prior": entry.get("backup-prior"),
        "reference": list(reference) if isinstance(reference, list) else None,
        "timestamp": {
            "start": entry.get("backup-timestamp-start"),
            "stop": entry.get("backup-timestamp-stop"),
        },
        "archive": {
            "start": entry.get("backup-archive-start"),
            "stop": entry.get("backup-archive-stop"),
        },
        "error": bool(entry.get("backup-error", False)),
    }


def _catalog(
    client: S3Client, bucket: str, *, stanza: str, notes: list[str]
) -> list[dict[str, Any]] | None:
    base = f"{REPO_PREFIX}/backup/{stanza}/backup.info"
    problems = []
    for key in (base, f"{base}.copy"):
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as error:
            if objectstore.error_code(error) in ("NoSuchKey", "404", "NotFound"):
                continue
            raise
        try:
            return catalog_from_info(body.decode("utf-8"), stanza=stanza)
        except (UnicodeDecodeError, ValueError) as error:
            problems.append(f"{key}: {error}")
    if problems:
        notes.append("the backup catalog is unreadable (" + "; ".join(problems) + ")")
    return None


def _prefixes(client: S3Client, bucket: str, prefix: str, *, notes: list[str]) -> list[str]:
    """The folder names right under prefix, relative to it."""
    found: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket,
        Prefix=prefix,
        Delimiter="/",
        PaginationConfig={"PageSize": objectstore.LIST_PAGE_SIZE},
    )
    for number, page in enumerate(pages, start=1):
        found += [p["Prefix"][len(prefix) :] for p in page.get("CommonPrefixes", [])]
        if page.get("IsTruncated", False) and number >= MAX_LIST_PAGES:
            notes.append(f"only the first {number} pages of {prefix} were listed")
            break
    return found


def _newest_wal(client: S3Client, bucket: str, *, stanza: str, notes: list[str]) -> Newest | None:
    archive = f"{REPO_PREFIX}/archive/{stanza}/"
    # A stanza upgrade (a new major version) starts a new archive id; the highest is live.
    ids = [
        m for p in _prefixes(client, bucket, archive, notes=notes) if (m := _ARCHIVE_ID.match(p))
    ]
    if not ids:
        return None
    newest_id = max(ids, key=lambda m: int(m["id"])).group(0)
    # Folders are timeline then log number in hex, so the greatest name holds the newest
    # segments; an empty one (just created) falls back to the one before.
    folders = sorted(
        p
        for p in _prefixes(client, bucket, archive + newest_id, notes=notes)
        if _LOG_FOLDER.match(p)
    )
    for folder in reversed(folders[-2:]):
        prefix = archive + newest_id + folder
        newest = _newest_under(client, bucket, prefix, notes=notes, pattern=_SEGMENT)
        if newest is not None:
            return newest
    return None


def _newest_under(
    client: S3Client,
    bucket: str,
    prefix: str,
    *,
    notes: list[str],
    pattern: re.Pattern[str] | None = None,
) -> Newest | None:
    newest: Newest | None = None
    for item in _objects(client, bucket, prefix, notes=notes):
        name = item["Key"][len(prefix) :]
        if pattern is not None and not pattern.match(name):
            continue
        if newest is None or item["LastModified"] > newest.modified:
            newest = Newest(key=item["Key"], modified=item["LastModified"])
    return newest


def _configurations(
    client: S3Client, bucket: str, *, notes: list[str]
) -> tuple[Newest | None, frozenset[int]]:
    newest: Newest | None = None
    generations = set()
    for item in _objects(client, bucket, CONFIGURATION_PREFIX, notes=notes):
        match = _GENERATION.search(item["Key"])
        if match is None:
            continue
        generations.add(int(match["n"]))
        if newest is None or item["LastModified"] > newest.modified:
            newest = Newest(key=item["Key"], modified=item["LastModified"])
    return newest, frozenset(generations)


def _objects(client: S3Client, bucket: str, prefix: str, *, notes: list[str]) -> list[Any]:
    found: list[Any] = []
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": objectstore.LIST_PAGE_SIZE}
    )
    for number, page in enumerate(pages, start=1):
        found += page.get("Contents", [])
        if page.get("IsTruncated", False) and number >= MAX_LIST_PAGES:
            notes.append(f"only the first {number} pages of {prefix} were listed")
            break
    return found


def write_configuration(
    target: ObjectStoreTarget, *, key: str, document: bytes, timeout: float
) -> None:
    """Put one configuration document; RepositoryError when the bucket refuses it."""
    assert target.backups_bucket, "only called for a target with a backups bucket"
    secrets = (target.secret_access_key, target.access_key_id)
    client = objectstore.s3_client(target, timeout=timeout)
    try:
        client.put_object(
            Bucket=target.backups_bucket,
            Key=key,
            Body=document,
            ContentType="application/json",
        )
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        detail = str(error).strip() or type(error).__name__
        raise RepositoryError(
            sentence(
                scrub(f"Could not write the configuration backup {key}: {detail}", secrets=secrets)
            )
        ) from None
    finally:
        client.close()
