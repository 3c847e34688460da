import pytest

from pulsebase_operator.api import models
from pulsebase_operator.render import app, labels
from pulsebase_operator.render.parts import Object

from .examples import (
    EXTERNAL_OBJECT_STORAGE,
    EXTERNAL_POSTGRES,
    EXTERNAL_REDIS,
    container,
    env,
    external,
    find,
    kinds,
    pod_spec,
    pulsebase,
    secret_ref,
    value,
)


def deployment(pb: models.PulseBase) -> Object:
    return find(app.render(pb).objects, "Deployment")


def test_api_renders_a_deployment_its_services_and_a_disruption_budget() -> None:
    part = app.render(pulsebase())
    assert kinds(part.objects) == [
        ("Deployment", "shop-api"),
        ("Service", "shop-api"),
        ("Service", "shop-api-metrics"),
        ("PodDisruptionBudget", "shop-api"),
    ]
    assert part.component.name == "api"
    assert part.component.endpoint == "http://shop-api.prod.svc"
    assert [(w.kind, w.name) for w in part.component.workloads] == [("Deployment", "shop-api")]


@pytest.mark.parametrize("replicas", [0, 1])
def test_no_disruption_budget_below_two_replicas(replicas: int) -> None:
    part = app.render(pulsebase(api={"replicas": replicas}))
    assert [kind for kind, _ in kinds(part.objects)] == ["Deployment", "Service", "Service"]


def test_deployment_rolls_one_pod_at_a_time_without_losing_capacity() -> None:
    spec = deployment(pulsebase(api={"replicas": 4}))["spec"]
    assert spec["replicas"] == 4
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert spec["minReadySeconds"] == 5
    assert spec["selector"]["matchLabels"] == labels.selector("shop", "api")


def test_image_is_the_release_unless_overridden() -> None:
    assert container(deployment(pulsebase()))["image"] == "ghcr.io/pulsebase/pulsebase:2.4.1"
    build = pulsebase(version="2.4.1+build.7")
    assert container(deployment(build))["image"] == "ghcr.io/pulsebase/pulsebase:2.4.1_build.7"
    custom = pulsebase(api={"image": "registry.local/pulsebase:dev"})
    assert container(deployment(custom))["image"] == "registry.local/pulsebase:dev"


def test_pods_carry_the_version_label() -> None:
    template = deployment(pulsebase())["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/version"] == "2.4.1"


def test_version_label_replaces_build_metadata_and_fits_63_characters() -> None:
    assert app.version_label("2.4.1+build.7") == "2.4.1_build.7"
    long = "1.0.0-" + "a" * 70
    assert len(app.version_label(long)) == 63


def test_ports_and_probes() -> None:
    main = container(deployment(pulsebase()))
    assert [(p["name"], p["containerPort"]) for p in main["ports"]] == [
        ("http", 8080),
        ("metrics", 9090),
    ]
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert "startupProbe" in main


def test_managed_dependencies_are_reached_through_their_services() -> None:
    variables = env(deployment(pulsebase()))
    assert value(variables["PULSEBASE_VERSION"]) == "2.4.1"
    assert secret_ref(variables["PULSEBASE_SECRET_KEY"]) == ("shop-api-keys", "secret-key")
    assert value(variables["DATABASE_HOST"]) == "shop-postgres-rw.prod.svc"
    assert value(variables["DATABASE_PORT"]) == "5432"
    assert value(variables["DATABASE_READ_HOST"]) == "shop-postgres-ro.prod.svc"
    assert secret_ref(variables["DATABASE_NAME"]) == ("shop-postgres-app", "database")
    assert secret_ref(variables["DATABASE_USER"]) == ("shop-postgres-app", "username")
    assert secret_ref(variables["DATABASE_PASSWORD"]) == ("shop-postgres-app", "password")
    assert value(variables["REDIS_NODES"]).split(",")[0] == (
        "shop-redis-0.shop-redis.prod.svc:6379"
    )
    assert len(value(variables["REDIS_NODES"]).split(",")) == 6
    assert value(variables["REDIS_TLS"]) == "false"
    assert secret_ref(variables["REDIS_PASSWORD"]) == ("shop-redis-auth", "password")
    assert value(variables["S3_ENDPOINT"]) == "https://shop-objectstore.prod.svc:8333"
    assert value(variables["AWS_CA_BUNDLE"]) == "/etc/pulsebase/objectstore-ca/ca.crt"
    assert value(variables["S3_FORCE_PATH_STYLE"]) == "true"
    assert value(variables["S3_ASSETS_BUCKET"]) == "shop-assets"
    assert value(variables["S3_BACKUPS_BUCKET"]) == "shop-backups"
    assert secret_ref(variables["S3_ACCESS_KEY_ID"]) == ("shop-objectstore-keys", "access-key-id")
    assert secret_ref(variables["S3_SECRET_ACCESS_KEY"]) == (
        "shop-objectstore-keys",
        "secret-access-key",
    )
    assert value(variables["PULSEBASE_CDN_URL"]) == "http://shop-edge.prod.svc"


