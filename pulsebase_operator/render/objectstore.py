"""Managed object storage: one SeaweedFS server (Apache-2.0) speaking S3, and a Job that
creates the assets and backups buckets. In external mode the user's S3 endpoint is used
and nothing is rendered.

The S3 endpoint speaks only HTTPS (pgBackRest's S3 driver knows no other), with a
certificate from the private CA the operator generates once into the Secret
NAME-objectstore-tls; every client in the cluster trusts that CA through `ca.crt` of
the same Secret. The bucket Job talks to the master over its own port, not S3.
"""

from __future__ import annotations

from typing import Any

from pulsebase_operator.api import models
from pulsebase_operator.render import certificates, credentials, images, naming, objects, pods
from pulsebase_operator.render.parts import Component, Object, Part, Workload

COMPONENT = "objectstore"
S3_PORT = 8333
MASTER_PORT = 9333
# weed shell reaches the master over gRPC, by convention on the HTTP port + 10000.
MASTER_GRPC_PORT = MASTER_PORT + 10000
MANAGED_REGION = "us-east-1"
CONFIG_DIR = "/etc/seaweedfs"
# Not below CONFIG_DIR: a mount point inside a read-only Secret volume cannot be made.
TLS_DIR = "/etc/seaweedfs-tls"
# Where clients of the managed S3 endpoint mount the CA certificate (`ca_volume`).
CA_DIR = "/etc/pulsebase/objectstore-ca"
CA_FILE = f"{CA_DIR}/{certificates.CA_KEY}"
CA_VOLUME = "objectstore-ca"


def render(pb: models.PulseBase) -> Part:
    storage = pb.spec.object_storage
    name = pb.metadata.name
    if storage.mode is models.Mode.EXTERNAL:
        return Part(objects=(), component=Component("objectStorage", "external", endpoint(pb)))
    return Part(
        objects=(_service(pb), _stateful_set(pb), _buckets_job(pb)),
        component=Component(
            name="objectStorage",
            mode="managed",
            endpoint=endpoint(pb),
            workloads=(
                Workload("StatefulSet", naming.objectstore(name)),
                Workload("Job", naming.objectstore_buckets(name)),
            ),
        ),
    )


def buckets(pb: models.PulseBase) -> models.BucketStatus:
    spec = pb.spec.object_storage.buckets
    name = pb.metadata.name
    return models.BucketStatus(
        assets=spec.assets or naming.assets_bucket(name),
        backups=spec.backups or naming.backups_bucket(name),
    )


def endpoint(pb: models.PulseBase) -> str:
    """The S3 endpoint URL clients in the cluster use."""
    storage = pb.spec.object_storage
    if storage.mode is models.Mode.EXTERNAL:
        assert storage.external is not None  # the model requires it in external mode
        return storage.external.endpoint
    return f"https://{naming.objectstore(pb.metadata.name)}.{pb.metadata.namespace}.svc:{S3_PORT}"


def ca_ref(pb: models.PulseBase) -> models.SecretKeyRef | None:
    """The Secret key holding the CA clients verify the S3 endpoint with: the operator's
    own for the managed storage, `caBundle` for an external one (None: system CAs)."""
    storage = pb.spec.object_storage
    if storage.mode is models.Mode.EXTERNAL:
        return storage.external.ca_bundle if storage.external is not None else None
    return models.SecretKeyRef(
        name=naming.objectstore_tls(pb.metadata.name), key=certificates.CA_KEY
    )


def addressing(pb: models.PulseBase) -> tuple[str, bool]:
    """The region, and whether buckets are addressed by path rather than host name."""
    storage = pb.spec.object_storage
    if storage.mode is models.Mode.MANAGED:
        return MANAGED_REGION, True
    assert storage.external is not None  # the model requires it in external mode
    return storage.external.region, storage.external.force_path_style


def ca_file(pb: models.PulseBase) -> str | None:
    """Path of the CA certificate a client pod trusts for the S3 endpoint, once it mounts
    `ca_volume(pb)` at CA_DIR; None where the system's trust store is the one to use."""
    return CA_FILE if ca_ref(pb) is not None else None


def ca_volume(
    pb: models.PulseBase, *, name: str = CA_VOLUME, optional: bool = False
) -> dict[str, Any] | None:
    """The volume holding only the CA certificate (never the server's key), for pods that
    call the S3 endpoint; None where the system's CAs are used."""
    ref = ca_ref(pb)
    if ref is None:
        return None
    secret: dict[str, Any] = {
        "secretName": ref.name,
        "items": [{"key": ref.key, "path": certificates.CA_KEY}],
    }
    if optional:
        secret["optional"] = True
    return {"name": name, "secret": secret}


