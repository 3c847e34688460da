"""`pulsebase-operator render` and `crd` as a user runs them, no cluster involved."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

CLI = [sys.executable, "-m", "pulsebase_operator.cli"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, check=False)


def test_render_prints_only_applicable_objects_and_names_generated_secrets() -> None:
    done = run("render", "-f", "examples/pulsebase.yaml")
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert {d["kind"] for d in docs} >= {"StatefulSet", "Deployment", "Service", "ConfigMap"}
    assert all(set(d) >= {"apiVersion", "kind", "metadata"} for d in docs)
    assert not any(d["kind"] == "Secret" for d in docs)
    assert "# Secret pulsebase-demo/shop-postgres-superuser (password) is generated" in (
        done.stdout
    )
    # A certificate's Secret names its keys too.
    assert "# Secret pulsebase-demo/shop-objectstore-tls (ca.crt, tls.crt, tls.key) is" in (
        done.stdout
    )


def test_render_leaves_the_prometheus_rule_out_unless_asked() -> None:
    # Without prometheus-operator's CRDs the rule would make `kubectl apply` fail.
    plain = run("render", "-f", "examples/pulsebase.yaml")
    assert "kind: PrometheusRule" not in plain.stdout
    done = run("render", "-f", "examples/pulsebase.yaml", "--prometheus-rule")
    assert done.returncode == 0, done.stderr
    (rule,) = [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "PrometheusRule"]
    assert rule["metadata"]["name"] == "shop-alerts"
    assert rule["spec"]["groups"]


def test_render_refuses_an_invalid_spec_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "pulsebase.io/v1alpha1",
                "kind": "PulseBase",
                "metadata": {"name": "shop"},
                "spec": {"version": "2.4.1", "backup": {"rpo": "soon"}},
            }
        )
    )
    done = run("render", "-f", str(bad))
    assert done.returncode == 2
    assert "spec.backup.rpo: must be a duration such as 30s" in done.stderr
    assert done.stdout == ""


def _pulsebase(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pulsebase.io/v1alpha1",
        "kind": "PulseBase",
        "metadata": {"name": name},
        "spec": {"version": "2.4.1", **spec},
    }


def test_render_shows_a_restore_only_with_its_source_in_the_same_file(tmp_path: Path) -> None:
    copy = _pulsebase("copy", bootstrap={"recovery": {"source": {"pulseBase": "shop"}}})
    alone = tmp_path / "copy.yaml"
    alone.write_text(yaml.safe_dump(copy))
    done = run("render", "-f", str(alone))
    assert done.returncode == 2 and done.stdout == ""
    assert "restores from shop, which is not in" in done.stderr

    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump_all([_pulsebase("shop"), copy]))
    done = run("render", "-f", str(both))
    assert done.returncode == 0, done.stderr
    config_maps = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(done.stdout)
        if d["kind"] == "ConfigMap"
    }
    patroni = yaml.safe_load(config_maps["copy-postgres"]["data"]["patroni.yml"])
    assert patroni["bootstrap"]["method"] == "pgbackrest_restore"


@pytest.mark.parametrize(
    ("source", "recovery", "fragments"),
    [
        (
            _pulsebase("shop", backup={"enabled": False}),
            {"source": {"pulseBase": "shop"}},
            ["PulseBase copy: spec.bootstrap.recovery.source.pulseBase:", "backups disabled"],
        ),
        (
            # A source as `kubectl get -o yaml` shows it, status included.
            {
                **_pulsebase("shop"),
                "status": {"backup": {"recoverableFrom": "2026-11-03T02:00:14Z"}},
            },
            {"source": {"pulseBase": "shop"}, "targetTime": "2026-11-02T00:00:00Z"},
            [
                "PulseBase copy: spec.bootstrap.recovery.targetTime: 2026-11-02T00:00:00Z",
                "no restore to a time reaches before 2026-11-03T02:00:14Z",
            ],
        ),
        (
            # The same, unquoted: YAML reads a time with its zone.
            {
                **_pulsebase("shop"),
                "status": {
                    "backup": {
                        "recoverableFrom": datetime.datetime(
                            2026,
                            11,
                            3,
                            3,
                            0,
                            14,
                            tzinfo=datetime.timezone(datetime.timedelta(hours=1)),
                        )
                    }
                },
            },
            {"source": {"pulseBase": "shop"}, "targetTime": "2026-11-02T00:00:00Z"},
            ["no restore to a time reaches before 2026-11-03T02:00:14Z"],
        ),
    ],
    ids=["source-without-backups", "target-before-the-reach", "reach-as-a-yaml-time"],
)
def test_render_refuses_a_restore_the_operator_would_refuse(
    tmp_path: Path, source: dict[str, Any], recovery: dict[str, Any], fragments: list[str]
) -> None:
    copy = _pulsebase("copy", bootstrap={"recovery": recovery})
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump_all([source, copy]))
    done = run("render", "-f", str(both))
    assert done.returncode == 2 and done.stdout == ""
    for fragment in fragments:
        assert fragment in done.stderr


def test_render_refuses_a_pulsebase_named_twice(tmp_path: Path) -> None:
    # Which of the two is the source would decide what the restore reaches.
    twice = tmp_path / "twice.yaml"
    twice.write_text(yaml.safe_dump_all([_pulsebase("shop"), _pulsebase("shop", version="2.4.2")]))
    done = run("render", "-f", str(twice), "-n", "prod")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"error: PulseBase shop is in {twice} twice (namespace prod); keep one\n"
    other = _pulsebase("shop")
    other["metadata"]["namespace"] = "staging"
    twice.write_text(yaml.safe_dump_all([_pulsebase("shop"), other]))
    assert run("render", "-f", str(twice), "-n", "prod").returncode == 0


def test_render_reads_standard_input_and_says_when_there_is_nothing_to_render() -> None:
    done = run("render", "-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert done.returncode == 2
    assert "holds no PulseBase resource" in done.stderr


def test_crd_command_prints_the_file_in_crds() -> None:
    done = run("crd")
    assert done.returncode == 0
    assert done.stdout == Path("crds/pulsebase.yaml").read_text()


INFO = """[{"name": "pulsebase", "backup": [
  {"label": "20261101-010000F", "type": "full", "prior": null, "error": false,
   "timestamp": {"start": 1761958800, "stop": 1761959400}},
  {"label": "20261202-010000F", "type": "full", "prior": null, "error": false,
   "timestamp": {"start": 1764637200, "stop": 1764637800}},
  {"label": "20261202-010000F_20261202-020000I", "type": "incr",
   "prior": "20261202-010000F", "error": false,
   "timestamp": {"start": 1764640800, "stop": 1764641000}}]}]"""


def test_retention_plan_prints_one_decision_per_backup_as_json() -> None:
    import json

    done = run(
        "retention",
        "plan",
        "--daily",
        "7",
        "--weekly",
        "2",
        "--now",
        "2026-12-03T12:00:00Z",
        stdin=INFO,
    )
    assert done.returncode == 0, done.stderr
    decisions = {d["label"]: d for d in json.loads(done.stdout)}
    assert set(decisions) == {
        "20261101-010000F",
        "20261202-010000F",
        "20261202-010000F_20261202-020000I",
    }
    assert decisions["20261101-010000F"]["action"] == "expire"
    assert decisions["20261202-010000F"]["action"] == "keep"
    assert decisions["20261202-010000F_20261202-020000I"]["reason"] == "the newest good backup"


def test_retention_plan_refuses_ambiguous_input() -> None:
    naive = run("retention", "plan", "--now", "2026-12-03T12:00:00", stdin=INFO)
    assert naive.returncode == 2
    assert "needs an offset" in naive.stderr
    zone = run("retention", "plan", "--time-zone", "Mars/Olympus", stdin=INFO)
    assert zone.returncode == 2
    assert "unknown time zone 'Mars/Olympus'" in zone.stderr


@pytest.mark.parametrize("zone", ["America", "Etc", "Factory", "posixrules"])
def test_retention_plan_refuses_a_zone_folder_or_a_name_the_spec_refuses(zone: str) -> None:
    done = run("retention", "plan", "--time-zone", zone, stdin=INFO)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert repr(zone) in done.stderr


def test_retention_plan_plans_each_stanza_on_its_own() -> None:
    import json

    # Stanza a's only backup is older than b's: pooled, a's would be expired.
    info = [
        {"name": n, "backup": [{"label": label, "type": "full", "timestamp": {"stop": stop}}]}
        for n, label, stop in (
            ("a", "20261201-010000F", 1764550800),
            ("b", "20261204-010000F", 1764810000),
        )
    ]
    flags = ("--daily", "1", "--weekly", "0", "--now", "2026-12-04T12:00:00Z")
    done = run("retention", "plan", *flags, stdin=json.dumps(info))
    assert done.returncode == 0, done.stderr
    assert [(d["stanza"], d["label"], d["action"]) for d in json.loads(done.stdout)] == [
        ("a", "20261201-010000F", "keep"),
        ("b", "20261204-010000F", "keep"),
    ]


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        ('{"backup": []}', "a JSON list of stanzas"),
        ("[1]", "stanza 0 is not an object"),
        ('[{"backup": "x"}]', "stanza 0: backup is not a list"),
        ('[{"backup": [{"type": "full"}]}]', "backup 0 of stanza 0 has no label"),
        ('[{"backup": [{"label": "F", "timestamp": {"stop": "noon"}}]}]', "timestamp of F"),
        ('[{"backup": [{"label": "F", "timestamp": {"stop": 1e20}}]}]', "timestamp of F"),
    ],
)
def test_retention_plan_names_what_is_wrong_with_a_malformed_catalog(
    stdin: str, expected: str
) -> None:
    done = run("retention", "plan", stdin=stdin)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--daily", "0"), "daily must be between 1 and 366"),
        (("--daily", "-3"), "daily must be between 1 and 366"),
        (("--weekly", "-1"), "weekly must be between 0 and 520"),
    ],
)
def test_retention_plan_refuses_windows_the_spec_refuses(
    flags: tuple[str, ...], expected: str
) -> None:
    # A window of zero days would plan every backup but the newest for expiry.
    done = run("retention", "plan", *flags, stdin=INFO)
    assert done.returncode == 2
    assert expected in done.stderr


@pytest.mark.parametrize("now", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_retention_plan_refuses_a_current_time_at_the_ends_of_the_calendar(now: str) -> None:
    done = run("retention", "plan", "--now", now, stdin=INFO)
    assert done.returncode == 2
    assert done.stderr == f"error: --now must lie between 1970-01-01 and 9998-12-31, not {now}\n"


def test_retention_plan_refuses_a_catalog_nested_too_deeply() -> None:
    done = run("retention", "plan", stdin="[" * 100_000)
    assert done.returncode == 2
    assert done.stderr == (
        "error: the catalog is nested too deeply to be pgBackRest's info output\n"
    )


@pytest.mark.parametrize("stdin", ["", "garbage", "{"])
def test_retention_plan_says_standard_input_is_not_json(stdin: str) -> None:
    done = run("retention", "plan", stdin=stdin)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "error: standard input is not JSON (pgbackrest info --output=json): "
    )
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--daily", "0"), "daily must be between 1 and 366"),
        (("--weekly", "-1"), "weekly must be between 0 and 520"),
        (("--time-zone", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (("--now", "yesterday"), "yesterday"),
        (("--now", "2026-12-03T12:00:00"), "needs an offset"),
    ],
)
def test_retention_plan_reports_a_bad_argument_before_reading_standard_input(
    flags: tuple[str, ...], expected: str
) -> None:
    done = run("retention", "plan", *flags, stdin="garbage")
    assert done.returncode == 2
    assert expected in done.stderr
    assert "not JSON" not in done.stderr


def test_retention_plan_refuses_a_backup_without_a_time() -> None:
    done = run("retention", "plan", stdin='[{"backup": [{"label": "F", "timestamp": []}]}]')
    assert done.returncode == 2
    assert done.stderr == "error: backup F has no start or stop time\n"


PULSEBASE = "kind: PulseBase\napiVersion: pulsebase.io/v1alpha1\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"kind: [PulseBase\n", "is not YAML"),
        (b"\xff\xfe\x00kind: PulseBase\n", "is not YAML"),
        (b"- kind: PulseBase\n", "document 1 is not a mapping"),
        (b"---\nkind: ConfigMap\n---\njust text\n", "document 2 is not a mapping"),
        (PULSEBASE.encode() + b"metadata: null\nspec: {version: 2.4.1}\n", "metadata.name"),
        (PULSEBASE.encode() + b"metadata: shop\nspec: {version: 2.4.1}\n", "metadata"),
        (PULSEBASE.encode() + b"metadata: {name: shop}\nspec: latest\n", "spec"),
    ],
)
def test_render_refuses_a_file_it_cannot_read_as_pulsebases(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    done = run("render", "-f", str(bad))
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_render_names_a_file_that_does_not_exist(tmp_path: Path) -> None:
    done = run("render", "-f", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2
    assert "missing.yaml" in done.stderr and "Traceback" not in done.stderr


def test_backup_job_refuses_a_kind_it_does_not_know_before_touching_a_cluster() -> None:
    done = run("backup-job", "--kind", "diff", "--name", "shop", "--namespace", "prod")
    assert done.returncode == 2
    assert "invalid choice: 'diff'" in done.stderr


COMMANDS = {
    "backups list": (["backups", "list", "shop", "-n", "prod"], 1),
    "backup": (["backup", "shop", "-n", "prod"], 1),
    "drill": (["drill", "shop", "-n", "prod"], 1),
    "backup-job": (["backup-job", "--kind=full", "--name=shop", "--namespace=prod"], 3),
}


def run_without_cluster(
    *args: str, home: Path, kubeconfig: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}
    }
    env["HOME"] = str(home)
    if kubeconfig is not None:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, check=False, env=env, timeout=60
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        (b"garbage\n", "it is not a kubeconfig"),
        (b"[1, 2]\n", "it is not a kubeconfig"),
        (b"clusters: [\n", "it is not YAML"),
        (b"\xff\xfe\x00\n", "cannot use kubeconfig"),
    ],
    ids=["missing", "a word", "a list", "not YAML", "not text"],
)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_kubeconfig_that_cannot_be_used_is_named_in_one_line(
    tmp_path: Path, command: str, content: bytes | None, reason: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_bytes(content)
    args, code = COMMANDS[command]
    done = run_without_cluster(*args, f"--kubeconfig={kubeconfig}", home=tmp_path)
    assert done.returncode == code, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: cannot use kubeconfig {kubeconfig}: ")
    assert reason in done.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_without_any_kubeconfig_the_user_is_told_how_to_name_one(
    tmp_path: Path, command: str
) -> None:
    args, code = COMMANDS[command]
    done = run_without_cluster(*args, home=tmp_path)
    assert done.returncode == code
    assert done.stderr == "error: no kubeconfig found: set --kubeconfig or KUBECONFIG\n"


def test_a_kubeconfig_named_by_the_environment_is_named_when_missing(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    done = run_without_cluster("backup", "shop", home=tmp_path, kubeconfig=str(missing))
    assert done.stderr == f"error: cannot use kubeconfig {missing}: no such file\n"


@pytest.mark.parametrize(
    ("args", "name", "code"),
    [
        (["backup", "", "-n", "demo"], "NAME", 2),
        (["backups", "list", ""], "NAME", 2),
        (["drill", ""], "NAME", 2),
        (["drill", "Shop"], "NAME", 2),
        (["backup", "a" * 41], "NAME", 2),
        (["backup-job", "--kind=full", "--name=", "--namespace=prod"], "--name", 2),
    ],
)
def test_a_name_no_pulsebase_can_have_is_refused_before_any_api_call(
    tmp_path: Path, args: list[str], name: str, code: int
) -> None:
    # No kubeconfig either: the name is refused before the cluster is looked for.
    done = run_without_cluster(*args, home=tmp_path)
    assert done.returncode == code
    value = args[1] if args[0] != "backup-job" and args[0] != "backups" else None
    if args[0] == "backups":
        value = args[2]
    if args[0] == "backup-job":
        value = ""
    assert done.stderr == (f"error: {name} must be a PulseBase name (a DNS label), not {value!r}\n")
