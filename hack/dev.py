"""`make dev`: the CRD, the operator and the example stack on the local control plane.

Run after `make cluster-up`. Starts the operator in the background (its log is
.cluster/operator.log, `make cluster-down` stops it), applies the example, waits until
every PulseBase in it is Ready and prints what `kubectl` shows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--state-dir", type=Path, required=True)
    args.add_argument("--kubectl", required=True)
    args.add_argument("--example", type=Path, required=True)
    args.add_argument("--timeout", type=float, default=300)
    opts = args.parse_args()

    state = opts.state_dir.resolve()
    env = {**os.environ, "KUBECONFIG": str(state / "kubeconfig")}

    def kubectl(*argv: str, check: bool = True) -> str:
        done = subprocess.run(
            [opts.kubectl, *argv], env=env, text=True, capture_output=True, check=False
        )
        if check and done.returncode != 0:
            sys.exit(f"kubectl {' '.join(argv)} failed:\n{done.stderr}")
        return done.stdout

    kubectl("apply", "--server-side", "-f", "crds/")
    # `kubectl wait --for=condition=Established` fails at once while the new CRD has no
    # conditions yet, so look until it says Established.
    query = '{.status.conditions[?(@.type=="Established")].status}'
    deadline = time.monotonic() + 60
    while kubectl("get", "crd", "pulsebases.pulsebase.io", "-o", f"jsonpath={query}") != "True":
        if time.monotonic() > deadline:
            sys.exit("the PulseBase CRD was not Established within 60 s")
        time.sleep(0.2)

    pid_file = state / "operator.pid"
    if not _running(pid_file):
        log = open(state / "operator.log", "a")  # noqa: SIM115 - the child keeps it open
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pulsebase_operator.cli",
                "run",
                "--kubeconfig",
                str(state / "operator.kubeconfig"),
                "--resync-seconds",
                "30",
                # KWOK runs no containers: only dependencies outside the cluster answer.
                "--probes",
                "external",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pid_file.write_text(str(operator.pid))
        print(f"operator started (pid {operator.pid}, log {state / 'operator.log'})")

    started = time.monotonic()
    kubectl("apply", "-f", str(opts.example))
    with open(opts.example) as stream:
        stacks = [d for d in yaml.safe_load_all(stream) if d and d.get("kind") == "PulseBase"]
    for doc in stacks:
        name, namespace = doc["metadata"]["name"], doc["metadata"].get("namespace", "default")
        done = subprocess.run(
            [
                opts.kubectl,
                "wait",
                f"pulsebase/{name}",
                "-n",
                namespace,
                "--for=condition=Ready",
                f"--timeout={int(opts.timeout)}s",
            ],
            env=env,
            text=True,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            print(kubectl("describe", "pulsebase", name, "-n", namespace, check=False))
            sys.exit(
                f"{namespace}/{name} did not become Ready; see the description above "
                f"and {state / 'operator.log'}"
            )
        print(f"{namespace}/{name} is Ready after {time.monotonic() - started:.1f}s\n")
        print(kubectl("get", "pulsebase", "-n", namespace))
        print(kubectl("describe", "pulsebase", name, "-n", namespace))
    print(f"export KUBECONFIG={state / 'kubeconfig'}")
    print(f"{opts.kubectl} get pb -A    # the pinned kubectl; any kubectl 1.30+ works too")
    return 0


def _running(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