def ca_mount() -> dict[str, Any]:
    return {"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True}


def trust_ca(
    pb: models.PulseBase, *, volumes: list[dict[str, Any]], container: dict[str, Any]
) -> str | None:
    """Mount the CA the S3 endpoint's certificate chains to into `container`, adding its
    volume to `volumes`; the CA file's path, or None where the system's CAs serve."""
    volume = ca_volume(pb)
    if volume is None:
        return None
    volumes.append(volume)
    container.setdefault("volumeMounts", []).append(ca_mount())
    return CA_FILE


def _service(pb: models.PulseBase) -> Object:
    return objects.service(
        pb,
        naming.objectstore(pb.metadata.name),
        COMPONENT,
        ports=[
            {"name": "s3", "port": S3_PORT, "targetPort": "s3"},
            {"name": "master", "port": MASTER_PORT, "targetPort": "master"},
            {"name": "master-grpc", "port": MASTER_GRPC_PORT, "targetPort": "master-grpc"},
        ],
    )


def _stateful_set(pb: models.PulseBase) -> Object:
    name = pb.metadata.name
    managed = pb.spec.object_storage.managed
    container: dict[str, Any] = {
        "name": "seaweedfs",
        "image": managed.image or images.objectstore(),
        "command": [
            "weed",
            "server",
            "-dir=/data",
            "-ip=$(POD_IP)",
            "-ip.bind=0.0.0.0",
            "-master.volumeSizeLimitMB=1024",
            # 0: as many volumes as the disk holds.
            "-volume.max=0",
            "-s3",
            f"-s3.port={S3_PORT}",
            f"-s3.config={CONFIG_DIR}/{credentials.S3_CONFIG_KEY}",
            # With a key file, the gateway serves TLS on -s3.port and no plain HTTP.
            f"-s3.cert.file={TLS_DIR}/{certificates.CERT_KEY}",
            f"-s3.key.file={TLS_DIR}/{certificates.KEY_KEY}",
        ],
        "workingDir": "/data",
        "env": [pods.field_env("POD_IP", "status.podIP")],
        "ports": [
            {"name": "s3", "containerPort": S3_PORT},
            {"name": "master", "containerPort": MASTER_PORT},
            {"name": "master-grpc", "containerPort": MASTER_GRPC_PORT},
        ],
        # The kubelet does not verify the certificate of an HTTPS probe.
        "readinessProbe": pods.http_probe("/healthz", "s3", scheme="HTTPS"),
        "livenessProbe": pods.tcp_probe("master", failures=6),
        "securityContext": pods.container_security_context(),
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            # Unix sockets of the filer and S3 gateway live here.
            {"name": "tmp", "mountPath": pods.TMP_DIR},
        ],
    }
    if resources := pods.resources(managed.resources):
        container["resources"] = resources
    return objects.stateful_set(
        pb,
        name=naming.objectstore(name),
        component=COMPONENT,
        replicas=1,
        parallel=False,
        containers=[container],
        volumes=[
            {
                "name": "config",
                "secret": {
                    "secretName": naming.objectstore_secret(name),
                    "items": [
                        {"key": credentials.S3_CONFIG_KEY, "path": credentials.S3_CONFIG_KEY}
                    ],
                },
            },
            {
                "name": "tls",
                "secret": {
                    "secretName": naming.objectstore_tls(name),
                    "items": [
                        {"key": certificates.CERT_KEY, "path": certificates.CERT_KEY},
                        {"key": certificates.KEY_KEY, "path": certificates.KEY_KEY},
                    ],
                    # Readable by the pod's group (fsGroup) only.
                    "defaultMode": 0o440,
                },
            },
            {"name": "tmp", "emptyDir": {}},
        ],
        storage=managed.storage,
    )


# Creates whichever of $BUCKETS is missing, until all are listed. Buckets that exist
# are left alone: `s3.bucket.create` on an existing bucket replaces its entry, so a
# failed listing must never pass for an empty one; `weed shell` reports failures only
# as "error:" lines and still exits 0. It waits for ever on a master it cannot reach,
# hence `timeout`.
BUCKETS_SCRIPT = r"""
set -u
weed_shell() { timeout 60 weed shell -master="$MASTER" 2>&1; }
missing=$BUCKETS
tries=0
while :; do
  if listing=$(echo s3.bucket.list | weed_shell) &&
    ! printf '%s\n' "$listing" | grep -q '^error: '; then
    missing=""
    for bucket in $BUCKETS; do
      printf '%s\n' "$listing" | awk '{ print $1 }' | grep -qxF "$bucket" ||
        missing="$missing $bucket"
    done
    if [ -z "$missing" ]; then
      echo "buckets ready: $BUCKETS"
      exit 0
    fi
    for bucket in $missing; do
      echo "s3.bucket.create -name $bucket" | weed_shell
    done
  fi
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "buckets still missing:$missing" >&2
    exit 1
  fi
  sleep 5
done
"""


def _buckets_job(pb: models.PulseBase) -> Object:
    name = pb.metadata.name
    wanted = buckets(pb)
    return objects.script_job(
        pb,
        name=naming.objectstore_buckets(name),
        component=COMPONENT,
        container="buckets",
        image=pb.spec.object_storage.managed.image or images.objectstore(),
        script=BUCKETS_SCRIPT,
        env=[
            pods.plain_env("MASTER", f"{naming.objectstore(name)}:{MASTER_PORT}"),
            pods.plain_env("BUCKETS", f"{wanted.assets} {wanted.backups}"),
            # weed shell keeps its history in the temporary directory.
            pods.plain_env("TMPDIR", pods.TMP_DIR),
        ],
        tmp=True,
    )
