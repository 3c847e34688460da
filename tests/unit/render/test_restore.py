"""spec.bootstrap.recovery rendered: Patroni's custom bootstrap, the source's repository
in a file of its own, and the source's keys only by reference."""

from __future__ import annotations

import configparser
import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulsebase_operator.api import models
from pulsebase_operator.render import backups, postgres, restore, stack

from .examples import (
    EXTERNAL_OBJECT_STORAGE,
    EXTERNAL_POSTGRES,
    container,
    env,
    find,
    pod_spec,
    pulsebase,
    value,
)


def copy_of(source: str = "shop", target: str | None = None, **spec: Any) -> models.PulseBase:
    recovery: dict[str, Any] = {"source": {"pulseBase": source}}
    if target is not None:
        recovery["targetTime"] = target
    return models.PulseBase.from_body(
        {
            "metadata": {"name": "copy", "namespace": "prod"},
            "spec": {"version": "2.4.1", "bootstrap": {"recovery": recovery}, **spec},
        }
    )


def patroni(pb: models.PulseBase, source: models.PulseBase) -> dict[str, Any]:
    config_map = find(postgres.render(pb, source=source).objects, "ConfigMap")
    loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["patroni.yml"])
    return loaded


def test_patroni_restores_instead_of_running_initdb() -> None:
    bootstrap = patroni(copy_of(), pulsebase())["bootstrap"]
    assert bootstrap["method"] == "pgbackrest_restore"
    method = bootstrap["pgbackrest_restore"]
    assert method["command"] == "sh /etc/patroni/restore.sh restore"
    # Patroni's --datadir is how the script learns the data directory.
    assert method["no_params"] is False
    assert method["recovery_conf"] == {
        "restore_command": 'sh "$PULSEBASE_RESTORE_SCRIPT" archive-get %f "%p"',
        "recovery_target_timeline": "latest",
    }
    # The cluster-wide settings and the post-bootstrap script still apply.
    assert "dcs" in bootstrap and bootstrap["post_init"] == "sh /etc/patroni/post_init.sh"


def test_a_target_time_stops_replay_there_and_promotes() -> None:
    pb = copy_of(target="2026-12-01T10:30:00+01:00")
    conf = patroni(pb, pulsebase())["bootstrap"]["pgbackrest_restore"]["recovery_conf"]
    assert conf["recovery_target_time"] == "2026-12-01 10:30:00+01:00"
    assert conf["recovery_target_action"] == "promote"
    variables = env(find(postgres.render(pb, source=pulsebase()).objects, "StatefulSet"))
    # pgBackRest's own spelling of the same moment.
    assert value(variables["PULSEBASE_RESTORE_TARGET_TIME"]) == "2026-12-01 10:30:00+01:00"
    assert "--type=time" in restore.RESTORE_SCRIPT
    assert "--target-action=promote" in restore.RESTORE_SCRIPT


@pytest.mark.parametrize(
    ("rfc3339", "pgbackrest"),
    [
        ("2026-12-01T09:30:00Z", "2026-12-01 09:30:00+00:00"),
        ("2026-12-01T09:30:00.25Z", "2026-12-01 09:30:00.250000+00:00"),
        ("2026-12-01T09:30:00-05:00", "2026-12-01 09:30:00-05:00"),
    ],
)
def test_target_times_are_given_to_pgbackrest_in_its_format(rfc3339: str, pgbackrest: str) -> None:
    assert restore.recovery_time(rfc3339) == pgbackrest


def test_without_a_target_no_target_variable_is_set() -> None:
    variables = env(find(postgres.render(copy_of(), source=pulsebase()).objects, "StatefulSet"))
    assert "PULSEBASE_RESTORE_TARGET_TIME" not in variables


def test_the_source_repository_is_in_a_file_of_its_own() -> None:
    source = pulsebase(objectStorage={"buckets": {"backups": "shop-vault"}})
    config_map = find(postgres.render(copy_of(), source=source).objects, "ConfigMap")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(config_map["data"]["restore.conf"])
    assert parser.sections() == ["global"]  # no stanza: pg1-path comes from the script
    repo = parser["global"]
    assert repo["repo1-s3-bucket"] == "shop-vault"
    assert repo["repo1-s3-endpoint"] == "shop-objectstore.prod.svc"
    assert repo["repo1-storage-port"] == "8333"
    assert repo["repo1-storage-ca-file"] == "/etc/pulsebase/restore-source-ca/ca.crt"
    assert repo["repo1-path"] == backups.REPO_PATH
    # Only one repository: nothing the copy runs could push to a second one.
    assert not [k for k in repo if k.startswith(("repo2", "pg1"))]
    # The copy's own configuration still names only its own bucket.
    own = backups.pgbackrest_config(copy_of())
    assert "copy-backups" in own and "shop-vault" not in own


