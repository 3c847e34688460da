"""The `edge` CDN: an nginx caching tier in front of the API and the assets bucket.

Assets are cached for spec.cdn.edge.assetMaxAge; API responses to anonymous GETs are
micro-cached for a second, which absorbs bursts without serving anything stale to a
signed-in user. With provider `none` nothing is rendered.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pulsebase_operator.api import models
from pulsebase_operator.api.quantity import parse_duration, parse_quantity
from pulsebase_operator.render import images, naming, objects, objectstore, pods
from pulsebase_operator.render.parts import Component, Object, Part, Workload

COMPONENT = "edge"
PORT = 8080
CONFIG_DIR = "/etc/nginx/pulsebase"
CACHE_DIR = "/var/cache/nginx"
# nginx's max_size is a target its cache manager enforces after the fact, and temp
# files come on top; leave headroom below the emptyDir limit, whose breach evicts.
CACHE_FILL_PERCENT = 80


def render(pb: models.PulseBase) -> Part:
    if pb.spec.cdn.provider is models.CdnProvider.NONE:
        return Part(objects=(), component=Component("cdn", "disabled", None))
    name = pb.metadata.name
    config = _config_map(pb)
    children: list[Object] = [
        config,
        _deployment(pb, config_hash=objects.config_hash(config["data"])),
        _service(pb),
    ]
    if pb.spec.cdn.edge.replicas > 1:
        children.append(objects.pdb(pb, naming.edge(name), COMPONENT, max_unavailable=1))
    return Part(
        objects=tuple(children),
        component=Component(
            name="cdn",
            mode="managed",
            endpoint=endpoint(pb),
            workloads=(Workload("Deployment", naming.edge(name)),),
        ),
    )


def endpoint(pb: models.PulseBase) -> str:
    return f"http://{naming.edge(pb.metadata.name)}.{pb.metadata.namespace}.svc"


def assets_origin(pb: models.PulseBase) -> str:
    """URL prefix under which the assets bucket's objects are served."""
    bucket = objectstore.buckets(pb).assets
    storage = pb.spec.object_storage
    base = objectstore.endpoint(pb).rstrip("/")
    external = storage.external
    if storage.mode is models.Mode.EXTERNAL and external and not external.force_path_style:
        url = urlsplit(base)
        return f"{url.scheme}://{bucket}.{url.netloc}{url.path}/"
    return f"{base}/{bucket}/"


def nginx_conf(pb: models.PulseBase) -> str:
    edge = pb.spec.cdn.edge
    name, namespace = pb.metadata.name, pb.metadata.namespace
    max_size = int(parse_quantity(edge.cache_size) * CACHE_FILL_PERCENT / 100)
    asset_seconds = max(1, int(parse_duration(edge.asset_max_age)))
    origin = assets_origin(pb)
    # SNI, which hosted S3 services need to pick the certificate.
    sni = "\n            proxy_ssl_server_name on;" if origin.startswith("https://") else ""
    if ca := objectstore.ca_file(pb):
        # The managed object storage's certificate, checked against the operator's CA.
        sni += (
            f"\n            proxy_ssl_verify on;\n            proxy_ssl_trusted_certificate {ca};"
        )
    stale = "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;"
    return f"""\
daemon off;
worker_processes auto;
pid /tmp/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 1024;
}}

http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    server_tokens off;

    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;

    proxy_cache_path {CACHE_DIR} levels=1:2 keys_zone=edge:16m max_size={max_size}
                     inactive={max(asset_seconds, 600)}s use_temp_path=off;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" "";
    }}

    upstream api {{
        server {naming.api(name)}.{namespace}.svc:80;
        keepalive 16;
    }}

    server {{
        listen {PORT};

        location = /healthz {{
            access_log off;
            default_type text/plain;
            return 200 "ok\\n";
        }}

        location /assets/ {{
            proxy_pass {origin};{sni}
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The bucket is read anonymously; pass no client credentials on.
            proxy_set_header Authorization "";
            proxy_set_header Cookie "";
            proxy_hide_header Set-Cookie;
            proxy_ignore_headers Set-Cookie;
            proxy_cache edge;
            proxy_cache_valid 200 {asset_seconds}s;
            proxy_cache_valid 404 10s;
            proxy_cache_lock on;
            proxy_cache_background_update on;
            {stale}
            add_header X-Cache-Status $upstream_cache_status always;
        }}

        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_cache edge;
            proxy_cache_methods GET;
            proxy_cache_valid 200 1s;
            # Never cache, nor answer from cache, anything a signed-in user asked.
            proxy_cache_bypass $http_authorization $http_cookie;
            proxy_no_cache $http_authorization $http_cookie;
            proxy_cache_lock on;
            {stale}
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"""


def _config_map(pb: models.PulseBase) -> Object:
    name = naming.edge(pb.metadata.name)
    return objects.config_map(pb, name, COMPONENT, data={"nginx.conf": nginx_conf(pb)})


def _deployment(pb: models.PulseBase, *, config_hash: str) -> Object:
    name = pb.metadata.name
    edge = pb.spec.cdn.edge
    container: dict[str, Any] = {
        "name": "nginx",
        "image": edge.image or images.edge(),
        # Straight to nginx: the image's entrypoint scripts rewrite files under /etc.
        "command": ["nginx", "-c", f"{CONFIG_DIR}/nginx.conf"],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": pods.http_probe("/healthz", "http"),
        "livenessProbe": pods.http_probe("/healthz", "http", failures=6),
        "securityContext": pods.container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": pods.TMP_DIR},
            {"name": "cache", "mountPath": CACHE_DIR},
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": naming.edge(name)}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "cache", "emptyDir": {"sizeLimit": edge.cache_size}},
    ]
    objectstore.trust_ca(pb, volumes=volumes, container=container)
    if resources := pods.resources(edge.resources):
        container["resources"] = resources
    return objects.deployment(
        pb,
        name=naming.edge(name),
        component=COMPONENT,
        replicas=edge.replicas,
        containers=[container],
        volumes=volumes,
        config_hash=config_hash,
    )


def _service(pb: models.PulseBase) -> Object:
    return objects.service(
        pb,
        naming.edge(pb.metadata.name),
        COMPONENT,
        ports=[{"name": "http", "port": 80, "targetPort": "http"}],
    )
