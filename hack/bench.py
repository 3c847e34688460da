"""`make bench`: figures for rendering and reconciling, printed, never asserted.

1. Render: time and peak memory to render the example stack, in-process.
2. Reconcile: a local control plane and the operator as a process; N PulseBases are
   applied at once, then it reports the time until all are Ready, the operator's write
   requests per steady pass (from the audit log; the target is zero), its read requests
   per steady pass, and its resident memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pulsebase_operator.api import models  # noqa: E402
from pulsebase_operator.render import stack  # noqa: E402
from tests.support.fixtures import WRITE_VERBS, audit_lines  # noqa: E402
from tests.support.localcluster import LocalCluster, resolve_bin_dir  # noqa: E402

EXAMPLE = REPO / "examples" / "pulsebase.yaml"
OPERATOR_USER = "pulsebase-operator"


def example_body() -> dict:
    with open(EXAMPLE) as stream:
        return next(d for d in yaml.safe_load_all(stream) if d and d["kind"] == "PulseBase")


def bench_render(rounds: int) -> None:
    pb = models.PulseBase.from_body(example_body())
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        stack.render(pb)
        timings.append(time.perf_counter() - started)
    tracemalloc.start()
    rendered = stack.render(pb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"render: {len(rendered.objects)} objects, median "
        f"{statistics.median(timings) * 1000:.2f} ms, p95 "
        f"{sorted(timings)[int(rounds * 0.95) - 1] * 1000:.2f} ms over {rounds} rounds, "
        f"peak {peak / 1024:.0f} KiB"
    )


def requests_since(audit_log: Path, since: int) -> tuple[int, int]:
    reads = writes = 0
    with open(audit_log, "rb") as stream:
        for number, line in enumerate(stream):
            if number < since or not line.endswith(b"\n"):
                continue
            event = json.loads(line)
            if event.get("user", {}).get("username") != OPERATOR_USER:
                continue
            if event.get("stage") != "ResponseComplete" or event.get("verb") == "watch":
                continue
            if event["verb"] in WRITE_VERBS:
                writes += 1
            else:
                reads += 1
    return reads, writes


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_reconcile(count: int, resync: float, settle_passes: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="pulsebase-bench-"))
    cluster = LocalCluster(state, resolve_bin_dir(build=False))
    cluster.start()
    operator = None
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"), check=True)
        cluster.wait_established("pulsebases.pulsebase.io")
        log = open(state / "operator.log", "ab")  # noqa: SIM115
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pulsebase_operator.cli",
                "run",
                "--kubeconfig",
                str(cluster.operator_kubeconfig),
                "--resync-seconds",
                str(resync),
                # As in make dev: KWOK runs no containers, so nothing managed answers.
                "--probes",
                "external",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        cluster.kubectl("create", "namespace", "bench", check=True)
        docs = []
        for i in range(count):
            body = example_body()
            body["metadata"] = {"name": f"stack-{i:03d}", "namespace": "bench"}
            docs.append(body)
        started = time.monotonic()
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=True)
        done = cluster.kubectl(
            "wait", "pb", "--all", "-n", "bench", "--for=condition=Ready", "--timeout=600s"
        )
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            print(f"reconcile: not all {count} became Ready: {done.stderr.strip()}")
            return
        children = len(stack.render(models.PulseBase.from_body(docs[0])).objects)
        print(
            f"reconcile: {count} PulseBases ({children} children each) Ready "
            f"{elapsed:.1f} s after apply"
        )

        time.sleep(resync)  # let the last status writes land
        mark = audit_lines(cluster.audit_log)
        time.sleep(resync * settle_passes)
        reads, writes = requests_since(cluster.audit_log, mark)
        passes = count * settle_passes
        print(
            f"steady state: {writes} write requests and {reads / passes:.1f} read requests "
            f"per pass ({passes} passes over {resync * settle_passes:.0f} s)"
        )
        print(
            f"operator memory: {rss_kib(operator.pid) / 1024:.1f} MiB resident "
            f"with {count} PulseBases"
        )
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=20)
        cluster.stop()


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--rounds", type=int, default=200, help="render rounds")
    args.add_argument("--stacks", type=int, default=10, help="PulseBases to reconcile")
    args.add_argument("--resync", type=float, default=5.0, help="operator resync seconds")
    args.add_argument("--settle-passes", type=int, default=3)
    opts = args.parse_args()
    bench_render(opts.rounds)
    bench_reconcile(opts.stacks, opts.resync, opts.settle_passes)


if __name__ == "__main__":
    main()
