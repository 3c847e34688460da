"""A new PulseBase bootstrapped from another's backups, run for real: the restore script
and the source's repository configuration exactly as the operator renders them, against
a backup the bed made, with the copy then archiving into a repository of its own.

Only what differs between a pod and this machine is changed: the files' folder, the
S3 host and port, and the CA's path. Every path the script uses comes from the
environment, as in the Patroni container.
"""

from __future__ import annotations

import datetime
import os
import pwd
import shlex
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pulsebase_operator import backups
from pulsebase_operator.api import models
from pulsebase_operator.backups import Stanza
from pulsebase_operator.render import postgres, restore
from tests.integration.backupbed import BackupBed, _pgbackrest_conf, remove_archiving
from tests.integration.servers import S3_ACCESS_KEY, S3_SECRET_KEY, wait_until
from tests.integration.test_backups import Writer, archive_everything, rows

SOURCE_HOST = "shop-objectstore.prod.svc"


def pulsebases(bucket: str, target: str | None) -> tuple[models.PulseBase, models.PulseBase]:
    source = models.PulseBase.from_body(
        {
            "metadata": {"name": "shop", "namespace": "prod"},
            "spec": {"version": "2.4.1", "objectStorage": {"buckets": {"backups": bucket}}},
        }
    )
    recovery: dict[str, Any] = {"source": {"pulseBase": "shop"}}
    if target is not None:
        recovery["targetTime"] = target
    copy = models.PulseBase.from_body(
        {
            "metadata": {"name": "copy", "namespace": "prod"},
            "spec": {"version": "2.4.1", "bootstrap": {"recovery": recovery}},
        }
    )
    return source, copy


def rendered_files(bed: BackupBed, source: models.PulseBase, copy: models.PulseBase) -> Path:
    """The Patroni ConfigMap's restore files, written to a folder of the bed's user."""
    folder = bed.root / f"restore-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    data = postgres.render(copy, source=source).objects
    (config_map,) = [o for o in data if o["kind"] == "ConfigMap"]
    files = config_map["data"]
    conf = files[restore.CONFIG_KEY]
    assert f"repo1-s3-endpoint = {SOURCE_HOST}" in conf
    conf = conf.replace(f"repo1-s3-endpoint = {SOURCE_HOST}", "repo1-s3-endpoint = 127.0.0.1")
    conf = conf.replace("repo1-storage-port = 8333", f"repo1-storage-port = {bed.s3.port}")
    conf = conf.replace(f"{restore.SOURCE_CA_DIR}/ca.crt", str(bed.s3.ca_file))
    (folder / restore.CONFIG_KEY).write_text(conf)
    (folder / restore.SCRIPT_KEY).write_text(files[restore.SCRIPT_KEY])
    for entry in (folder, *folder.iterdir()):
        os.chmod(entry, 0o755 if entry.is_dir() else 0o644)
        if bed.primary.user:
            user = pwd.getpwnam(bed.primary.user)
            os.chown(entry, user.pw_uid, user.pw_gid)
    return folder


def container_env(folder: Path, copy: models.PulseBase, *, own_bucket: str) -> dict[str, str]:
    """What the Patroni container holds: the restore's variables, and pgBackRest's own
    PGBACKREST_* variables naming the copy's repository (which the script must clear)."""
    recovery = copy.spec.bootstrap.recovery
    assert recovery is not None
    variables = {
        restore.CONFIG_ENV: str(folder / restore.CONFIG_KEY),
        restore.SCRIPT_ENV: str(folder / restore.SCRIPT_KEY),
        restore.KEY_ENV: S3_ACCESS_KEY,
        restore.SECRET_ENV: S3_SECRET_KEY,
        "TMPDIR": str(folder),
        # Were these read by the restore, it would look for backups in the copy's bucket.
        "PGBACKREST_REPO1_S3_BUCKET": own_bucket,
    }
    if recovery.target_time is not None:
        variables[restore.TARGET_ENV] = restore.recovery_time(recovery.target_time)
    return variables


