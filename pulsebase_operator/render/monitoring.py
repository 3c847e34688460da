"""Alert rules for one PulseBase, as a prometheus-operator PrometheusRule.

Thresholds come from spec.monitoring.thresholds (their defaults are the release plan's)
and spec.backup.rpo. Every expression selects the series of this PulseBase alone, by the
labels `namespace` and `pulsebase`, so one Prometheus can watch many stacks. The API
alerts read metrics the PulseBase API exposes; the others read gauges the operator's
live probes export (docs/alerts.md lists both).

Each alert carries a `severity` for routing and a `priority`, the incident level:

    P1  critical  page now: users are failing or data is at risk now
    P2  critical  page: degraded service, or a safety net (backups, replicas) is gone
    P3  warning   ticket: act within a business day before it becomes a P2
    P4  info      review: no user impact yet, worth a look in the weekly review

The PrometheusRule kind only exists where prometheus-operator's CRDs are installed, so
the reconcile pass applies it only when the API server serves that kind.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pulsebase_operator.api import models, schedules
from pulsebase_operator.api.quantity import parse_duration
from pulsebase_operator.render import naming, objects

API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"
COMPONENT = "monitoring"
# Relative to the repository root, so the link resolves wherever the repository is
# hosted or vendored; an Alertmanager template can prefix its own base URL.
RUNBOOK_BASE = "runbooks/"

# Multi-window, multi-burn-rate alerts on the availability objective (the Google SRE
# workbook's numbers): 14.4x spends 2 % of a 30-day budget in an hour, 6x spends 5 %
# in six hours. The short window makes the alert stop soon after the burn stops.
FAST_BURN = ("1h", "5m", Decimal("14.4"))
SLOW_BURN = ("6h", "30m", Decimal("6"))
# A backup is late once the longest gap of its schedule has passed by this margin: one
# run missed, or still running long after it should have ended (daily full: 26 h,
# hourly incremental: 2 h).
FULL_BACKUP_MARGIN = datetime.timedelta(hours=2)
INCREMENTAL_BACKUP_MARGIN = datetime.timedelta(hours=1)
DISK_FULL_HORIZON_SECONDS = 4 * 86400
REPLICATION_LAG_MAX_SECONDS = 60


@dataclass(frozen=True)
class Level:
    severity: str
    priority: str


P1 = Level("critical", "P1")
P2 = Level("critical", "P2")
P3 = Level("warning", "P3")
P4 = Level("info", "P4")


def prometheus_rule(pb: models.PulseBase) -> dict[str, Any] | None:
    if not pb.spec.monitoring.prometheus_rule:
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": objects.metadata(pb, naming.alerts(pb.metadata.name), COMPONENT),
        "spec": {"groups": groups(pb)},
    }


def groups(pb: models.PulseBase) -> list[dict[str, Any]]:
    """The rule groups, also usable as a plain Prometheus rules file."""
    found = [
        _group("pulsebase-availability", _availability(pb)),
        _group("pulsebase-api", _api(pb)),
        _group("pulsebase-postgres", _postgres(pb)),
        _group("pulsebase-redis", _redis(pb)),
        _group("pulsebase-volumes", _volumes(pb)),
    ]
    # Without backups there is nothing to be late; the alerts would only add noise.
    if pb.spec.backup.enabled:
        found.append(_group("pulsebase-backups", _backups(pb)))
    return found


def _group(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "rules": rules}


def _selector(pb: models.PulseBase, *extra: str) -> str:
    matchers = [f'namespace="{pb.metadata.namespace}"', f'pulsebase="{pb.metadata.name}"']
    return "{" + ",".join([*matchers, *extra]) + "}"


def _number(value: Decimal) -> str:
    """A plain decimal for PromQL: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def _percent(text: str) -> Decimal:
    return Decimal(text) / 100


def _alert(
    name: str,
    *,
    expr: str,
    for_: str,
    level: Level,
    summary: str,
    description: str,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": level.severity, "priority": level.priority},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{RUNBOOK_BASE}{name}.md",
        },
    }


_BY = "sum by (namespace, pulsebase)"


def _error_ratio(pb: models.PulseBase, window: str) -> str:
    server_errors = _selector(pb, 'code=~"5.."')
    errors = f"pulsebase_http_requests_total{server_errors}"
    total = f"pulsebase_http_requests_total{_selector(pb)}"
    return f"({_BY} (rate({errors}[{window}])) / {_BY} (rate({total}[{window}])))"