def test_an_external_source_repository_uses_its_endpoint_and_refs() -> None:
    source = pulsebase(objectStorage=EXTERNAL_OBJECT_STORAGE)
    rendered = postgres.render(copy_of(), source=source).objects
    repo = restore.source_config(source)
    assert "repo1-s3-endpoint = s3.eu-west-1.amazonaws.com" in repo
    assert "repo1-storage-port = 443" in repo
    assert "repo1-s3-uri-style = host" in repo
    assert "ca-file" not in repo  # the system's CAs
    sts = find(rendered, "StatefulSet")
    key = env(sts)["PULSEBASE_RESTORE_S3_KEY"]["valueFrom"]["secretKeyRef"]
    external = EXTERNAL_OBJECT_STORAGE["external"]
    assert (key["name"], key["key"]) == (
        external["accessKeyId"]["name"],
        external["accessKeyId"]["key"],
    )
    assert all(v["name"] != "restore-source-ca" for v in pod_spec(sts)["volumes"])


def test_an_external_source_with_a_private_ca_is_verified_with_it() -> None:
    external = {**EXTERNAL_OBJECT_STORAGE["external"], "caBundle": {"name": "ca", "key": "pem"}}
    source = pulsebase(objectStorage={**EXTERNAL_OBJECT_STORAGE, "external": external})
    assert "repo1-storage-ca-file = /etc/pulsebase/restore-source-ca/ca.crt" in (
        restore.source_config(source)
    )
    sts = find(postgres.render(copy_of(), source=source).objects, "StatefulSet")
    (volume,) = [v for v in pod_spec(sts)["volumes"] if v["name"] == "restore-source-ca"]
    assert volume["secret"] == {
        "secretName": "ca",
        "items": [{"key": "pem", "path": "ca.crt"}],
        "optional": True,
    }


def test_the_source_keys_reach_the_pod_only_by_reference() -> None:
    objects = postgres.render(copy_of(), source=pulsebase()).objects
    sts = find(objects, "StatefulSet")
    variables = env(sts)
    for name, key in (
        ("PULSEBASE_RESTORE_S3_KEY", "access-key-id"),
        ("PULSEBASE_RESTORE_S3_KEY_SECRET", "secret-access-key"),
    ):
        ref = variables[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "shop-objectstore-keys", "key": key, "optional": True}
    # The copy's own pgBackRest variables still name the copy's repository and keys.
    own = variables["PGBACKREST_REPO1_S3_KEY"]["valueFrom"]["secretKeyRef"]
    assert own["name"] == "copy-objectstore-keys"
    assert value(variables["PGBACKREST_REPO1_S3_BUCKET"]) == "copy-backups"
    # No ConfigMap holds a key of the source, nor names its key Secret.
    for obj in stack.render(copy_of(), recovery_source=pulsebase()).objects:
        if obj["kind"] == "ConfigMap":
            text = json.dumps(obj["data"])
            assert "shop-objectstore-keys" not in text
            assert "secret" not in text.lower().replace("key_secret", "")


def test_the_source_ca_is_mounted_from_the_sources_secret() -> None:
    sts = find(postgres.render(copy_of(), source=pulsebase()).objects, "StatefulSet")
    (volume,) = [v for v in pod_spec(sts)["volumes"] if v["name"] == "restore-source-ca"]
    assert volume["secret"]["secretName"] == "shop-objectstore-tls"
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert volume["secret"]["optional"] is True
    mount = {"name": "restore-source-ca", "mountPath": "/etc/pulsebase/restore-source-ca"}
    assert {**mount, "readOnly": True} in container(sts)["volumeMounts"]


def test_the_script_refuses_a_restore_without_a_data_directory(tmp_path: Path) -> None:
    script = tmp_path / "restore.sh"
    script.write_text(restore.RESTORE_SCRIPT)
    variables = {"PATH": "/usr/bin:/bin", restore.KEY_ENV: "k", restore.SECRET_ENV: "s"}
    for args, message in ((["restore", "--scope=copy"], "no --datadir"), (["backup"], "usage")):
        done = subprocess.run(
            ["sh", str(script), *args], env=variables, capture_output=True, text=True, check=False
        )
        assert done.returncode == 2 and message in done.stderr


def test_the_script_clears_pgbackrest_variables_and_uses_the_stanza() -> None:
    script = restore.RESTORE_SCRIPT
    assert "PGBACKREST_" in script and 'unset "$variable"' in script
    assert f"--stanza={backups.STANZA}" in script
    # Nothing pgBackRest runs here writes to a repository.
    for command in ("archive-push", "backup", "stanza-create", "expire"):
        assert f" {command}" not in script.replace("usage: $0 restore", "")