def run_bootstrap_command(
    source: models.PulseBase,
    copy: models.PulseBase,
    folder: Path,
    env: dict[str, str],
    *,
    data: Path,
) -> None:
    """Patroni's custom bootstrap: the rendered command, split as Patroni splits it and
    given the two arguments Patroni adds."""
    method = postgres.patroni_config(copy, source=source)["bootstrap"]
    command = method[method["method"]]["command"]
    args = shlex.split(command.replace(postgres.CONFIG_DIR, str(folder)))
    args += ["--scope=copy-postgres", f"--datadir={data}"]
    user = None if os.geteuid() != 0 else "postgres"
    result = subprocess.run(
        args,
        env={"PATH": os.environ["PATH"], **env},
        user=user,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def source_state(bed: BackupBed) -> tuple[set[str], list[Any], list[Any]]:
    info = backups.info(bed.stanza)
    return set(bed.repo_keys()), info["backup"], info["archive"]


def backup_while_writing(bed: BackupBed) -> datetime.datetime:
    """A full backup taken while a writer inserts, every row archived after it; the
    moment between two rows written after the backup, which only WAL replay reaches."""
    with Writer(bed.primary):
        time.sleep(1)
        backups.backup(bed.stanza, kind="full")
        time.sleep(2)
        written = rows(bed.primary)
        time.sleep(1)
    archive_everything(bed.primary)
    (_, before_at), (_, after_at) = written[-6], written[-5]
    return before_at + (after_at - before_at) / 2


@pytest.mark.timeout(600)
@pytest.mark.parametrize("to_a_time", [True, False], ids=["to-a-time", "to-the-latest-point"])
def test_a_new_pulsebase_restores_to_the_target_and_never_writes_to_the_source(
    backup_bed: BackupBed, monkeypatch: pytest.MonkeyPatch, to_a_time: bool
) -> None:
    source_pg = backup_bed.primary
    target_at = backup_while_writing(backup_bed)
    if to_a_time:
        expected = [i for i, at in rows(source_pg) if at < target_at]
        assert len(expected) < len(rows(source_pg)), "no rows after the target: proves nothing"
        target: str | None = target_at.astimezone(datetime.UTC).isoformat()
        target = target.replace("+00:00", "Z")
    else:
        # Every row archived; those after target_at were written after the backup ended,
        # so only WAL replay brings them back.
        expected, target = [i for i, _ in rows(source_pg)], None

    source, copy = pulsebases(backup_bed.bucket, target)
    before = source_state(backup_bed)

    own_bucket = f"copy-{uuid.uuid4().hex[:8]}"
    backup_bed.s3.client().create_bucket(Bucket=own_bucket)
    folder = rendered_files(backup_bed, source, copy)
    server = backup_bed.restored("copy")
    env = container_env(folder, copy, own_bucket=own_bucket)
    own_conf = folder / "own.conf"
    try:
        run_bootstrap_command(source, copy, folder, env, data=server.data)

        # PostgreSQL replays with the variables of the container, as in the pod.
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        socket = folder / "socket"
        socket.mkdir()
        os.chmod(socket, 0o777)  # noqa: S103 (PostgreSQL runs as another user)
        own_conf.write_text(
            _pgbackrest_conf(
                root=folder,
                s3=backup_bed.s3,
                bucket=own_bucket,
                data=server.data,
                port=server.port,
                socket=socket,
            )
        )
        for sub in ("lock", "log"):
            (folder / sub).mkdir(mode=0o777, exist_ok=True)
            os.chmod(folder / sub, 0o777)  # noqa: S103
        own_conf.chmod(0o644)
        server.start(
            f"unix_socket_directories={socket}",
            "archive_mode=on",
            f"archive_command=pgbackrest --config={own_conf} --stanza=pulsebase archive-push %p",
        )
        wait_until(
            lambda: server.execute("SELECT pg_is_in_recovery()")[0][0] is False,
            "the copy to reach the target and promote",
            timeout=120,
        )
        assert [i for i, _ in rows(server)] == expected

        # The promoted copy writes, switches WAL and archives into its own stanza.
        own = Stanza(name="pulsebase", config=str(own_conf), run_as=backup_bed.stanza.run_as)
        backups.stanza_create(own)
        server.execute("INSERT INTO ticks DEFAULT VALUES")
        archive_everything(server)
        copy_keys = _keys(backup_bed, own_bucket)
        assert any(key.endswith("00000002.history") for key in copy_keys), copy_keys
    finally:
        remove_archiving(server, conf=own_conf)
        monkeypatch.undo()  # pgBackRest below reads the source's stanza, not the copy's

    # The source's repository is exactly as it was: no object, backup or timeline more.
    after = source_state(backup_bed)
    assert after[0] == before[0], sorted(after[0] ^ before[0])
    assert after[1:] == before[1:]
    # WAL and history of the copy's timeline 2 are named for it: none is in the source's.
    assert not any(part.startswith("00000002") for key in after[0] for part in key.split("/"))


def _keys(bed: BackupBed, bucket: str) -> list[str]:
    client = bed.s3.client()
    return [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
