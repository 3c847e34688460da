"""`pulsebase-operator render` and `crd` as a user runs them, no cluster involved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    assert "spec.backup.rpo: Value error, must be a duration such as 30s" in done.stderr
    assert done.stdout == ""


def test_render_reads_standard_input_and_says_when_there_is_nothing_to_render() -> None:
    done = run("render", "-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert done.returncode == 2
    assert "holds no PulseBase resource" in done.stderr


def test_crd_command_prints_the_file_in_crds() -> None:
    done = run("crd")
    assert done.returncode == 0
    assert done.stdout == Path("crds/pulsebase.yaml").read_text()
