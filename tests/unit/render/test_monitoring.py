from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pulsebase_operator.render import monitoring, naming, stack

from .examples import pulsebase

REPOSITORY = Path(__file__).resolve().parents[3]


def rules(rule: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    assert rule is not None
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_rule_is_a_prometheus_rule_named_after_the_pulsebase() -> None:
    rule = monitoring.prometheus_rule(pulsebase(name="shop", namespace="prod"))
    assert rule is not None
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["name"] == naming.alerts("shop") == "shop-alerts"
    assert rule["metadata"]["namespace"] == "prod"
    assert rule["metadata"]["labels"]["app.kubernetes.io/component"] == "monitoring"
    assert rule["metadata"]["labels"]["pulsebase.io/instance"] == "shop"


def test_no_rule_when_disabled() -> None:
    assert monitoring.prometheus_rule(pulsebase(monitoring={"prometheusRule": False})) is None


def test_every_alert_is_present_by_default() -> None:
    assert sorted(rules(monitoring.prometheus_rule(pulsebase()))) == [
        "PulseBaseApiErrorRateHigh",
        "PulseBaseApiLatencyHigh",
        "PulseBaseAvailabilityFastBurn",
        "PulseBaseAvailabilitySlowBurn",
        "PulseBaseCacheHitRatioLow",
        "PulseBaseDatabaseQuerySlow",
        "PulseBaseDiskFullSoon",
        "PulseBaseDiskUsageHigh",
        "PulseBaseFullBackupTooOld",
        "PulseBaseIncrementalBackupTooOld",
        "PulseBaseRecoveryPointObjectiveExceeded",
        "PulseBaseReplicationLagHigh",
        "PulseBaseRestoreDrillFailed",
        "PulseBaseRestoreDrillSlowerThanObjective",
        "PulseBaseRestoreDrillTooOld",
    ]


def test_backup_ages_follow_the_schedules_and_drills_the_objectives() -> None:
    found = rules(monitoring.prometheus_rule(pulsebase()))
    # Daily full at 01:00 plus 2h; hourly incremental plus 1h.
    assert found["PulseBaseFullBackupTooOld"]["expr"].endswith("> 93600")
    assert found["PulseBaseIncrementalBackupTooOld"]["expr"].endswith("> 7200")
    assert 'kind="incr"' in found["PulseBaseIncrementalBackupTooOld"]["expr"]
    assert found["PulseBaseRestoreDrillTooOld"]["expr"].endswith("> 691200")  # 192h
    assert found["PulseBaseRestoreDrillSlowerThanObjective"]["expr"].endswith("> 3600")

    custom = rules(
        monitoring.prometheus_rule(
            pulsebase(
                backup={
                    "schedules": {"full": "0 2 * * 0", "incremental": "0 */6 * * *"},
                    "rto": "4h",
                    "drill": {"maxAge": "720h"},
                }
            )
        )
    )
    assert custom["PulseBaseFullBackupTooOld"]["expr"].endswith(f"> {7 * 86400 + 7200}")
    assert custom["PulseBaseFullBackupTooOld"]["annotations"]["summary"].endswith("170h.")
    assert custom["PulseBaseIncrementalBackupTooOld"]["expr"].endswith(f"> {7 * 3600}")
    assert custom["PulseBaseRestoreDrillTooOld"]["expr"].endswith("> 2592000")
    assert custom["PulseBaseRestoreDrillSlowerThanObjective"]["expr"].endswith("> 14400")


def test_no_drill_alerts_without_drills() -> None:
    found = rules(monitoring.prometheus_rule(pulsebase(backup={"drill": {"enabled": False}})))
    assert not [alert for alert in found if "Drill" in alert]


def test_defaults_are_the_release_plan_thresholds() -> None:
    found = rules(monitoring.prometheus_rule(pulsebase()))
    # 99.9 % leaves a 0.1 % budget: 14.4x and 6x of it.
    assert found["PulseBaseAvailabilityFastBurn"]["expr"].count("> 0.0144") == 2
    assert found["PulseBaseAvailabilitySlowBurn"]["expr"].count("> 0.006") == 2
    assert found["PulseBaseApiLatencyHigh"]["expr"].endswith("> 0.5")
    assert found["PulseBaseApiErrorRateHigh"]["expr"].endswith("> 0.01")
    assert found["PulseBaseDatabaseQuerySlow"]["expr"].endswith("> 0.2")
    assert found["PulseBaseCacheHitRatioLow"]["expr"].endswith("< 0.7")
    assert found["PulseBaseDiskUsageHigh"]["expr"].endswith("> 0.8")
    assert found["PulseBaseReplicationLagHigh"]["expr"].endswith("> 60")
    assert found["PulseBaseFullBackupTooOld"]["expr"].endswith("> 93600")
    assert found["PulseBaseIncrementalBackupTooOld"]["expr"].endswith("> 7200")
    assert found["PulseBaseRecoveryPointObjectiveExceeded"]["expr"].endswith("> 900")
    assert ", 345600) >" in found["PulseBaseDiskFullSoon"]["expr"]


def test_thresholds_come_from_the_spec() -> None:
    pb = pulsebase(
        monitoring={
            "thresholds": {
                "apiLatencyP95": "1s500ms",
                "dbQueryP95": "75ms",
                "errorRatePercent": "0.5",
                "cacheHitRatioPercent": "95.5",
                "diskUsagePercent": "90",
                "availabilityPercent": "99.95",
            }
        },
        backup={"rpo": "1h30m"},
    )
    found = rules(monitoring.prometheus_rule(pb))
    assert found["PulseBaseAvailabilityFastBurn"]["expr"].count("> 0.0072") == 2
    assert found["PulseBaseAvailabilitySlowBurn"]["expr"].count("> 0.003") == 2
    assert found["PulseBaseApiLatencyHigh"]["expr"].endswith("> 1.5")
    assert found["PulseBaseApiErrorRateHigh"]["expr"].endswith("> 0.005")
    assert found["PulseBaseDatabaseQuerySlow"]["expr"].endswith("> 0.075")
    assert found["PulseBaseCacheHitRatioLow"]["expr"].endswith("< 0.955")
    assert found["PulseBaseDiskUsageHigh"]["expr"].endswith("> 0.9")
    assert found["PulseBaseRecoveryPointObjectiveExceeded"]["expr"].endswith("> 5400")
    assert "1s500ms" in found["PulseBaseApiLatencyHigh"]["annotations"]["summary"]


def test_every_expression_selects_this_pulsebase_only() -> None:
    found = rules(monitoring.prometheus_rule(pulsebase(name="shop", namespace="prod")))
    for alert, rule in found.items():
        selectors = rule["expr"].count("{")
        assert selectors > 0, alert
        assert rule["expr"].count('{namespace="prod",pulsebase="shop"') == selectors, alert


def test_no_backup_alerts_without_backups() -> None:
    found = rules(monitoring.prometheus_rule(pulsebase(backup={"enabled": False})))
    assert not [alert for alert in found if "Backup" in alert or "RecoveryPoint" in alert]


@pytest.mark.parametrize("name", ["a", "shop", "a" * 40])
def test_names_fit_kubernetes_limits(name: str) -> None:
    rule = monitoring.prometheus_rule(pulsebase(name=name))
    assert rule is not None
    assert len(rule["metadata"]["name"]) <= naming.LABEL_LIMIT
    assert all(len(value) <= naming.LABEL_LIMIT for value in rule["metadata"]["labels"].values())
    assert all(len(alert) <= naming.LABEL_LIMIT for alert in rules(rule))


def test_every_alert_has_severity_priority_and_annotations() -> None:
    mapping = {"P1": "critical", "P2": "critical", "P3": "warning", "P4": "info"}
    for alert, rule in rules(monitoring.prometheus_rule(pulsebase())).items():
        labels, annotations = rule["labels"], rule["annotations"]
        assert mapping[labels["priority"]] == labels["severity"], alert
        assert rule["for"], alert
        assert annotations["summary"], alert
        assert "$value" in annotations["description"], alert
        assert annotations["runbook_url"] == f"{monitoring.RUNBOOK_BASE}{alert}.md"


def test_every_runbook_exists_and_is_documented() -> None:
    alerts_doc = (REPOSITORY / "docs" / "alerts.md").read_text()
    for alert, rule in rules(monitoring.prometheus_rule(pulsebase())).items():
        runbook = REPOSITORY / rule["annotations"]["runbook_url"]
        assert runbook.is_file(), f"{alert}: {runbook} is missing"
        assert runbook.read_text().startswith(f"# {alert}\n"), alert
        assert f"`{alert}`" in alerts_doc, alert


RULE_KIND = ("monitoring.coreos.com/v1", "PrometheusRule")


def kinds(rendered: stack.Rendered) -> set[str]:
    return {obj["kind"] for obj in rendered.objects}


def test_the_stack_holds_the_rule_only_where_its_kind_is_served() -> None:
    served = stack.render(pulsebase(), served=[RULE_KIND])
    assert "PrometheusRule" in kinds(served)
    assert served.unserved == ()

    unserved = stack.render(pulsebase())
    assert "PrometheusRule" not in kinds(unserved)
    # Asked for and not served: named, so status can say why there are no alerts.
    assert unserved.unserved == (RULE_KIND,)


def test_a_disabled_rule_is_neither_rendered_nor_missed() -> None:
    pb = pulsebase(monitoring={"prometheusRule": False})
    for served in ([RULE_KIND], []):
        rendered = stack.render(pb, served=served)
        assert "PrometheusRule" not in kinds(rendered)
        assert rendered.unserved == ()


def test_every_optional_kind_is_one_the_builders_emit() -> None:
    emitted = {
        (obj["apiVersion"], obj["kind"])
        for obj in stack.render(pulsebase(), served=[k.key for k in stack.OPTIONAL_KINDS]).objects
    }
    assert {k.key for k in stack.OPTIONAL_KINDS} <= emitted
    assert [k.plural for k in stack.OPTIONAL_KINDS] == ["prometheusrules"]