def test_single_postgres_instance_serves_reads_from_the_primary() -> None:
    variables = env(deployment(pulsebase(postgres={"instances": 1})))
    assert value(variables["DATABASE_READ_HOST"]) == "shop-postgres-rw.prod.svc"


def test_external_dependencies_use_the_users_endpoints_and_secrets() -> None:
    variables = env(deployment(external()))
    assert value(variables["DATABASE_HOST"]) == "db.example.com"
    assert value(variables["DATABASE_PORT"]) == "6432"
    assert value(variables["DATABASE_NAME"]) == "shopdb"
    assert value(variables["DATABASE_SSLMODE"]) == "verify-full"
    assert secret_ref(variables["DATABASE_USER"]) == ("rds", "user")
    assert secret_ref(variables["DATABASE_PASSWORD"]) == ("rds", "pass")
    assert "DATABASE_READ_HOST" not in variables
    assert value(variables["REDIS_NODES"]) == "cache-1.example.com:6380,cache-2.example.com:6380"
    assert value(variables["REDIS_TLS"]) == "true"
    assert secret_ref(variables["REDIS_PASSWORD"]) == ("elasticache", "token")
    assert value(variables["S3_ENDPOINT"]) == "https://s3.eu-west-1.amazonaws.com"
    assert value(variables["S3_REGION"]) == "eu-west-1"
    assert value(variables["S3_FORCE_PATH_STYLE"]) == "false"
    assert secret_ref(variables["S3_ACCESS_KEY_ID"]) == ("aws", "id")
    assert secret_ref(variables["S3_SECRET_ACCESS_KEY"]) == ("aws", "secret")
    assert "PULSEBASE_CDN_URL" not in variables


def test_an_external_ipv6_database_host_is_given_to_libpq_without_brackets() -> None:
    # The spec takes an IPv6 address as [2001:db8::5]; libpq's host takes no brackets.
    ipv6 = {
        **EXTERNAL_POSTGRES,
        "external": {**EXTERNAL_POSTGRES["external"], "host": "[2001:db8::5]"},
    }
    variables = env(deployment(pulsebase(postgres=ipv6)))
    assert value(variables["DATABASE_HOST"]) == "2001:db8::5"


def test_external_redis_without_a_password_sets_none() -> None:
    no_password = {**EXTERNAL_REDIS, "external": {"endpoints": ["cache:6379"], "tls": False}}
    variables = env(deployment(pulsebase(redis=no_password)))
    assert "REDIS_PASSWORD" not in variables
    assert value(variables["REDIS_TLS"]) == "false"


def test_each_dependency_switches_mode_on_its_own() -> None:
    variables = env(
        deployment(pulsebase(postgres=EXTERNAL_POSTGRES, objectStorage=EXTERNAL_OBJECT_STORAGE))
    )
    assert value(variables["DATABASE_HOST"]) == "db.example.com"
    assert secret_ref(variables["REDIS_PASSWORD"]) == ("shop-redis-auth", "password")
    assert secret_ref(variables["S3_ACCESS_KEY_ID"]) == ("aws", "id")


def test_extra_env_comes_last_and_empty_values_are_left_out() -> None:
    pb = pulsebase(api={"extraEnv": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "FLAG"}]})
    entries = pod_spec(deployment(pb))["containers"][0]["env"]
    assert entries[-2:] == [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "FLAG"}]


def test_operator_variables_are_unique() -> None:
    names = [e["name"] for e in container(deployment(pulsebase()))["env"]]
    assert len(names) == len(set(names))


def test_service_exposes_only_http_on_80() -> None:
    pb = pulsebase(api={"serviceType": "LoadBalancer"})
    service = find(app.render(pb).objects, "Service", "shop-api")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert service["spec"]["selector"] == labels.selector("shop", "api")


@pytest.mark.parametrize("service_type", ["ClusterIP", "NodePort", "LoadBalancer"])
def test_metrics_stay_inside_the_cluster_whatever_the_api_service_type(
    service_type: str,
) -> None:
    pb = pulsebase(api={"serviceType": service_type})
    service = find(app.render(pb).objects, "Service", "shop-api-metrics")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    assert service["spec"]["selector"] == labels.selector("shop", "api")
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
