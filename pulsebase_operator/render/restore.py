"""Bootstrapping a new managed PostgreSQL from another PulseBase's backups
(`spec.bootstrap.recovery`).

Patroni's custom bootstrap runs RESTORE_SCRIPT instead of initdb: a pgBackRest restore
from the source's repository into the empty data directory, to its latest point or to
`targetTime`, after which PostgreSQL replays the source's WAL and promotes. The source's
repository lives in a configuration file of its own (`restore.conf`) that names that
repository and no other. The new cluster's own archive_command reads only its own
configuration, and archive-push pushes to every repository its configuration names, so
keeping the two apart is what guarantees the copy can never write into the source's
stanza. pgBackRest merges PGBACKREST_* variables into whichever file it reads, so the
script clears them all first and maps the source's keys, held in variables of their
own, to PGBACKREST_REPO1_S3_KEY and _SECRET for its own pgBackRest process only.

The source's keys come from its Secrets by reference: no ConfigMap holds them.
"""

from __future__ import annotations

import configparser
import datetime
import io
from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.render import (
    backups,
    certificates,
    credentials,
    naming,
    objectstore,
    pods,
)

METHOD = "pgbackrest_restore"
CONFIG_KEY = "restore.conf"
SCRIPT_KEY = "restore.sh"
# Where the source's CA is mounted when its object storage is managed.
SOURCE_CA_DIR = "/etc/pulsebase/restore-source-ca"
SOURCE_CA_VOLUME = "restore-source-ca"

# Variables the script reads. Paths come from the environment, so that the same script
# runs unchanged wherever its files are.
CONFIG_ENV = "PULSEBASE_RESTORE_CONFIG"
SCRIPT_ENV = "PULSEBASE_RESTORE_SCRIPT"
TARGET_ENV = "PULSEBASE_RESTORE_TARGET_TIME"
KEY_ENV = "PULSEBASE_RESTORE_S3_KEY"
SECRET_ENV = "PULSEBASE_RESTORE_S3_KEY_SECRET"  # noqa: S105 (a variable name)

# `restore` restores the source's backup into the data directory Patroni names; `archive-get
# WAL PATH` is PostgreSQL's restore_command while it replays the source's WAL. Only the
# restore writes, and only into the data directory: pgBackRest's restore and archive-get
# never write to a repository. --archive-mode=off is not used: pgBackRest would write it
# into postgresql.auto.conf, where it outlives the restore and would silently keep the
# promoted copy from ever archiving into its own repository. While it replays, the copy
# archives nothing anyway (archive_mode on archives only on a primary).
RESTORE_SCRIPT = r"""#!/bin/sh
set -eu
for variable in $(env | sed -n 's/^\(PGBACKREST_[A-Za-z0-9_]*\)=.*/\1/p'); do
  unset "$variable"
done
PGBACKREST_REPO1_S3_KEY=$PULSEBASE_RESTORE_S3_KEY
PGBACKREST_REPO1_S3_KEY_SECRET=$PULSEBASE_RESTORE_S3_KEY_SECRET
export PGBACKREST_REPO1_S3_KEY PGBACKREST_REPO1_S3_KEY_SECRET
unset PULSEBASE_RESTORE_S3_KEY PULSEBASE_RESTORE_S3_KEY_SECRET
pgbackrest() {
  command pgbackrest --config="$PULSEBASE_RESTORE_CONFIG" --stanza=pulsebase \
    --lock-path="${TMPDIR:-/tmp}/pgbackrest-restore" "$@"
}
case "${1:-}" in
restore)
  # Patroni passes --scope=... --datadir=...; its own PATRONI_* variables it keeps to itself.
  shift
  data=""
  for argument; do
    case $argument in --datadir=*) data=${argument#--datadir=} ;; esac
  done
  if [ -z "$data" ]; then
    echo "restore: Patroni gave no --datadir" >&2
    exit 2
  fi
  set -- --pg1-path="$data"
  if [ -n "${PULSEBASE_RESTORE_TARGET_TIME:-}" ]; then
    set -- "$@" --type=time --target="$PULSEBASE_RESTORE_TARGET_TIME" --target-action=promote
  fi
  mkdir -p "$data"
  chmod 0700 "$data"
  # PostgreSQL replays with this very script, so the WAL comes from the source too.
  pgbackrest "$@" \
    --recovery-option="restore_command=sh $PULSEBASE_RESTORE_SCRIPT archive-get %f \"%p\"" \
    restore
  ;;
archive-get)
  # PostgreSQL runs restore_command in the data directory.
  pgbackrest --pg1-path="$PWD" archive-get "$2" "$3"
  ;;
*)
  echo "usage: $0 restore | archive-get WAL PATH" >&2
  exit 2
  ;;
esac
"""


