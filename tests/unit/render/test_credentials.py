import json

from pulsebase_operator.api import models
from pulsebase_operator.render import credentials, labels

from .examples import external, pulsebase


def names(pb: models.PulseBase) -> list[str]:
    return [secret.name for secret in credentials.generated(pb)]


def test_managed_stack_generates_a_secret_for_every_component() -> None:
    assert names(pulsebase()) == [
        "shop-postgres-superuser",
        "shop-postgres-replication",
        "shop-postgres-app",
        "shop-postgres-restapi",
        "shop-redis-auth",
        "shop-objectstore-keys",
        "shop-objectstore-tls",
        "shop-api-keys",
    ]


def test_the_object_storage_certificate_names_every_name_of_its_service() -> None:
    (tls,) = [s for s in credentials.generated(pulsebase()) if s.name == "shop-objectstore-tls"]
    assert tls.certificate_for == (
        "shop-objectstore",
        "shop-objectstore.prod",
        "shop-objectstore.prod.svc",
        "shop-objectstore.prod.svc.cluster.local",
    )
    assert tls.random_keys == () and tls.data_of is None


def test_external_stack_generates_only_the_api_key() -> None:
    (secret,) = credentials.generated(external())
    assert secret.name == "shop-api-keys"
    assert secret.random_keys == (("secret-key", 48),)


def test_secrets_carry_no_label_a_gitops_tool_would_adopt_them_by() -> None:
    for secret in credentials.generated(pulsebase()):
        assert secret.namespace == "prod"
        assert secret.labels == labels.unowned("shop")
        assert "app.kubernetes.io/instance" not in secret.labels
        assert secret.labels["pulsebase.io/instance"] == "shop"  # still found and pruned


def test_passwords_are_32_random_characters() -> None:
    by_name = {s.name: s for s in credentials.generated(pulsebase())}
    for name in (
        "shop-postgres-superuser",
        "shop-postgres-replication",
        "shop-postgres-app",
        "shop-postgres-restapi",
        "shop-redis-auth",
    ):
        assert by_name[name].random_keys == (("password", 32),)


def test_app_secret_names_the_role_and_database() -> None:
    by_name = {s.name: s for s in credentials.generated(pulsebase())}
    assert dict(by_name["shop-postgres-app"].templates) == {
        "username": "pulsebase",
        "database": "pulsebase",
    }


def test_patroni_restapi_secret_names_the_user() -> None:
    by_name = {s.name: s for s in credentials.generated(pulsebase())}
    assert dict(by_name["shop-postgres-restapi"].templates) == {"username": "patroni"}


def test_objectstore_config_formats_into_seaweedfs_identities_with_the_keys() -> None:
    by_name = {s.name: s for s in credentials.generated(pulsebase())}
    secret = by_name["shop-objectstore-keys"]
    assert secret.random_keys == (("access-key-id", 20), ("secret-access-key", 40))

    template = dict(secret.templates)["s3.json"]
    config = json.loads(template.format(**{"access-key-id": "AKID", "secret-access-key": "SECRET"}))

    operator, anonymous = config["identities"]
    assert operator["credentials"] == [{"accessKey": "AKID", "secretKey": "SECRET"}]
    assert "Admin" in operator["actions"]
    assert anonymous == {"name": "anonymous", "actions": ["Read:shop-assets"]}


def test_anonymous_read_follows_a_custom_assets_bucket() -> None:
    pb = pulsebase(objectStorage={"buckets": {"assets": "public-media"}})
    assert '"Read:public-media"' in credentials.s3_config_template(pb)
