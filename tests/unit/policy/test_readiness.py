"""What status says for each state of the workloads."""

from __future__ import annotations

from typing import Any

import pytest

from pulsebase_operator.api import models
from pulsebase_operator.policy import readiness
from pulsebase_operator.policy.readiness import State
from pulsebase_operator.render.parts import Component, Workload

NOW = "2026-12-03T10:00:00Z"
LATER = "2026-12-03T10:05:00Z"


def statefulset(
    ready: int, want: int = 3, updated: int | None = None, observed: int = 1
) -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "shop-postgres", "generation": 1},
        "spec": {"replicas": want},
        "status": {
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": want if updated is None else updated,
            "observedGeneration": observed,
        },
    }


def job(succeeded: int = 0, failed_message: str | None = None) -> dict[str, Any]:
    conditions = (
        [{"type": "Failed", "status": "True", "message": failed_message}] if failed_message else []
    )
    return {
        "kind": "Job",
        "metadata": {"name": "shop-redis-init"},
        "status": {"succeeded": succeeded, "conditions": conditions},
    }


PG = Workload("StatefulSet", "shop-postgres")
INIT = Workload("Job", "shop-redis-init")


def test_a_statefulset_with_all_pods_ready_is_ready() -> None:
    assert readiness.assess(PG, statefulset(ready=3)).state is State.READY


def test_a_missing_workload_is_being_created() -> None:
    result = readiness.assess(PG, None)
    assert result.state is State.PROGRESSING and "being created" in result.message


def test_unobserved_generation_is_progressing_even_if_pods_are_ready() -> None:
    live = statefulset(ready=3, observed=0)
    assert readiness.assess(PG, live).state is State.PROGRESSING


def test_partial_readiness_says_how_many() -> None:
    result = readiness.assess(PG, statefulset(ready=1))
    assert result.state is State.PROGRESSING and "1/3" in result.message


def test_a_deployment_past_its_deadline_has_failed() -> None:
    live = {
        "kind": "Deployment",
        "metadata": {"name": "shop-api", "generation": 2},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "ReplicaSet has timed out progressing.",
                }
            ],
        },
    }
    result = readiness.assess(Workload("Deployment", "shop-api"), live)
    assert result.state is State.FAILED and "timed out" in result.message


def test_jobs_are_ready_when_they_succeeded_and_failed_with_their_reason() -> None:
    assert readiness.assess(INIT, job(succeeded=1)).state is State.READY
    failed = readiness.assess(INIT, job(failed_message="BackoffLimitExceeded"))
    assert failed.state is State.FAILED and "BackoffLimitExceeded" in failed.message


def pb() -> models.PulseBase:
    return models.PulseBase.from_body(
        {
            "metadata": {"name": "shop", "namespace": "prod", "generation": 4},
            "spec": {"version": "2.4.1"},
        }
    )


BUCKETS = models.BucketStatus(assets="shop-assets", backups="shop-backups")
COMPONENTS = [
    Component("postgres", "managed", "shop-postgres-rw.prod.svc:5432", (PG,)),
    Component(
        "redis",
        "managed",
        "shop-redis.prod.svc:6379",
        (Workload("StatefulSet", "shop-redis"), INIT),
    ),
    Component("cdn", "disabled", None),
]


def live_all_ready() -> dict[tuple[str, str], Any]:
    redis = statefulset(ready=6, want=6)
    redis["metadata"]["name"] = "shop-redis"
    return {
        ("StatefulSet", "shop-postgres"): statefulset(ready=3),
        ("StatefulSet", "shop-redis"): redis,
        ("Job", "shop-redis-init"): job(succeeded=1),
    }


def conditions(status: models.PulseBaseStatus) -> dict[str, models.Condition]:
    return {c.type: c for c in status.conditions}


def test_everything_ready_makes_the_stack_ready() -> None:
    verdict = readiness.stack_status(
        pb=pb(), components=COMPONENTS, live=live_all_ready(), buckets=BUCKETS, previous={}, now=NOW
    )
    status = verdict.status
    assert status.phase is models.Phase.READY
    assert status.ready_components == "2/2"  # the disabled CDN is not counted
    assert status.observed_generation == 4
    assert status.version is None  # no API component here, so no running release is claimed
    conds = conditions(status)
    assert conds["Ready"].status == "True"
    assert conds["Progressing"].status == "False" and conds["Degraded"].status == "False"
    assert conds["PostgresReady"].status == "True" and conds["CdnReady"].status == "True"
    assert verdict.decision == "All components are ready."


