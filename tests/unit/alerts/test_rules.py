"""The rendered alert rules, checked and unit-tested by promtool itself.

The rule groups are written as a plain Prometheus rules file (prometheus-operator
hands each PrometheusRule's `spec` to Prometheus the same way) next to the promtool
unit tests in this directory, which show every alert firing on the series that break
its threshold and staying quiet on healthy ones.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulsebase_operator.api import models
from pulsebase_operator.render import monitoring

from ..render.examples import pulsebase

HERE = Path(__file__).parent
PROMTOOL = shutil.which("promtool")
MISSING_PROMTOOL = (
    "promtool is not installed; run hack/install-test-deps.sh (Debian package prometheus)"
)

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=MISSING_PROMTOOL)


def write_rules(pb: models.PulseBase, directory: Path) -> Path:
    rule = monitoring.prometheus_rule(pb)
    assert rule is not None
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {
                "monitoring": {
                    "thresholds": {
                        "apiLatencyP95": "1s500ms",
                        "dbQueryP95": "75ms",
                        "errorRatePercent": "0.5",
                        "cacheHitRatioPercent": "95.5",
                        "diskUsagePercent": "90",
                        "availabilityPercent": "99.95",
                    }
                },
                "backup": {"rpo": "1h30m"},
            },
            id="custom-thresholds",
        ),
        pytest.param({"backup": {"enabled": False}}, id="backups-off"),
    ],
)
def test_rendered_rules_pass_promtool_check(spec: dict[str, Any], tmp_path: Path) -> None:
    path = write_rules(pulsebase(**spec), tmp_path)
    result = promtool("check", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_each_alert_fires_on_its_series_and_stays_quiet_on_healthy_ones(
    tmp_path: Path,
) -> None:
    write_rules(pulsebase(name="shop", namespace="prod"), tmp_path)
    shutil.copy(HERE / "shop.test.yaml", tmp_path)
    result = promtool("test", "rules", "shop.test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promtool_tests_cover_every_alert() -> None:
    tests = yaml.safe_load((HERE / "shop.test.yaml").read_text())["tests"]
    firing = {
        case["alertname"]
        for group in tests
        for case in group.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    quiet = {
        case["alertname"]
        for group in tests
        for case in group.get("alert_rule_test", [])
        if not case["exp_alerts"]
    }
    rule = monitoring.prometheus_rule(pulsebase())
    assert rule is not None
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert firing == alerts
    assert quiet == alerts