def _repository(pb: models.PulseBase) -> tuple[str, ...]:
    """What names a pgBackRest repository: endpoint, port, bucket and path."""
    options = backups.repository_options(pb)
    return tuple(
        options[key]
        for key in ("repo1-s3-endpoint", "repo1-storage-port", "repo1-s3-bucket", "repo1-path")
    )


def refusal(
    pb: models.PulseBase,
    source: models.PulseBase | None,
    *,
    now: datetime.datetime | None = None,
    recoverable_from: datetime.datetime | None = None,
) -> str | None:
    """Why `pb` cannot be restored from `source` (None: it can, or nothing to restore).

    `recoverable_from` is the source's status.backup.recoverableFrom, when its status
    has one: no restore to a time reaches an earlier moment. The status is only as new
    as the source's last reading of its bucket, and sets only ever expire from the old
    end, so a moment before it is never reachable. One later than now was not written
    by a reading, and checks nothing."""
    recovery = pb.spec.bootstrap.recovery
    if recovery is None:
        return None
    now = now or datetime.datetime.now(datetime.UTC)
    target = None
    if recovery.target_time is not None:
        target = datetime.datetime.fromisoformat(recovery.target_time.replace("Z", "+00:00"))
        if target > now:
            return (
                f"spec.bootstrap.recovery.targetTime: {recovery.target_time} is in the "
                "future; no backup holds it yet (leave it unset for the latest point)"
            )
    where = "spec.bootstrap.recovery.source.pulseBase"
    name = recovery.source.pulse_base
    if pb.spec.postgres.mode is models.Mode.EXTERNAL:
        return (
            f"{where}: a restore needs a managed PostgreSQL to restore into; this "
            "PulseBase uses an external one, which the operator never writes to"
        )
    if source is None:
        return (
            f"{where}: PulseBase {name} does not exist in namespace {pb.metadata.namespace}; "
            "nothing of the database is created until it does, so that an empty database "
            "never stands in for the restore"
        )
    if source.spec.postgres.mode is models.Mode.EXTERNAL:
        return (
            f"{where}: PulseBase {name} uses an external PostgreSQL, which the operator "
            "does not back up; there are no backups of it to restore"
        )
    if not source.spec.backup.enabled:
        return (
            f"{where}: PulseBase {name} has backups disabled (spec.backup.enabled), so it "
            "has no repository to restore from"
        )
    if pb.spec.backup.enabled and _repository(pb) == _repository(source):
        # A restored copy carries its source's system identifier, so pgBackRest would
        # take its WAL and backups into the source's stanza, and its retention would
        # expire the source's backups.
        return (
            "spec.objectStorage.buckets.backups: the copy's backups would go to "
            f"PulseBase {name}'s own repository ({_repository(source)[2]} on the same "
            "endpoint), where they would mix with and expire its backups; give the copy "
            "a bucket of its own"
        )
    if target is not None and recoverable_from is not None and target < recoverable_from <= now:
        reach = recoverable_from.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"spec.bootstrap.recovery.targetTime: {recovery.target_time} is earlier than "
            f"any backup of PulseBase {name} reaches: no restore to a time reaches before "
            f"{reach} (its status.backup.recoverableFrom), a second after its oldest "
            "backup ended. spec.bootstrap cannot change: create the copy again with a "
            "later targetTime"
        )
    return None


