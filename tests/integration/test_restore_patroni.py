"""The restore bootstrap under a real Patroni: the rendered patroni.yml (with its Raft
DCS and local addresses added, as the pod's environment would), the rendered restore
files and post-init script, and a backup the bed made.

Patroni is not a dependency of the operator. `make test` installs it, pinned, into a
venv of its own (hack/install-patroni.sh) and names it by $PULSEBASE_PATRONI; elsewhere
the test runs where `patroni` with Raft support is on PATH, and skips otherwise. It must
be runnable by the user PostgreSQL runs as (postgres, when the tests run as root).
"""

from __future__ import annotations

import datetime
import os
import pwd
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from pulsebase_operator.render import postgres, restore
from tests.integration.backupbed import BackupBed
from tests.integration.servers import S3_ACCESS_KEY, S3_SECRET_KEY, Process, wait_until
from tests.integration.test_backups import rows
from tests.integration.test_restore import (
    backup_while_writing,
    pulsebases,
    rendered_files,
    source_state,
)
from tests.support.localcluster import free_port

PATRONI_ENV = "PULSEBASE_PATRONI"
SUPERUSER_PASSWORD = "copy-superuser"
APP_PASSWORD = "copy-app"


def patroni_binary() -> str | None:
    return os.environ.get(PATRONI_ENV) or shutil.which("patroni")


def local_config(
    rendered: dict[str, Any], folder: Path, *, ports: tuple[int, int, int], bindir: Path
) -> dict[str, Any]:
    """What the pod's PATRONI_* variables set, for one member on loopback; Raft stands in
    for the Kubernetes DCS."""
    pg_port, api_port, raft_port = ports
    config = yaml.safe_load(yaml.safe_dump(rendered).replace(postgres.CONFIG_DIR, str(folder)))
    config.update(
        {
            "scope": "copy-postgres",
            "name": "copy-postgres-0",
            "raft": {"data_dir": str(folder / "raft"), "self_addr": f"127.0.0.1:{raft_port}"},
            "restapi": {
                "listen": f"127.0.0.1:{api_port}",
                "connect_address": f"127.0.0.1:{api_port}",
            },
        }
    )
    config["postgresql"].update(
        {
            "data_dir": str(folder / "pgdata"),
            "listen": f"127.0.0.1:{pg_port}",
            "connect_address": f"127.0.0.1:{pg_port}",
            "bin_dir": str(bindir),
            "pgpass": str(folder / "pgpass"),
            "authentication": {
                "superuser": {"username": "postgres", "password": SUPERUSER_PASSWORD},
                "replication": {"username": "replicator", "password": "copy-replication"},
            },
        }
    )
    config["postgresql"]["parameters"]["unix_socket_directories"] = str(folder / "socket")
    return config


@pytest.mark.timeout(600)
def test_patroni_bootstraps_the_copy_from_the_sources_backup(backup_bed: BackupBed) -> None:
    binary = patroni_binary()
    if binary is None:
        pytest.skip(f"Patroni with Raft is not installed (or name it in ${PATRONI_ENV})")
    # Patroni runs pg_ctl and pg_isready too, not only the server.
    bindir = next(
        (
            p
            for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"))
            if (p / "pg_isready").is_file()
        ),
        None,
    )
    if bindir is None:
        pytest.skip("no PostgreSQL installation with pg_ctl and pg_isready for Patroni")
    source_pg = backup_bed.primary
    target_at = backup_while_writing(backup_bed)
    expected = [i for i, at in rows(source_pg) if at < target_at]
    assert len(expected) < len(rows(source_pg))
    target = target_at.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")

    source, copy = pulsebases(backup_bed.bucket, target)
    before = source_state(backup_bed)
    folder = rendered_files(backup_bed, source, copy)
    # Debian's PostgreSQL has no pgvector; everything else of the script runs.
    (folder / "post_init.sh").write_text(
        postgres.POST_INIT.replace("CREATE EXTENSION IF NOT EXISTS vector;\n", "")
    )
    for sub in ("socket", "raft"):
        (folder / sub).mkdir()
    ports = (free_port(), free_port(), free_port())
    config = local_config(
        postgres.patroni_config(copy, source=source),
        folder,
        ports=ports,
        bindir=bindir,
    )
    (folder / "patroni.yml").write_text(yaml.safe_dump(config))
    user = backup_bed.primary.user
    if user:
        entry = pwd.getpwnam(user)
        for path in (folder, *folder.rglob("*")):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    env = {
        **os.environ,
        restore.CONFIG_ENV: str(folder / restore.CONFIG_KEY),
        restore.SCRIPT_ENV: str(folder / restore.SCRIPT_KEY),
        restore.KEY_ENV: S3_ACCESS_KEY,
        restore.SECRET_ENV: S3_SECRET_KEY,
        restore.TARGET_ENV: restore.recovery_time(target),
        "TMPDIR": str(folder),
        "HOME": str(folder),
        # The copy's own repository, as pgbackrest_env sets it: the script must clear it.
        "PGBACKREST_REPO1_S3_BUCKET": "copy-backups",
        "APP_USER": "pulsebase",
        "APP_PASSWORD": APP_PASSWORD,
        "APP_DATABASE": "pulsebase",
    }
    log = folder / "patroni.log"
    patroni = Process(
        name="patroni", args=[binary, str(folder / "patroni.yml")], log=log, user=user, env=env
    ).start()
    pg_port, api_port, _ = ports
    try:

        def leader() -> bool:
            patroni.check()
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{api_port}/primary", timeout=2
                ) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_until(leader, "Patroni to bootstrap the copy and lead", timeout=180)
        superuser = {"host": "127.0.0.1", "port": pg_port, "dbname": "postgres"}
        # Patroni set the superuser's password to the copy's own after the restore.
        with psycopg.connect(**superuser, user="postgres", password=SUPERUSER_PASSWORD) as conn:
            restored = [r[0] for r in conn.execute("SELECT id FROM ticks ORDER BY id")]
            timeline = conn.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchall()[
                0
            ][0]
        assert restored == expected
        assert timeline == 2
        # The post-init script ran after the custom bootstrap: the app role logs in.
        with psycopg.connect(
            host="127.0.0.1",
            port=pg_port,
            user="pulsebase",
            password=APP_PASSWORD,
            dbname="pulsebase",
        ) as conn:
            conn.execute("SELECT 1")
    except BaseException:
        print(log.read_text()[-4000:])
        raise
    finally:
        patroni.stop(timeout=60)
    assert source_state(backup_bed) == before
