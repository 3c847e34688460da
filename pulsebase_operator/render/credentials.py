"""Credentials the operator generates once per PulseBase and never overwrites.

Only managed components get generated credentials; for external ones the user's own
Secrets are referenced instead. The API's secret key is always generated. The managed
object storage also gets a private CA and a server certificate for its S3 endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pulsebase_operator.api import models
from pulsebase_operator.render import labels, naming
from pulsebase_operator.render.parts import GeneratedSecret

# The application role and database the managed PostgreSQL creates at bootstrap.
APP_USERNAME = "pulsebase"
APP_DATABASE = "pulsebase"
# The user of Patroni's REST API.
PATRONI_RESTAPI_USERNAME = "patroni"

ACCESS_KEY_ID = "access-key-id"
SECRET_ACCESS_KEY = "secret-access-key"  # noqa: S105 (a key name, not a secret)
S3_CONFIG_KEY = "s3.json"


def generated(pb: models.PulseBase) -> list[GeneratedSecret]:
    spec = pb.spec
    secrets: list[GeneratedSecret] = []
    if spec.postgres.mode is models.Mode.MANAGED:
        secrets += [
            _secret(
                pb,
                naming.postgres_superuser_secret,
                random_keys=(("password", 32),),
                data_of="postgres",
            ),
            _secret(
                pb,
                naming.postgres_replication_secret,
                random_keys=(("password", 32),),
                data_of="postgres",
            ),
            _secret(
                pb,
                naming.postgres_app_secret,
                random_keys=(("password", 32),),
                templates=(("username", APP_USERNAME), ("database", APP_DATABASE)),
                data_of="postgres",
            ),
            # Patroni asks for these on its unsafe REST endpoints (switchover, restart,
            # reinitialize, /config); the probes' GETs stay open.
            _secret(
                pb,
                naming.postgres_restapi_secret,
                random_keys=(("password", 32),),
                templates=(("username", PATRONI_RESTAPI_USERNAME),),
            ),
        ]
    if spec.redis.mode is models.Mode.MANAGED:
        secrets.append(_secret(pb, naming.redis_secret, random_keys=(("password", 32),)))
    if spec.object_storage.mode is models.Mode.MANAGED:
        secrets.append(
            _secret(
                pb,
                naming.objectstore_secret,
                random_keys=((ACCESS_KEY_ID, 20), (SECRET_ACCESS_KEY, 40)),
                templates=((S3_CONFIG_KEY, s3_config_template(pb)),),
            )
        )
        secrets.append(
            GeneratedSecret(
                name=naming.objectstore_tls(pb.metadata.name),
                namespace=pb.metadata.namespace,
                labels=labels.unowned(pb.metadata.name),
                random_keys=(),
                certificate_for=objectstore_dns_names(pb),
            )
        )
    secrets.append(_secret(pb, naming.api_secret, random_keys=(("secret-key", 48),)))
    return secrets


def objectstore_dns_names(pb: models.PulseBase) -> tuple[str, ...]:
    """Every name the managed object storage's Service answers to inside the cluster."""
    service, namespace = naming.objectstore(pb.metadata.name), pb.metadata.namespace
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )


def s3_config_template(pb: models.PulseBase) -> str:
    """SeaweedFS identities as a `str.format` template over the generated keys.

    The edge cache fetches assets without credentials, so the assets bucket (and only
    it) is readable anonymously from inside the cluster.
    """
    assets = pb.spec.object_storage.buckets.assets or naming.assets_bucket(pb.metadata.name)
    config = {
        "identities": [
            {
                "name": "pulsebase",
                "credentials": [
                    {"accessKey": f"<{ACCESS_KEY_ID}>", "secretKey": f"<{SECRET_ACCESS_KEY}>"}
                ],
                "actions": ["Admin", "List", "Read", "Tagging", "Write"],
            },
            {"name": "anonymous", "actions": [f"Read:{assets}"]},
        ]
    }
    # JSON braces must survive str.format; only the two placeholders are fields.
    text = json.dumps(config, indent=2, sort_keys=True).replace("{", "{{").replace("}", "}}")
    for key in (ACCESS_KEY_ID, SECRET_ACCESS_KEY):
        text = text.replace(f"<{key}>", "{" + key + "}")
    return text


def _secret(
    pb: models.PulseBase,
    name_of: Callable[[str], str],
    *,
    random_keys: tuple[tuple[str, int], ...],
    templates: tuple[tuple[str, str], ...] = (),
    data_of: str | None = None,
) -> GeneratedSecret:
    name = pb.metadata.name
    return GeneratedSecret(
        name=name_of(name),
        namespace=pb.metadata.namespace,
        labels=labels.unowned(name),
        random_keys=random_keys,
        templates=templates,
        data_of=data_of,
    )