def patroni_bootstrap(pb: models.PulseBase, *, config_dir: str) -> dict[str, Any]:
    """The part of Patroni's `bootstrap` that replaces initdb with the restore."""
    recovery = pb.spec.bootstrap.recovery
    assert recovery is not None  # only called for a PulseBase that restores
    # Patroni writes these for the first start after the script. pgBackRest writes the
    # same ones into postgresql.auto.conf, which Patroni clears of recovery settings when
    # it writes its configuration (so replicas copied from the promoted primary never
    # inherit them); without Patroni, as in the integration test, those apply.
    recovery_conf: dict[str, Any] = {
        "restore_command": restore_command(),
        "recovery_target_timeline": "latest",
    }
    if recovery.target_time is not None:
        recovery_conf["recovery_target_time"] = recovery_time(recovery.target_time)
        recovery_conf["recovery_target_action"] = "promote"
    return {
        "method": METHOD,
        METHOD: {
            # Patroni splits the command and runs it without a shell: a literal path.
            "command": f"sh {config_dir}/{SCRIPT_KEY} restore",
            # Patroni passes --scope and --datadir, the script's only way to the data
            # directory: Patroni keeps its PATRONI_* variables from its children.
            "no_params": False,
            "keep_existing_recovery_conf": False,
            "recovery_conf": recovery_conf,
        },
    }


def restore_command() -> str:
    return f'sh "${SCRIPT_ENV}" archive-get %f "%p"'


def source_config(source: models.PulseBase) -> str:
    """restore.conf: the source's repository, and nothing that could be written to."""
    repo = backups.repository_options(source)
    if objectstore.ca_ref(source) is not None:
        repo["repo1-storage-ca-file"] = f"{SOURCE_CA_DIR}/{certificates.CA_KEY}"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser["global"] = {
        **repo,
        "process-max": "2",
        "log-level-file": "off",
        "log-level-console": "info",
    }
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def config_files(source: models.PulseBase) -> dict[str, str]:
    return {CONFIG_KEY: source_config(source), SCRIPT_KEY: RESTORE_SCRIPT}


def env(source: models.PulseBase, *, target_time: str | None, config_dir: str) -> list[Any]:
    """The restore's variables in the Patroni container: paths, target and the source's
    keys by reference. The keys are optional references: once the copy is bootstrapped
    they are never read again, and a source deleted since must not keep its pods from
    starting."""
    storage = source.spec.object_storage
    if storage.mode is models.Mode.MANAGED:
        keys = naming.objectstore_secret(source.metadata.name)
        key = _optional(pods.secret_env(KEY_ENV, keys, credentials.ACCESS_KEY_ID))
        secret = _optional(pods.secret_env(SECRET_ENV, keys, credentials.SECRET_ACCESS_KEY))
    else:
        assert storage.external is not None
        key = _optional(pods.ref_env(KEY_ENV, storage.external.access_key_id))
        secret = _optional(pods.ref_env(SECRET_ENV, storage.external.secret_access_key))
    variables = [
        pods.plain_env(CONFIG_ENV, f"{config_dir}/{CONFIG_KEY}"),
        pods.plain_env(SCRIPT_ENV, f"{config_dir}/{SCRIPT_KEY}"),
        key,
        secret,
    ]
    if target_time is not None:
        variables.append(pods.plain_env(TARGET_ENV, recovery_time(target_time)))
    return variables


def recovery_time(target_time: str) -> str:
    """An RFC 3339 time as pgBackRest's --target and PostgreSQL's recovery_target_time
    both take it: a space between date and time and a numeric offset (pgBackRest refuses
    the `T` and `Z`, and PostgreSQL 15 refuses this form with them). The same moment."""
    moment = datetime.datetime.fromisoformat(target_time.replace("Z", "+00:00"))
    assert moment.utcoffset() is not None  # the model requires an explicit offset
    return moment.isoformat(sep=" ")


def source_ca_volume(source: models.PulseBase) -> dict[str, Any] | None:
    # Optional, like the keys: a source deleted after the bootstrap must not keep the
    # copy's pods from starting.
    return objectstore.ca_volume(source, name=SOURCE_CA_VOLUME, optional=True)


def source_ca_mount() -> dict[str, Any]:
    return {"name": SOURCE_CA_VOLUME, "mountPath": SOURCE_CA_DIR, "readOnly": True}


def _optional(variable: dict[str, Any]) -> dict[str, Any]:
    variable["valueFrom"]["secretKeyRef"]["optional"] = True
    return variable