def _availability(pb: models.PulseBase) -> list[dict[str, Any]]:
    objective = pb.spec.monitoring.thresholds.availability_percent
    budget = 1 - _percent(objective)
    rules = []
    for name, (long, short, factor), for_, level, ticket in (
        ("PulseBaseAvailabilityFastBurn", FAST_BURN, "2m", P1, "page"),
        ("PulseBaseAvailabilitySlowBurn", SLOW_BURN, "15m", P3, "ticket"),
    ):
        limit = _number(budget * factor)
        rules.append(
            _alert(
                name,
                expr=f"{_error_ratio(pb, long)} > {limit}\n"
                f"and\n{_error_ratio(pb, short)} > {limit}",
                for_=for_,
                level=level,
                summary=f"{{{{ $labels.pulsebase }}}} is spending its {objective} % "
                f"availability budget {factor}x too fast ({ticket}).",
                description=f"{{{{ $value | humanizePercentage }}}} of API requests failed "
                f"over the last {long}, and as many over the last {short}; at this rate the "
                "30-day error budget runs out early.",
            )
        )
    return rules


def _api(pb: models.PulseBase) -> list[dict[str, Any]]:
    thresholds = pb.spec.monitoring.thresholds
    latency = parse_duration(thresholds.api_latency_p95)
    buckets = f"pulsebase_http_request_duration_seconds_bucket{_selector(pb)}"
    error_limit = _percent(thresholds.error_rate_percent)
    return [
        _alert(
            "PulseBaseApiLatencyHigh",
            expr="histogram_quantile(0.95, sum by (namespace, pulsebase, le) "
            f"(rate({buckets}[5m]))) > {_number(latency)}",
            for_="10m",
            level=P2,
            summary=f"API p95 latency of {{{{ $labels.pulsebase }}}} is over "
            f"{thresholds.api_latency_p95}.",
            description="95 % of requests finish within {{ $value | humanizeDuration }}, "
            f"above the {thresholds.api_latency_p95} threshold.",
        ),
        _alert(
            "PulseBaseApiErrorRateHigh",
            expr=f"{_error_ratio(pb, '5m')} > {_number(error_limit)}",
            for_="5m",
            level=P2,
            summary=f"More than {thresholds.error_rate_percent} % of API requests of "
            "{{ $labels.pulsebase }} fail with 5xx.",
            description="{{ $value | humanizePercentage }} of requests over the last 5m "
            "answered 5xx.",
        ),
    ]


def _postgres(pb: models.PulseBase) -> list[dict[str, Any]]:
    threshold = pb.spec.monitoring.thresholds.db_query_p95
    seconds = _number(parse_duration(threshold))
    return [
        _alert(
            "PulseBaseDatabaseQuerySlow",
            expr=f"pulsebase_postgres_query_p95_seconds{_selector(pb)} > {seconds}",
            for_="10m",
            level=P3,
            summary=f"Database query p95 of {{{{ $labels.pulsebase }}}} is over {threshold}.",
            description="95 % of queries finish within {{ $value | humanizeDuration }}.",
        ),
        _alert(
            "PulseBaseReplicationLagHigh",
            expr=f"pulsebase_postgres_replication_lag_seconds{_selector(pb)} "
            f"> {REPLICATION_LAG_MAX_SECONDS}",
            for_="5m",
            level=P2,
            summary="A PostgreSQL replica of {{ $labels.pulsebase }} lags more than "
            f"{REPLICATION_LAG_MAX_SECONDS}s behind.",
            description="Replica {{ $labels.member }} is {{ $value | humanizeDuration }} "
            "behind the primary; a failover now would lose that much.",
        ),
    ]


def _redis(pb: models.PulseBase) -> list[dict[str, Any]]:
    threshold = pb.spec.monitoring.thresholds.cache_hit_ratio_percent
    return [
        _alert(
            "PulseBaseCacheHitRatioLow",
            expr=f"pulsebase_redis_cache_hit_ratio{_selector(pb)} < {_number(_percent(threshold))}",
            for_="30m",
            level=P4,
            summary=f"Cache hit ratio of {{{{ $labels.pulsebase }}}} is under {threshold} %.",
            description="Only {{ $value | humanizePercentage }} of cache lookups hit; the "
            "misses land on PostgreSQL.",
        ),
    ]


