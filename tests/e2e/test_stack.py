"""The operator against the real control plane: what a user sees after `kubectl apply`."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.e2e.conftest import (
    GROUP,
    OPERATOR_USER,
    PLURAL,
    RESYNC_SECONDS,
    VERSION,
    Operator,
    apply,
    example,
    wait_for,
)
from tests.support.fixtures import audit_lines, count_writes
from tests.support.localcluster import LocalCluster

pytestmark = pytest.mark.e2e

MANAGED = "examples/pulsebase.yaml"
EXTERNAL = "examples/pulsebase-external.yaml"


def get_pb(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return k8s.CustomObjectsApi(api).get_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, namespace, PLURAL, name
    )


def condition(pb: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in pb.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return cond  # type: ignore[no-any-return]
    return None


def ready(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """The PulseBase once Ready=True for its current generation, else None."""
    pb = get_pb(api, namespace, name)
    cond = condition(pb, "Ready")
    current = (
        pb["status"].get("observedGeneration") == pb["metadata"]["generation"]
        if "status" in pb
        else False
    )
    return pb if current and cond and cond["status"] == "True" else None


def names(api: k8s.ApiClient, namespace: str) -> dict[str, set[str]]:
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    policy, batch = k8s.PolicyV1Api(api), k8s.BatchV1Api(api)
    return {
        "StatefulSet": {
            o.metadata.name for o in apps.list_namespaced_stateful_set(namespace).items
        },
        "Deployment": {o.metadata.name for o in apps.list_namespaced_deployment(namespace).items},
        "Service": {o.metadata.name for o in core.list_namespaced_service(namespace).items},
        "ConfigMap": {o.metadata.name for o in core.list_namespaced_config_map(namespace).items},
        "Secret": {o.metadata.name for o in core.list_namespaced_secret(namespace).items},
        "PVC": {
            o.metadata.name for o in core.list_namespaced_persistent_volume_claim(namespace).items
        },
        "PDB": {
            o.metadata.name for o in policy.list_namespaced_pod_disruption_budget(namespace).items
        },
        "Job": {o.metadata.name for o in batch.list_namespaced_job(namespace).items},
        "CronJob": {o.metadata.name for o in batch.list_namespaced_cron_job(namespace).items},
    }


def patch_spec(api: k8s.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    k8s.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
    )


def ready_stack(
    cluster: LocalCluster, api: k8s.ApiClient, namespace: str, **spec: Any
) -> dict[str, Any]:
    """Apply the managed example (with `spec` overrides) and wait until it is Ready."""
    docs = example(MANAGED, namespace)
    next(d for d in docs if d["kind"] == "PulseBase")["spec"].update(spec)
    done = apply(cluster, *docs)
    assert done.returncode == 0, done.stderr
    return wait_for(lambda: ready(api, namespace, "shop"), timeout=180, what="Ready")  # type: ignore[no-any-return]


def test_example_stack_becomes_ready_with_every_child(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    started = time.monotonic()
    done = apply(control_plane, *example(MANAGED, namespace))
    assert done.returncode == 0, done.stderr
    pb = wait_for(lambda: ready(api_client, namespace, "shop"), timeout=180, what="Ready")
    print(f"apply -> Ready: {time.monotonic() - started:.1f}s")

    children = names(api_client, namespace)
    assert {"shop-postgres", "shop-redis", "shop-objectstore"} <= children["StatefulSet"]
    assert {"shop-api", "shop-edge"} <= children["Deployment"]
    assert {
        "shop-postgres-rw",
        "shop-postgres-ro",
        "shop-redis",
        "shop-objectstore",
        "shop-api",
        "shop-edge",
    } <= children["Service"]
    assert {"shop-postgres", "shop-redis"} <= children["PDB"]
    assert {
        "shop-postgres-superuser",
        "shop-postgres-app",
        "shop-redis-auth",
        "shop-objectstore-keys",
        "shop-objectstore-tls",
        "shop-api-keys",
    } <= children["Secret"]
    assert {f"data-shop-postgres-{i}" for i in range(3)} <= children["PVC"]
    assert "shop-backup-stanza" in children["Job"]
    assert children["CronJob"] == {
        "shop-backup-full",
        "shop-backup-incr",
        "shop-backup-vec",
        "shop-drill",
    }
    assert {"shop-pgbackrest", "shop-drill"} <= children["ConfigMap"]

    # What `kubectl get pb` and `kubectl describe pb` show.
    status = pb["status"]
    assert status["phase"] == "Ready"
    assert status["readyComponents"] == "5/5"
    assert status["buckets"] == {"assets": "shop-assets", "backups": "shop-backups"}
    for kind in (
        "Ready",
        "PostgresReady",
        "RedisReady",
        "ObjectStorageReady",
        "ApiReady",
        "CdnReady",
    ):
        assert condition(pb, kind)["status"] == "True", kind
    assert condition(pb, "Progressing")["status"] == "False"
    assert condition(pb, "Degraded")["status"] == "False"
    table = control_plane.kubectl("get", "pb", "-n", namespace).stdout
    assert table.split()[:6] == ["NAME", "VERSION", "PHASE", "READY", "LAST", "BACKUP"]
    assert "2.4.1" in table and "Ready" in table and "5/5" in table
    described = control_plane.kubectl("describe", "pb", "shop", "-n", namespace).stdout
    assert "Created" in described and "StatefulSet shop-postgres" in described

    # The operator never writes spec: what the user applied is what is stored.
    assert pb["metadata"]["generation"] == 1
    applied = next(d for d in example(MANAGED, namespace) if d["kind"] == "PulseBase")
    assert pb["spec"] == applied["spec"]

    # A steady pass writes nothing: count the operator's write requests in the audit log
    # while events on the children wake it for pass after pass.
    mark = audit_lines(control_plane.audit_log)
    passes_before = _passes(operator)
    counted_before = operator.metric("pulsebase_operator_api_writes_total")
    for touch in range(3):
        control_plane.kubectl(
            "annotate",
            "statefulset",
            "shop-redis",
            "-n",
            namespace,
            f"example.com/touched={touch}",
            "--overwrite",
        )
        time.sleep(2)
    assert _passes(operator) >= passes_before + 3, "child events did not wake the operator"
    # Writes in this namespace: other tests' stacks may still be torn down meanwhile.
    writes = count_writes(
        control_plane.audit_log, OPERATOR_USER, since_line=mark, namespace=namespace
    )
    assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]
    # The operator's own counter agrees with the API server.
    assert operator.metric("pulsebase_operator_api_writes_total") == counted_before
    assert operator.metric("pulsebase_operator_reconcile_duration_seconds_count") > 0
    print(f"write requests in {_passes(operator) - passes_before} steady passes: {len(writes)}")


def test_backup_cron_jobs_follow_the_spec_schedule_and_time_zone(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    assert apply(control_plane, *example(MANAGED, namespace)).returncode == 0
    batch = k8s.BatchV1Api(api_client)
    expected = {
        "shop-backup-full": "0 1 * * *",
        "shop-backup-incr": "30 * * * *",
        "shop-backup-vec": "0 3 * * *",
        "shop-drill": "0 5 * * 0",
    }

    def schedules() -> dict[str, tuple[str, str, str]]:
        return {
            job.metadata.name: (
                job.spec.schedule,
                job.spec.time_zone,
                job.spec.concurrency_policy,
            )
            for job in batch.list_namespaced_cron_job(namespace).items
        }

    found = wait_for(
        lambda: schedules() if set(schedules()) == set(expected) else None,
        what="the backup and drill CronJobs",
    )
    assert found == {name: (cron, "UTC", "Forbid") for name, cron in expected.items()}
    full = batch.read_namespaced_cron_job("shop-backup-full", namespace)
    container = full.spec.job_template.spec.template.spec.containers[0]
    assert container.command[1:3] == ["backup-job", "--kind=full"]
    assert full.metadata.owner_references[0].name == "shop"

    # A changed schedule and time zone reach the CronJobs on the next pass.
    patch_spec(
        api_client,
        namespace,
        "shop",
        {"backup": {"timeZone": "Europe/Berlin", "schedules": {"full": "15 2 * * *"}}},
    )
    found = wait_for(
        lambda: (
            schedules() if schedules().get("shop-backup-full", ("",))[0] == "15 2 * * *" else None
        ),
        what="the new full-backup schedule",
    )
    assert found["shop-backup-full"] == ("15 2 * * *", "Europe/Berlin", "Forbid")
    assert found["shop-backup-incr"] == ("30 * * * *", "Europe/Berlin", "Forbid")
    assert found["shop-drill"] == ("0 5 * * 0", "Europe/Berlin", "Forbid")

    # Drills off: only the drill's CronJob and ConfigMap go.
    patch_spec(api_client, namespace, "shop", {"backup": {"drill": {"enabled": False}}})
    wait_for(lambda: "shop-drill" not in schedules(), what="the drill CronJob pruned")
    assert set(schedules()) == set(expected) - {"shop-drill"}
    assert "shop-drill" not in names(api_client, namespace)["ConfigMap"]

    # Backups off: the CronJobs and the stanza Job are pruned.
    patch_spec(api_client, namespace, "shop", {"backup": {"enabled": False}})
    wait_for(lambda: not schedules(), what="the backup CronJobs pruned")
    assert "shop-backup-stanza" not in names(api_client, namespace)["Job"]


def test_a_stale_status_entry_is_removed_once_not_rewritten_forever(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    assert apply(control_plane, *example(EXTERNAL, namespace)).returncode == 0
    wait_for(lambda: ready(api_client, namespace, "shop"), timeout=120, what="Ready")
    stale = {"status": {"components": {"search": {"mode": "managed", "ready": True}}}}
    k8s.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "shop", stale
    )
    wait_for(
        lambda: "search" not in get_pb(api_client, namespace, "shop")["status"]["components"],
        timeout=15,
        what="the stale entry removed",
    )
    mark = audit_lines(control_plane.audit_log)
    for touch in range(3):
        control_plane.kubectl(
            "annotate",
            "deployment",
            "shop-api",
            "-n",
            namespace,
            f"example.com/touched={touch}",
            "--overwrite",
        )
        time.sleep(2)
    writes = count_writes(
        control_plane.audit_log, OPERATOR_USER, since_line=mark, namespace=namespace
    )
    assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]


def _passes(operator: Operator) -> int:
    return sum('"pass complete"' in line for line in operator.log_lines())


def test_scaling_updates_and_pruning_follow_the_spec(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    ready_stack(control_plane, api_client, namespace)
    apps = k8s.AppsV1Api(api_client)

    # Scale: the children follow and status goes back to Ready.
    patch_spec(
        api_client, namespace, "shop", {"api": {"replicas": 5}, "postgres": {"instances": 5}}
    )
    wait_for(
        lambda: apps.read_namespaced_deployment("shop-api", namespace).spec.replicas == 5,
        what="API Deployment scaled to 5",
    )
    wait_for(
        lambda: apps.read_namespaced_stateful_set("shop-postgres", namespace).spec.replicas == 5,
        what="PostgreSQL scaled to 5",
    )
    wait_for(lambda: ready(api_client, namespace, "shop"), timeout=120, what="Ready again")

    # A version change rolls the API onto the new release image.
    patch_spec(api_client, namespace, "shop", {"version": "2.5.0"})
    wait_for(
        lambda: (
            apps.read_namespaced_deployment("shop-api", namespace)
            .spec.template.spec.containers[0]
            .image.endswith(":2.5.0")
        ),
        what="new image",
    )
    pb = wait_for(lambda: ready(api_client, namespace, "shop"), timeout=120, what="Ready")
    assert pb["status"]["version"] == "2.5.0"

    # Removing the CDN prunes its objects and disables its condition.
    patch_spec(api_client, namespace, "shop", {"cdn": {"provider": "none"}})
    wait_for(
        lambda: "shop-edge" not in names(api_client, namespace)["Deployment"],
        what="edge Deployment pruned",
    )
    pb = wait_for(lambda: ready(api_client, namespace, "shop"), timeout=120, what="Ready")
    assert "shop-edge" not in names(api_client, namespace)["Service"]
    assert pb["status"]["components"]["cdn"]["mode"] == "disabled"
    assert pb["status"]["readyComponents"] == "4/4"
    events = control_plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=Pruned"
    ).stdout
    assert "shop-edge" in events


def test_deletion_collects_children_and_keeps_volumes_under_retain(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    ready_stack(control_plane, api_client, namespace)
    pvcs = names(api_client, namespace)["PVC"]
    assert pvcs

    done = control_plane.kubectl("delete", "pb", "shop", "-n", namespace, "--timeout=60s")
    assert done.returncode == 0, done.stderr

    def collected() -> bool:
        left = names(api_client, namespace)
        return not left["StatefulSet"] and not left["Deployment"] and not left["PDB"]

    wait_for(collected, timeout=90, what="children garbage-collected")
    assert names(api_client, namespace)["PVC"] == pvcs  # Retain keeps every volume claim
    # Credentials stay with the retained data they unlock.
    assert "shop-postgres-superuser" in names(api_client, namespace)["Secret"]


def test_restart_mid_way_converges_without_duplicates(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    assert apply(control_plane, *example(MANAGED, namespace)).returncode == 0
    core = k8s.CoreV1Api(api_client)
    wait_for(
        lambda: "shop-postgres-superuser" in names(api_client, namespace)["Secret"],
        what="first credentials",
    )
    operator.stop(signal.SIGKILL)  # no chance to finish the pass
    password = core.read_namespaced_secret("shop-postgres-superuser", namespace).data
    operator.start()
    wait_for(lambda: ready(api_client, namespace, "shop"), timeout=180, what="Ready")

    assert core.read_namespaced_secret("shop-postgres-superuser", namespace).data == password
    apps = k8s.AppsV1Api(api_client)
    statefulsets = apps.list_namespaced_stateful_set(namespace).items
    assert sorted(s.metadata.name for s in statefulsets) == [
        "shop-objectstore",
        "shop-postgres",
        "shop-redis",
    ]
    assert len(apps.list_namespaced_deployment(namespace).items) == 2


def test_external_mode_deploys_only_the_api_and_cdn(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    docs = example(EXTERNAL, namespace)
    greeting = {"name": "GREETING", "value": "Grüße 😀"}  # beyond the Basic Multilingual Plane
    next(d for d in docs if d["kind"] == "PulseBase")["spec"]["api"]["extraEnv"] = [greeting]
    assert apply(control_plane, *docs).returncode == 0
    pb = wait_for(lambda: ready(api_client, namespace, "shop"), timeout=120, what="Ready")
    api = k8s.AppsV1Api(api_client).read_namespaced_deployment("shop-api", namespace)
    env = {e.name: e.value for e in api.spec.template.spec.containers[0].env}
    assert env["GREETING"] == "Grüße 😀"
    children = names(api_client, namespace)
    assert children["StatefulSet"] == set()
    assert children["Deployment"] == {"shop-api", "shop-edge"}
    assert pb["status"]["components"]["postgres"]["mode"] == "external"
    assert pb["status"]["buckets"] == {"assets": "shop-assets-prod", "backups": "shop-backups-prod"}

    # A credential the spec points at disappears: the component and the stack say why.
    core = k8s.CoreV1Api(api_client)
    core.patch_namespaced_secret(
        "shop-cloud-credentials", namespace, [{"op": "remove", "path": "/data/db-password"}]
    )
    pb = wait_for(
        lambda: (p := get_pb(api_client, namespace, "shop"))["status"]["phase"] == "Degraded" and p,
        timeout=60,
        what="Degraded",
    )
    assert "shop-cloud-credentials has no key db-password" in pb["status"]["message"]
    assert condition(pb, "PostgresReady")["status"] == "False"


def test_growing_a_volume_resizes_claims_without_restarting_pods(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    ready_stack(control_plane, api_client, namespace)
    core, apps = k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
    selector = "pulsebase.io/instance=shop,app.kubernetes.io/component=postgres"
    pods = {
        p.metadata.name: p.metadata.uid
        for p in core.list_namespaced_pod(namespace, label_selector=selector).items
    }
    assert len(pods) == 3

    patch_spec(api_client, namespace, "shop", {"postgres": {"storage": {"size": "60Gi"}}})

    def claims_grown() -> bool:
        claims = [
            core.read_namespaced_persistent_volume_claim(f"data-shop-postgres-{i}", namespace)
            for i in range(3)
        ]
        return all(c.spec.resources.requests["storage"] == "60Gi" for c in claims)

    wait_for(claims_grown, what="volume claims asking for 60Gi")
    wait_for(
        lambda: (
            (s := _statefulset(apps, namespace, "shop-postgres")) is not None
            and s.spec.volume_claim_templates[0].spec.resources.requests["storage"] == "60Gi"
        ),
        what="StatefulSet recreated with the new template",
    )
    wait_for(lambda: ready(api_client, namespace, "shop"), timeout=120, what="Ready again")
    after = {
        p.metadata.name: p.metadata.uid
        for p in core.list_namespaced_pod(namespace, label_selector=selector).items
    }
    assert after == pods  # the same pods, adopted, never restarted
    events = control_plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=ResizingVolume"
    ).stdout
    assert "data-shop-postgres-0" in events


def _statefulset(apps: k8s.AppsV1Api, namespace: str, name: str) -> Any:
    try:
        return apps.read_namespaced_stateful_set(name, namespace)
    except k8s.ApiException as error:
        if error.status == 404:
            return None
        raise


def test_deletion_policy_delete_removes_volumes_and_credentials(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    ready_stack(control_plane, api_client, namespace, deletionPolicy="Delete")
    # Patroni keeps its cluster state in ConfigMaps of its own; stand in for it.
    state = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "shop-postgres-config",
            "namespace": namespace,
            "labels": {"pulsebase.io/patroni-scope": "shop-postgres"},
        },
    }
    assert apply(control_plane, state).returncode == 0

    done = control_plane.kubectl("delete", "pb", "shop", "-n", namespace, "--wait=false")
    assert done.returncode == 0, done.stderr

    # Nothing goes before a final full backup, taken from the full-backup CronJob's
    # template, has succeeded (the fake nodes complete its pod).
    batch = k8s.BatchV1Api(api_client)

    def final_backup_succeeded() -> bool:
        jobs = {j.metadata.name: j for j in batch.list_namespaced_job(namespace).items}
        job = jobs.get("shop-backup-full-manual-final")
        if job is None:
            assert names(api_client, namespace)["PVC"], "volumes went before the final backup"
            return False
        return bool(job.status and job.status.succeeded)

    wait_for(final_backup_succeeded, timeout=60, what="the final backup Job to succeed")

    def released() -> bool:
        left = names(api_client, namespace)
        return (
            not left["PVC"]
            and not left["StatefulSet"]
            and not any(s.startswith("shop-") for s in left["Secret"])
            and "shop-postgres-config" not in left["ConfigMap"]
        )

    wait_for(released, timeout=90, what="volumes, credentials and Patroni state removed")


def test_status_follows_child_readiness_within_seconds(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    ready_stack(control_plane, api_client, namespace)
    nodes = ["kwok-node-0", "kwok-node-1"]
    try:
        # A member lost with nowhere to reschedule it: PostgreSQL has 2 of 3 ready.
        for node in nodes:
            control_plane.kubectl("cordon", node)
        control_plane.kubectl("delete", "pod", "shop-postgres-1", "-n", namespace, "--wait=false")
        pb = wait_for(
            lambda: (
                (p := get_pb(api_client, namespace, "shop"))["status"]["phase"] == "Progressing"
                and p
            ),
            timeout=10,
            what="Progressing within seconds",
        )
        assert "2/3" in pb["status"]["message"]
        assert condition(pb, "PostgresReady")["status"] == "False"
        assert condition(pb, "Ready")["status"] == "False"
    finally:
        for node in nodes:
            control_plane.kubectl("uncordon", node)
    wait_for(
        lambda: ready(api_client, namespace, "shop"), timeout=10, what="Ready again within seconds"
    )


def test_a_paused_stack_is_left_alone_until_resumed(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    ready_stack(control_plane, api_client, namespace)
    apps = k8s.AppsV1Api(api_client)

    control_plane.kubectl("annotate", "pb", "shop", "-n", namespace, "pulsebase.io/paused=true")
    pb = wait_for(
        lambda: (
            (p := get_pb(api_client, namespace, "shop"))
            and (c := condition(p, "Suspended"))
            and c["status"] == "True"
            and p
        ),
        timeout=15,
        what="Suspended=True",
    )
    assert "remove it to resume" in condition(pb, "Suspended")["message"]
    patch_spec(api_client, namespace, "shop", {"api": {"replicas": 6}})
    time.sleep(3)
    assert apps.read_namespaced_deployment("shop-api", namespace).spec.replicas == 3

    control_plane.kubectl("annotate", "pb", "shop", "-n", namespace, "pulsebase.io/paused-")
    wait_for(
        lambda: apps.read_namespaced_deployment("shop-api", namespace).spec.replicas == 6,
        timeout=15,
        what="the held change applied on resume",
    )
    pb = wait_for(lambda: ready(api_client, namespace, "shop"), timeout=60, what="Ready")
    assert condition(pb, "Suspended")["status"] == "False"


def test_retain_set_just_before_deletion_still_keeps_the_volumes(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    ready_stack(control_plane, api_client, namespace, deletionPolicy="Delete")
    pvcs = names(api_client, namespace)["PVC"]
    # Paused, so no pass carries the new policy over to the StatefulSets before deletion.
    control_plane.kubectl("annotate", "pb", "shop", "-n", namespace, "pulsebase.io/paused=true")
    patch_spec(api_client, namespace, "shop", {"deletionPolicy": "Retain"})

    done = control_plane.kubectl("delete", "pb", "shop", "-n", namespace, "--timeout=60s")
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: not names(api_client, namespace)["StatefulSet"],
        timeout=90,
        what="StatefulSets collected",
    )
    time.sleep(3)  # the garbage collector would have removed the claims by now
    assert names(api_client, namespace)["PVC"] == pvcs


def test_a_deleted_database_secret_is_not_regenerated_over_existing_data(
    control_plane: LocalCluster, api_client: k8s.ApiClient, operator: Operator, namespace: str
) -> None:
    ready_stack(control_plane, api_client, namespace)
    core = k8s.CoreV1Api(api_client)
    kept = core.read_namespaced_secret("shop-postgres-app", namespace)
    core.delete_namespaced_secret("shop-postgres-app", namespace)

    # The operator does not watch Secrets (it holds no watch on them), so the next
    # resync pass is the one that notices.
    pb = wait_for(
        lambda: (p := get_pb(api_client, namespace, "shop"))["status"]["phase"] == "Degraded" and p,
        timeout=RESYNC_SECONDS + 15,
        what="Degraded",
    )
    assert (
        "shop-postgres-app is missing but the data it unlocks is still there"
        in (pb["status"]["message"])
    )
    assert "shop-postgres-app" not in names(api_client, namespace)["Secret"]

    # Restored by hand (from a backup, say): the stack is Ready again.
    restored = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "shop-postgres-app",
            "namespace": namespace,
            "labels": kept.metadata.labels,
        },
        "data": kept.data,
    }
    assert apply(control_plane, restored).returncode == 0
    wait_for(lambda: ready(api_client, namespace, "shop"), timeout=70, what="Ready again")
