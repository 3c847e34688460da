"""The Dockerfile's install steps give a working operator in a clean virtual environment.

No Docker engine is needed: the test takes the `pip install` commands from the
Dockerfile itself, runs them in a fresh venv against a local wheelhouse (`make
wheelhouse` fills it from the lock file; the test itself never leaves loopback), and
runs the installed command.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILE = Path("Dockerfile")


def install_steps() -> list[list[str]]:
    """The Dockerfile's `/venv/bin/pip install ...` commands, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    steps = []
    for line in text.splitlines():
        if not line.startswith("RUN /venv/bin/pip install"):
            continue
        command = line.removeprefix("RUN ").split("&&")[0]
        steps.append(shlex.split(command))
    return steps


def test_the_dockerfile_installs_from_the_lock_file_with_hashes() -> None:
    steps = install_steps()
    assert len(steps) == 2
    locked, package = steps
    assert "--require-hashes" in locked and "requirements/operator.lock" in locked
    assert "requirements/build.lock" in locked  # the build backend is pinned too
    assert "--no-deps" in package  # nothing unpinned sneaks in with the package itself
    assert re.search(r"^USER 65532", DOCKERFILE.read_text(), re.MULTILINE)
    assert 'ENTRYPOINT ["/venv/bin/pulsebase-operator", "run"]' in DOCKERFILE.read_text()


def test_the_same_steps_give_a_working_command(tmp_path: Path) -> None:
    wheelhouse = os.environ.get("PULSEBASE_WHEELHOUSE")
    if not wheelhouse:
        pytest.skip("PULSEBASE_WHEELHOUSE is not set; `make test` sets it after `make wheelhouse`")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    offline = ["--no-index", "--find-links", wheelhouse]
    for step in install_steps():
        command = [str(venv / "bin" / "pip"), *step[1:], *offline]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        )
        assert done.returncode == 0, done.stdout + done.stderr

    operator = venv / "bin" / "pulsebase-operator"
    version = subprocess.run([str(operator), "version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "0.1.0"
    crd = subprocess.run([str(operator), "crd"], capture_output=True, text=True, check=True)
    assert crd.stdout == Path("crds/pulsebase.yaml").read_text()
    # The image runs `pulsebase-operator run`; its imports must resolve from the lock alone.
    imports = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import pulsebase_operator.reconcile.handlers, pulsebase_operator.kube.leases",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imports.returncode == 0, imports.stderr