def test_a_waiting_component_is_named_in_the_decision() -> None:
    live = live_all_ready()
    live[("StatefulSet", "shop-postgres")] = statefulset(ready=1)
    verdict = readiness.stack_status(
        pb=pb(), components=COMPONENTS, live=live, buckets=BUCKETS, previous={}, now=NOW
    )
    assert verdict.status.phase is models.Phase.PROGRESSING
    assert verdict.decision.startswith("Waiting for PostgreSQL")
    assert "1/3" in verdict.decision


def test_a_missing_secret_reference_degrades_the_component() -> None:
    verdict = readiness.stack_status(
        pb=pb(),
        components=COMPONENTS,
        live=live_all_ready(),
        buckets=BUCKETS,
        previous={},
        now=NOW,
        problems={"postgres": "Secret db has no key password"},
    )
    assert verdict.status.phase is models.Phase.DEGRADED
    assert conditions(verdict.status)["PostgresReady"].reason == "Failed"
    assert "no key password" in verdict.decision


def test_transition_time_moves_only_when_a_condition_flips() -> None:
    first = readiness.stack_status(
        pb=pb(), components=COMPONENTS, live=live_all_ready(), buckets=BUCKETS, previous={}, now=NOW
    )
    previous = readiness.dump(first.status)
    same = readiness.stack_status(
        pb=pb(),
        components=COMPONENTS,
        live=live_all_ready(),
        buckets=BUCKETS,
        previous=previous,
        now=LATER,
    )
    assert readiness.dump(same.status) == previous  # nothing to write on a steady pass
    live = live_all_ready()
    live[("StatefulSet", "shop-postgres")] = statefulset(ready=2)
    flipped = readiness.stack_status(
        pb=pb(), components=COMPONENTS, live=live, buckets=BUCKETS, previous=previous, now=LATER
    )
    conds = conditions(flipped.status)
    assert conds["Ready"].last_transition_time == LATER
    assert conds["RedisReady"].last_transition_time == NOW


def test_status_written_by_other_passes_is_kept() -> None:
    previous = {"backup": {"lastFull": "2026-12-03T01:00:00Z"}, "health": {"x": 1}}
    verdict = readiness.stack_status(
        pb=pb(),
        components=COMPONENTS,
        live=live_all_ready(),
        buckets=BUCKETS,
        previous=previous,
        now=NOW,
    )
    dumped = readiness.dump(verdict.status)
    assert dumped["backup"]["lastFull"] == "2026-12-03T01:00:00Z"
    assert dumped["health"] == {"x": 1}


def test_a_paused_stack_keeps_its_status_and_says_it_is_suspended() -> None:
    first = readiness.stack_status(
        pb=pb(), components=COMPONENTS, live=live_all_ready(), buckets=BUCKETS, previous={}, now=NOW
    )
    previous = readiness.dump(first.status)
    assert conditions(first.status)["Suspended"].status == "False"
    body = {"metadata": {"generation": 4}}
    paused = readiness.paused_status(pb_body=body, previous=previous, now=LATER)
    by_type = {c["type"]: c for c in paused["conditions"]}
    assert by_type["Suspended"]["status"] == "True"
    assert by_type["Suspended"]["lastTransitionTime"] == LATER
    assert by_type["Ready"] == {c["type"]: c for c in previous["conditions"]}["Ready"]
    assert paused["phase"] == previous["phase"]
    # Paused again later: nothing new to write.
    assert readiness.paused_status(pb_body=body, previous=paused, now=LATER) == paused


def test_only_the_value_true_pauses() -> None:
    assert readiness.is_paused({"pulsebase.io/paused": "true"})
    assert readiness.is_paused({"pulsebase.io/paused": "True"})
    assert not readiness.is_paused({"pulsebase.io/paused": "false"})
    assert not readiness.is_paused({})


@pytest.mark.parametrize("value", ["yes", "1", " true", "on"])
def test_a_pause_value_that_does_not_pause_is_named_in_the_suspended_condition(
    value: str,
) -> None:
    # Someone who wrote paused=yes believes the stack is paused; say it is not.
    body = {
        "metadata": {
            "name": "shop",
            "namespace": "prod",
            "annotations": {"pulsebase.io/paused": value},
        },
        "spec": {"version": "2.4.1"},
    }
    verdict = readiness.stack_status(
        pb=models.PulseBase.from_body(body),
        components=COMPONENTS,
        live=live_all_ready(),
        buckets=BUCKETS,
        previous={},
        now=NOW,
    )
    suspended = conditions(verdict.status)["Suspended"]
    assert suspended.status == "False"
    assert suspended.reason == "PauseValueIgnored"
    assert f"pulsebase.io/paused is {value!r}" in suspended.message
    assert "only 'true' pauses" in suspended.message