def _volumes(pb: models.PulseBase) -> list[dict[str, Any]]:
    threshold = pb.spec.monitoring.thresholds.disk_usage_percent
    used = f"pulsebase_volume_used_bytes{_selector(pb)}"
    capacity = f"pulsebase_volume_capacity_bytes{_selector(pb)}"
    days = DISK_FULL_HORIZON_SECONDS // 86400
    return [
        _alert(
            "PulseBaseDiskUsageHigh",
            expr=f"{used} / {capacity} > {_number(_percent(threshold))}",
            for_="5m",
            level=P3,
            summary=f"A volume of {{{{ $labels.pulsebase }}}} is over {threshold} % full.",
            description="Volume {{ $labels.volume }} is {{ $value | humanizePercentage }} full.",
        ),
        _alert(
            "PulseBaseDiskFullSoon",
            expr=f"predict_linear({used}[6h], {DISK_FULL_HORIZON_SECONDS}) > {capacity}",
            for_="1h",
            level=P3,
            summary=f"A volume of {{{{ $labels.pulsebase }}}} fills up within {days} days.",
            description="At the growth rate of the last 6h, volume {{ $labels.volume }} "
            f"would hold {{{{ $value | humanize1024 }}}}B in {days} days, more than it has.",
        ),
    ]


def _hours(delta: datetime.timedelta) -> str:
    hours = Decimal(int(delta.total_seconds())) / 3600
    return f"{_number(hours)}h"


def _backups(pb: models.PulseBase) -> list[dict[str, Any]]:
    last = "pulsebase_backup_last_success_timestamp_seconds"
    backup = pb.spec.backup
    rpo = backup.rpo
    full = _selector(pb, 'kind="full"')
    incremental = _selector(pb, 'kind="incr"')
    full_age = schedules.longest_gap(backup.schedules.full) + FULL_BACKUP_MARGIN
    incremental_age = (
        schedules.longest_gap(backup.schedules.incremental) + INCREMENTAL_BACKUP_MARGIN
    )
    rules = [
        _alert(
            "PulseBaseFullBackupTooOld",
            expr=f"time() - {last}{full} > {int(full_age.total_seconds())}",
            for_="10m",
            level=P2,
            summary="The last full backup of {{ $labels.pulsebase }} is older than "
            f"{_hours(full_age)}.",
            description="The newest successful full backup is {{ $value | humanizeDuration }} old.",
        ),
        _alert(
            "PulseBaseIncrementalBackupTooOld",
            expr=f"time() - {last}{incremental} > {int(incremental_age.total_seconds())}",
            for_="10m",
            level=P3,
            summary="The last incremental backup of {{ $labels.pulsebase }} is older than "
            f"{_hours(incremental_age)}.",
            description="The newest successful incremental backup is "
            "{{ $value | humanizeDuration }} old.",
        ),
        _alert(
            "PulseBaseRecoveryPointObjectiveExceeded",
            expr=f"pulsebase_backup_rpo_exposure_seconds{_selector(pb)} "
            f"> {_number(parse_duration(rpo))}",
            for_="5m",
            level=P1,
            summary=f"{{{{ $labels.pulsebase }}}} could lose more than its {rpo} recovery "
            "point objective.",
            description="A restore now would lose the last {{ $value | humanizeDuration }} "
            "of writes.",
        ),
    ]
    if backup.drill.enabled:
        rules += _drills(pb)
    return rules


def _drills(pb: models.PulseBase) -> list[dict[str, Any]]:
    drill, rto = pb.spec.backup.drill, pb.spec.backup.rto
    return [
        _alert(
            "PulseBaseRestoreDrillFailed",
            expr=f"pulsebase_drill_succeeded{_selector(pb)} == 0",
            for_="5m",
            level=P2,
            summary="The last restore drill of {{ $labels.pulsebase }} failed.",
            description="pulsebase_drill_succeeded is {{ $value }}: the newest backup "
            "could not be restored and checked; status.backup.lastDrill says at which step "
            "and why.",
        ),
        _alert(
            "PulseBaseRestoreDrillTooOld",
            expr="time() - pulsebase_drill_last_success_timestamp_seconds"
            f"{_selector(pb)} > {_number(parse_duration(drill.max_age))}",
            for_="10m",
            level=P3,
            summary="No restore drill of {{ $labels.pulsebase }} has succeeded for "
            f"{drill.max_age}.",
            description="The last successful drill finished {{ $value | humanizeDuration }} "
            "ago; nobody knows whether the backups since then restore.",
        ),
        _alert(
            "PulseBaseRestoreDrillSlowerThanObjective",
            expr=f"pulsebase_drill_recovery_time_seconds{_selector(pb)} "
            f"> {_number(parse_duration(rto))}",
            for_="5m",
            level=P3,
            summary="The last restore drill of {{ $labels.pulsebase }} took longer than its "
            f"{rto} recovery time objective.",
            description="Restoring took {{ $value | humanizeDuration }} until the copy "
            "accepted queries.",
        ),
    ]
