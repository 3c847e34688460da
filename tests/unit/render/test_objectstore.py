import shutil
import subprocess

import pytest

from pulsebase_operator.render import labels, objectstore

from .examples import (
    EXTERNAL_OBJECT_STORAGE,
    container,
    env,
    find,
    kinds,
    pod_spec,
    pulsebase,
    value,
)


def test_external_object_storage_renders_nothing_and_reports_the_endpoint() -> None:
    part = objectstore.render(pulsebase(objectStorage=EXTERNAL_OBJECT_STORAGE))
    assert part.objects == ()
    assert part.component.mode == "external"
    assert part.component.endpoint == "https://s3.eu-west-1.amazonaws.com"


def test_managed_object_storage_renders_seaweedfs_and_a_buckets_job() -> None:
    part = objectstore.render(pulsebase())
    assert kinds(part.objects) == [
        ("Service", "shop-objectstore"),
        ("StatefulSet", "shop-objectstore"),
        ("Job", "shop-objectstore-buckets"),
    ]
    assert part.component.name == "objectStorage"
    assert part.component.endpoint == "https://shop-objectstore.prod.svc:8333"
    assert [(w.kind, w.name) for w in part.component.workloads] == [
        ("StatefulSet", "shop-objectstore"),
        ("Job", "shop-objectstore-buckets"),
    ]


def test_buckets_default_to_names_derived_from_the_pulsebase() -> None:
    buckets = objectstore.buckets(pulsebase())
    assert (buckets.assets, buckets.backups) == ("shop-assets", "shop-backups")


def test_buckets_follow_the_spec() -> None:
    pb = pulsebase(objectStorage={"buckets": {"assets": "media", "backups": "vault"}})
    buckets = objectstore.buckets(pb)
    assert (buckets.assets, buckets.backups) == ("media", "vault")


def test_server_runs_weed_with_s3_and_the_generated_identities() -> None:
    sts = find(objectstore.render(pulsebase()).objects, "StatefulSet")
    main = container(sts)
    assert main["command"][:2] == ["weed", "server"]
    assert "-s3" in main["command"]
    assert "-s3.port=8333" in main["command"]
    assert "-s3.config=/etc/seaweedfs/s3.json" in main["command"]
    assert "-dir=/data" in main["command"]
    volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "shop-objectstore-keys"
    assert volumes["config"]["secret"]["items"] == [{"key": "s3.json", "path": "s3.json"}]


def test_s3_is_served_over_tls_with_the_generated_certificate() -> None:
    pb = pulsebase()
    sts = find(objectstore.render(pb).objects, "StatefulSet")
    main = container(sts)
    assert "-s3.cert.file=/etc/seaweedfs-tls/tls.crt" in main["command"]
    assert "-s3.key.file=/etc/seaweedfs-tls/tls.key" in main["command"]
    assert {"name": "tls", "mountPath": "/etc/seaweedfs-tls", "readOnly": True} in main[
        "volumeMounts"
    ]
    tls = next(v for v in pod_spec(sts)["volumes"] if v["name"] == "tls")["secret"]
    assert tls["secretName"] == "shop-objectstore-tls"
    assert {i["key"] for i in tls["items"]} == {"tls.crt", "tls.key"}  # not the CA alone
    # The readiness probe speaks HTTPS to the same port (the kubelet does not verify).
    assert main["readinessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "s3",
        "scheme": "HTTPS",
    }
    assert objectstore.endpoint(pb) == "https://shop-objectstore.prod.svc:8333"


def test_clients_get_the_ca_and_never_the_servers_key() -> None:
    volume = objectstore.ca_volume(pulsebase())
    assert volume == {
        "name": "objectstore-ca",
        "secret": {
            "secretName": "shop-objectstore-tls",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
        },
    }
    assert objectstore.ca_file(pulsebase()) == "/etc/pulsebase/objectstore-ca/ca.crt"
    external = pulsebase(objectStorage=EXTERNAL_OBJECT_STORAGE)
    assert objectstore.ca_volume(external) is None
    assert objectstore.ca_file(external) is None


def test_server_is_a_single_pod_with_a_data_volume() -> None:
    pb = pulsebase(objectStorage={"managed": {"storage": {"size": "100Gi"}}})
    spec = find(objectstore.render(pb).objects, "StatefulSet")["spec"]
    assert spec["replicas"] == 1
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


def test_service_exposes_s3_and_the_master() -> None:
    service = find(objectstore.render(pulsebase()).objects, "Service")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports["s3"] == 8333
    assert ports["master"] == 9333


def test_buckets_job_is_told_the_master_and_the_buckets() -> None:
    pb = pulsebase(objectStorage={"buckets": {"assets": "media", "backups": "vault"}})
    job = find(objectstore.render(pb).objects, "Job")
    variables = env(job)
    assert value(variables["MASTER"]) == "shop-objectstore:9333"
    assert value(variables["BUCKETS"]) == "media vault"
    assert container(job)["command"] == ["sh", "-c", objectstore.BUCKETS_SCRIPT]
    assert job["spec"]["backoffLimit"] == 10
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not labels.selector("shop", "objectstore").items() <= pod_labels.items()


def test_buckets_script_creates_only_missing_buckets_after_a_clean_listing() -> None:
    script = objectstore.BUCKETS_SCRIPT
    assert script.index("s3.bucket.list") < script.index("s3.bucket.create -name $bucket")
    assert "grep -q '^error: '" in script
    assert 'timeout 60 weed shell -master="$MASTER"' in script


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_buckets_script_is_valid_shell() -> None:
    subprocess.run(["sh", "-n"], input=objectstore.BUCKETS_SCRIPT, text=True, check=True)


def test_an_external_endpoint_with_a_private_ca_is_verified_against_its_ca_bundle() -> None:
    storage = {
        **EXTERNAL_OBJECT_STORAGE,
        "external": {
            **EXTERNAL_OBJECT_STORAGE["external"],
            "caBundle": {"name": "corp-ca", "key": "root.pem"},
        },
    }
    pb = pulsebase(objectStorage=storage)
    # The user's key is mounted under the same file name every client is given.
    assert objectstore.ca_volume(pb) == {
        "name": "objectstore-ca",
        "secret": {"secretName": "corp-ca", "items": [{"key": "root.pem", "path": "ca.crt"}]},
    }
    assert objectstore.ca_file(pb) == "/etc/pulsebase/objectstore-ca/ca.crt"