def test_a_failed_pass_after_a_pause_is_no_longer_suspended() -> None:
    body = {"metadata": {"generation": 5}}
    paused = readiness.paused_status(pb_body=body, previous={}, now=NOW)
    failed = readiness.failed_status(
        pb_body=body,
        previous=paused,
        reason="InvalidSpec",
        message="The spec is invalid.",
        now=LATER,
    )
    by_type = {c["type"]: c for c in failed["conditions"]}
    assert by_type["Suspended"]["status"] == "False"
    assert [c["type"] for c in failed["conditions"]].count("Suspended") == 1


def test_failure_messages_keep_component_names_as_written() -> None:
    live = live_all_ready()
    live[("Job", "shop-redis-init")] = job(failed_message="BackoffLimitExceeded")
    live[("StatefulSet", "shop-postgres")]["status"]["conditions"] = [
        {"type": "ReplicaFailure", "status": "True", "message": "quota exceeded."}
    ]
    verdict = readiness.stack_status(
        pb=pb(), components=COMPONENTS, live=live, buckets=BUCKETS, previous={}, now=NOW
    )
    assert verdict.decision.startswith("PostgreSQL and Redis failed: ")
    assert not verdict.decision.endswith("..")


def test_an_api_scaled_to_zero_claims_no_running_release() -> None:
    api = Workload("Deployment", "shop-api")
    components = [Component("api", "managed", "shop-api.prod.svc:80", (api,))]
    live = {
        ("Deployment", "shop-api"): {
            "kind": "Deployment",
            "metadata": {"name": "shop-api", "generation": 1},
            "spec": {"replicas": 0},
            "status": {"observedGeneration": 1},
        }
    }
    verdict = readiness.stack_status(
        pb=pb(),
        components=components,
        live=live,
        buckets=BUCKETS,
        previous={"version": "2.3.0"},
        now=NOW,
    )
    assert verdict.status.phase is models.Phase.READY
    assert verdict.status.version == "2.3.0"


def healthy(values: dict[str, Any] | None = None) -> readiness.Probed:
    return readiness.Probed(
        healthy=True,
        reason="Healthy",
        message="PostgreSQL answered in 3 ms.",
        values={"healthy": True, "measuredAt": NOW, **(values or {})},
    )


DOWN = readiness.Probed(
    healthy=False,
    reason="Unreachable",
    message="PostgreSQL at shop-postgres-rw.prod.svc:5432 refused the connection.",
    values={"healthy": False, "measuredAt": NOW},
)


def stack_with(health: dict[str, readiness.Probed], live: Any = None) -> readiness.Verdict:
    return readiness.stack_status(
        pb=pb(),
        components=COMPONENTS,
        live=live_all_ready() if live is None else live,
        buckets=BUCKETS,
        previous={},
        now=NOW,
        health=health,
    )


def test_measured_values_go_to_status_health_with_a_condition_each() -> None:
    verdict = stack_with({"postgres": healthy({"connections": 12})})
    status = readiness.dump(verdict.status)
    assert status["health"] == {"postgres": {"healthy": True, "measuredAt": NOW, "connections": 12}}
    assert conditions(verdict.status)["PostgresHealthy"].status == "True"
    assert verdict.status.phase is models.Phase.READY


def test_a_dependency_that_stops_answering_makes_the_stack_degraded() -> None:
    verdict = stack_with({"postgres": DOWN})
    conds = conditions(verdict.status)
    assert conds["PostgresHealthy"].status == "False"
    assert conds["PostgresHealthy"].reason == "Unreachable"
    assert conds["Ready"].status == "False" and conds["Degraded"].status == "True"
    assert verdict.status.components["postgres"].ready is False
    assert "refused the connection" in verdict.decision
    assert verdict.status.ready_components == "1/2"


def test_a_probe_failing_while_pods_start_leaves_the_stack_progressing() -> None:
    live = live_all_ready()
    live[("StatefulSet", "shop-postgres")] = statefulset(ready=1)
    verdict = stack_with({"postgres": DOWN}, live=live)
    assert verdict.status.phase is models.Phase.PROGRESSING
    assert conditions(verdict.status)["PostgresHealthy"].status == "False"


