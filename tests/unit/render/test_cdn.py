import datetime
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pulsebase_operator.render import cdn, certificates

from .examples import EXTERNAL_OBJECT_STORAGE, container, find, kinds, pod_spec, pulsebase


def test_no_cdn_renders_nothing() -> None:
    part = cdn.render(pulsebase(cdn={"provider": "none"}))
    assert part.objects == ()
    assert (part.component.name, part.component.mode, part.component.endpoint) == (
        "cdn",
        "disabled",
        None,
    )


def test_edge_renders_nginx_behind_a_service() -> None:
    part = cdn.render(pulsebase())
    assert kinds(part.objects) == [
        ("ConfigMap", "shop-edge"),
        ("Deployment", "shop-edge"),
        ("Service", "shop-edge"),
        ("PodDisruptionBudget", "shop-edge"),
    ]
    assert part.component.mode == "managed"
    assert part.component.endpoint == "http://shop-edge.prod.svc"
    service = find(part.objects, "Service")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_single_edge_replica_has_no_disruption_budget() -> None:
    part = cdn.render(pulsebase(cdn={"edge": {"replicas": 1}}))
    assert "PodDisruptionBudget" not in [kind for kind, _ in kinds(part.objects)]


def test_deployment_mounts_tmp_and_a_cache_bounded_by_the_cache_size() -> None:
    pb = pulsebase(cdn={"edge": {"cacheSize": "5Gi", "replicas": 3}})
    deployment = find(cdn.render(pb).objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["cache"]["emptyDir"] == {"sizeLimit": "5Gi"}
    mounts = {m["mountPath"] for m in container(deployment)["volumeMounts"]}
    assert {"/tmp", "/var/cache/nginx"} <= mounts
    assert container(deployment)["image"] == "docker.io/nginxinc/nginx-unprivileged:1.27"
    assert container(deployment)["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_cache_fills_to_80_percent_of_the_volume() -> None:
    conf = cdn.nginx_conf(pulsebase(cdn={"edge": {"cacheSize": "1000Mi"}}))
    assert f"max_size={1000 * 2**20 * 8 // 10}" in conf


def test_nginx_writes_only_under_tmp_and_the_cache() -> None:
    conf = cdn.nginx_conf(pulsebase())
    assert "pid /tmp/nginx.pid;" in conf
    for path in re.findall(r"_temp_path (\S+);", conf):
        assert path.startswith("/tmp/")
    assert "proxy_cache_path /var/cache/nginx " in conf
    assert "listen 8080;" in conf


def test_assets_come_from_the_managed_bucket_for_the_asset_max_age() -> None:
    conf = cdn.nginx_conf(pulsebase(cdn={"edge": {"assetMaxAge": "2h"}}))
    assert "proxy_pass https://shop-objectstore.prod.svc:8333/shop-assets/;" in conf
    assert "proxy_cache_valid 200 7200s;" in conf


def test_the_managed_origin_is_verified_against_the_operators_ca() -> None:
    pb = pulsebase()
    conf = cdn.nginx_conf(pb)
    assert "proxy_ssl_verify on;" in conf
    assert "proxy_ssl_trusted_certificate /etc/pulsebase/objectstore-ca/ca.crt;" in conf
    deployment = find(cdn.render(pb).objects, "Deployment", "shop-edge")
    ca = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "objectstore-ca")
    assert ca["secret"] == {
        "secretName": "shop-objectstore-tls",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    mount = {"name": "objectstore-ca", "mountPath": "/etc/pulsebase/objectstore-ca"}
    assert {**mount, "readOnly": True} in container(deployment)["volumeMounts"]


def test_an_external_origin_mounts_no_ca() -> None:
    pb = pulsebase(objectStorage=EXTERNAL_OBJECT_STORAGE)
    assert "proxy_ssl_trusted_certificate" not in cdn.nginx_conf(pb)
    spec = pod_spec(find(cdn.render(pb).objects, "Deployment", "shop-edge"))
    assert all(v["name"] != "objectstore-ca" for v in spec["volumes"])


def test_assets_come_from_an_external_bucket_by_virtual_host() -> None:
    pb = pulsebase(objectStorage=EXTERNAL_OBJECT_STORAGE)
    assert cdn.assets_origin(pb) == "https://shop-assets.s3.eu-west-1.amazonaws.com/"
    assert "proxy_ssl_server_name on;" in cdn.nginx_conf(pb)


def test_assets_come_from_an_external_bucket_by_path_when_asked() -> None:
    storage = {
        **EXTERNAL_OBJECT_STORAGE,
        "external": {**EXTERNAL_OBJECT_STORAGE["external"], "forcePathStyle": True},
    }
    pb = pulsebase(objectStorage=storage)
    assert cdn.assets_origin(pb) == "https://s3.eu-west-1.amazonaws.com/shop-assets/"


def test_api_is_micro_cached_for_anonymous_gets_only() -> None:
    conf = cdn.nginx_conf(pulsebase())
    api = conf[conf.index("location / {") :]
    assert "proxy_pass http://api;" in api
    assert "server shop-api.prod.svc:80;" in conf
    assert "proxy_cache_methods GET;" in api
    assert "proxy_cache_valid 200 1s;" in api
    assert "proxy_no_cache $http_authorization $http_cookie;" in api
    assert "proxy_cache_bypass $http_authorization $http_cookie;" in api


def test_stale_answers_on_errors_and_cache_status_header() -> None:
    conf = cdn.nginx_conf(pulsebase())
    assert conf.count("proxy_cache_use_stale error timeout") == 2
    assert conf.count("add_header X-Cache-Status $upstream_cache_status always;") == 2
    assert "location = /healthz" in conf
    assert 'return 200 "ok\\n";' in conf


def test_config_change_rolls_the_pods() -> None:
    def config_hash(age: str) -> str:
        pb = pulsebase(cdn={"edge": {"assetMaxAge": age}})
        deployment = find(cdn.render(pb).objects, "Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"]["pulsebase.io/config-hash"]

    assert config_hash("1h") == config_hash("1h")
    assert config_hash("1h") != config_hash("2h")


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    # Upstream names do not resolve here; point them at loopback for the syntax check.
    conf = re.sub(r"server \S+:80;", "server 127.0.0.1:80;", cdn.nginx_conf(pulsebase()))
    conf = conf.replace("https://shop-objectstore.prod.svc:8333", "https://127.0.0.1:8333")
    conf = conf.replace("/tmp/", f"{tmp_path}/")
    # nginx reads the trusted CA file when it loads the configuration.
    ca = certificates.issue(
        ["localhost"],
        common_name="test",
        ca_key=certificates.new_key(),
        server_key=certificates.new_key(),
        now=datetime.datetime.now(datetime.UTC),
    )[certificates.CA_KEY]
    (tmp_path / "ca.crt").write_text(ca)
    conf = conf.replace("/etc/pulsebase/objectstore-ca/ca.crt", str(tmp_path / "ca.crt"))
    conf = conf.replace("/var/cache/nginx", str(tmp_path / "cache"))
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(
        ["nginx", "-t", "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