def test_without_recovery_nothing_of_the_restore_is_rendered() -> None:
    config = postgres.patroni_config(pulsebase())
    assert "method" not in config["bootstrap"] and "initdb" in config["bootstrap"]
    data = find(postgres.render(pulsebase()).objects, "ConfigMap")["data"]
    assert set(data) == {"patroni.yml", "post_init.sh"}


def test_a_missing_source_is_refused_with_the_field_named() -> None:
    message = restore.refusal(copy_of(), None)
    assert message is not None
    assert message.startswith("spec.bootstrap.recovery.source.pulseBase: PulseBase shop")
    assert "does not exist" in message and "empty database" in message


@pytest.mark.parametrize(
    ("pb", "source", "fragment"),
    [
        (copy_of(), pulsebase(postgres=EXTERNAL_POSTGRES), "external PostgreSQL"),
        (copy_of(), pulsebase(backup={"enabled": False}), "backups disabled"),
        (copy_of(postgres=EXTERNAL_POSTGRES), pulsebase(), "managed PostgreSQL to restore"),
    ],
    ids=["source-database-external", "source-without-backups", "copy-database-external"],
)
def test_restores_that_cannot_work_are_refused(
    pb: models.PulseBase, source: models.PulseBase, fragment: str
) -> None:
    message = restore.refusal(pb, source)
    assert message is not None and fragment in message
    assert message.startswith("spec.bootstrap.recovery.source.pulseBase:")


def test_a_copy_sharing_its_sources_repository_is_refused() -> None:
    shared = {**EXTERNAL_OBJECT_STORAGE, "buckets": {"backups": "shop-backups"}}
    source = pulsebase(objectStorage=shared)
    message = restore.refusal(copy_of(objectStorage=shared), source)
    assert message is not None
    assert message.startswith("spec.objectStorage.buckets.backups:")
    assert "shop-backups" in message and "a bucket of its own" in message
    # Its own bucket on the same endpoint is fine, and so is a copy without backups.
    assert restore.refusal(copy_of(objectStorage=EXTERNAL_OBJECT_STORAGE), source) is None
    assert restore.refusal(copy_of(objectStorage=shared, backup={"enabled": False}), source) is None


def test_a_target_time_in_the_future_is_refused() -> None:
    now = datetime.datetime(2026, 12, 4, 6, 0, tzinfo=datetime.UTC)
    later = copy_of(target="2026-12-04T07:30:00+01:00")  # 06:30 UTC
    message = restore.refusal(later, pulsebase(), now=now)
    assert message is not None and message.startswith("spec.bootstrap.recovery.targetTime:")
    assert "in the future" in message
    earlier = copy_of(target="2026-12-04T06:30:00+01:00")  # 05:30 UTC
    assert restore.refusal(earlier, pulsebase(), now=now) is None


def test_a_target_time_earlier_than_the_sources_backups_reach_is_refused() -> None:
    now = datetime.datetime(2026, 12, 4, 6, 0, tzinfo=datetime.UTC)
    reach = datetime.datetime(2026, 11, 3, 2, 0, 15, tzinfo=datetime.UTC)

    def refused(target: str | None, recoverable_from: datetime.datetime | None = reach) -> Any:
        copy = copy_of(target=target)
        return restore.refusal(copy, pulsebase(), now=now, recoverable_from=recoverable_from)

    assert refused("2026-11-03T03:00:14+01:00") == (  # 02:00:14 UTC, the set's own second
        "spec.bootstrap.recovery.targetTime: 2026-11-03T03:00:14+01:00 is earlier than any "
        "backup of PulseBase shop reaches: no restore to a time reaches before "
        "2026-11-03T02:00:15Z (its status.backup.recoverableFrom), a second after its oldest "
        "backup ended. spec.bootstrap cannot change: create the copy again with a later "
        "targetTime"
    )
    # pgBackRest compares whole seconds: a fraction inside the set's second cannot start.
    assert refused("2026-11-03T02:00:14.999999Z") is not None
    assert refused("2026-11-03T02:00:15Z") is None
    assert refused("2026-11-02T21:00:14-05:00") is not None  # 02:00:14 UTC
    assert refused("2026-11-02T21:00:15-05:00") is None
    # The latest point, or a source whose status says nothing, checks nothing; nor does a
    # reach later than now, which no reading of the bucket wrote.
    assert refused(None) is None
    assert refused("2026-11-03T02:00:14Z", recoverable_from=None) is None
    assert (
        refused("2026-12-01T00:00:00Z", recoverable_from=now + datetime.timedelta(days=1)) is None
    )


def test_a_usable_source_is_not_refused() -> None:
    assert restore.refusal(copy_of(), pulsebase()) is None
    assert restore.refusal(pulsebase(), None) is None  # no restore asked for