def test_a_dependency_not_probed_is_unknown_and_does_not_block_ready() -> None:
    not_probed = readiness.Probed(
        healthy=None, reason="NotProbed", message="Managed dependencies are not probed.", values={}
    )
    verdict = stack_with({"postgres": not_probed})
    assert conditions(verdict.status)["PostgresHealthy"].status == "Unknown"
    assert verdict.status.phase is models.Phase.READY
    assert verdict.status.health is None


def test_recovery_flips_the_condition_back_and_moves_its_transition_time() -> None:
    down = readiness.dump(stack_with({"postgres": DOWN}).status)
    back = readiness.stack_status(
        pb=pb(),
        components=COMPONENTS,
        live=live_all_ready(),
        buckets=BUCKETS,
        previous=down,
        now=LATER,
        health={"postgres": healthy()},
    )
    conds = conditions(back.status)
    assert conds["PostgresHealthy"].status == "True"
    assert conds["PostgresHealthy"].last_transition_time == LATER
    assert back.status.phase is models.Phase.READY


RULE_KIND = ("monitoring.coreos.com/v1", "PrometheusRule")


def alert_rules(pulsebase: models.PulseBase, unserved: list[tuple[str, str]]) -> readiness.Verdict:
    return readiness.stack_status(
        pb=pulsebase,
        components=COMPONENTS,
        live=live_all_ready(),
        buckets=BUCKETS,
        previous={},
        now=NOW,
        unserved=unserved,
    )


def test_alert_rules_applied_when_the_kind_is_served() -> None:
    cond = conditions(alert_rules(pb(), unserved=[]).status)["AlertRulesApplied"]
    assert (cond.status, cond.reason) == ("True", "Applied")
    assert "PrometheusRule shop-alerts" in cond.message


def test_alert_rules_not_served_say_what_to_install_and_leave_the_stack_ready() -> None:
    verdict = alert_rules(pb(), unserved=[RULE_KIND])
    cond = conditions(verdict.status)["AlertRulesApplied"]
    assert (cond.status, cond.reason) == ("False", "KindNotServed")
    assert "does not serve monitoring.coreos.com/v1 PrometheusRule" in cond.message
    assert "prometheus-operator" in cond.message
    # An extra, not a component: the stack is Ready and the decision does not change.
    assert verdict.status.phase is models.Phase.READY
    assert verdict.decision == "All components are ready."


def test_alert_rules_disabled_in_the_spec() -> None:
    disabled = models.PulseBase.from_body(
        {
            "metadata": {"name": "shop", "namespace": "prod"},
            "spec": {"version": "2.4.1", "monitoring": {"prometheusRule": False}},
        }
    )
    cond = conditions(alert_rules(disabled, unserved=[RULE_KIND]).status)["AlertRulesApplied"]
    assert (cond.status, cond.reason) == ("False", "Disabled")


def test_pods_ready_but_not_yet_available_are_not_counted() -> None:
    live = statefulset(ready=3)
    live["status"]["availableReplicas"] = 1  # ready for less than minReadySeconds
    result = readiness.assess(PG, live)
    assert result.state is State.PROGRESSING and "1/3" in result.message
    live["status"]["availableReplicas"] = 3
    assert readiness.assess(PG, live).state is State.READY


def test_backups_healthy_is_reported_beside_readiness_without_degrading_the_stack() -> None:
    backup = models.BackupStatus(last_full="2026-12-03T01:00:08Z", counts={"full": 1})
    verdict = readiness.stack_status(
        pb=pb(),
        components=COMPONENTS,
        live=live_all_ready(),
        buckets=BUCKETS,
        previous={"backup": {"lastFull": "2026-11-01T01:00:00Z"}},
        now=NOW,
        backup=backup,
        backup_health=(False, "NoArchivedWal", "No WAL has been archived yet."),
    )
    cond = conditions(verdict.status)["BackupsHealthy"]
    assert (cond.status, cond.reason, cond.message) == (
        "False",
        "NoArchivedWal",
        "No WAL has been archived yet.",
    )
    assert verdict.status.backup == backup
    assert verdict.status.phase is models.Phase.READY


def test_without_a_backup_verdict_status_backup_is_kept_and_no_condition_added() -> None:
    verdict = readiness.stack_status(
        pb=pb(),
        components=COMPONENTS,
        live=live_all_ready(),
        buckets=BUCKETS,
        previous={"backup": {"lastFull": "2026-11-01T01:00:00Z"}},
        now=NOW,
    )
    assert "BackupsHealthy" not in conditions(verdict.status)
    assert verdict.status.backup == models.BackupStatus(last_full="2026-11-01T01:00:00Z")
