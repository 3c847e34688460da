"""`pulsebase-operator`: run the operator, print the CRD, render a spec offline."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from pulsebase_operator import __version__
from pulsebase_operator.api import crd, models
from pulsebase_operator.render import stack


def _dump_all(documents: Sequence[Any]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)


def cmd_crd(_: argparse.Namespace) -> int:
    sys.stdout.write(_dump_all([crd.crd()]))
    return 0


def cmd_version(_: argparse.Namespace) -> int:
    print(__version__)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Print every object the PulseBase resources in a file become; no cluster needed."""
    with open(args.filename) if args.filename != "-" else sys.stdin as stream:
        documents = [d for d in yaml.safe_load_all(stream) if d]
    bodies = [d for d in documents if d.get("kind") == models.KIND]
    if not bodies:
        print(f"error: {args.filename} holds no {models.KIND} resource", file=sys.stderr)
        return 2
    output: list[Any] = []
    for body in bodies:
        body.setdefault("metadata", {}).setdefault("namespace", args.namespace)
        try:
            pb = models.PulseBase.from_body(body)
        except ValidationError as error:
            name = body["metadata"].get("name", "?")
            print(f"error: {models.KIND} {name} is invalid:", file=sys.stderr)
            for problem in error.errors():
                where = ".".join(str(p) for p in problem["loc"])
                print(f"  {where}: {problem['msg']}", file=sys.stderr)
            return 2
        rendered = stack.render(pb)
        output.extend(rendered.objects)
        output.extend(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": s.name, "namespace": s.namespace},
                "# generated once by the operator": [k for k, _ in s.random_keys]
                + [k for k, _ in s.templates],
            }
            for s in rendered.secrets
        )
    if args.output == "json":
        print(json.dumps(output, indent=2))
    else:
        sys.stdout.write(_dump_all(output))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import threading

    import kopf

    from pulsebase_operator.kube.client import Kube, connection_info, load_config
    from pulsebase_operator.kube.leases import LeaderElection
    from pulsebase_operator.reconcile import handlers
    from pulsebase_operator.telemetry import logging as telemetry_logging
    from pulsebase_operator.telemetry import metrics

    telemetry_logging.configure(args.log_level)
    if args.metrics_address:
        metrics.serve(args.metrics_address)
    api_client, in_cluster = load_config(args.kubeconfig)
    handlers.OPTIONS.kube = Kube(api_client)
    if not in_cluster:
        handlers.OPTIONS.connection = kopf.ConnectionInfo(**connection_info(api_client))
    handlers.OPTIONS.resync_seconds = args.resync_seconds
    namespaces = args.namespace or []

    stop, lost = threading.Event(), threading.Event()
    election = None
    if args.leader_elect:
        election = LeaderElection(
            api_client,
            namespace=args.leader_elect_namespace,
            name="pulsebase-operator",
            identity=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        )
        # A follower is alive while it waits: answer the liveness probe meanwhile.
        with _health_while_waiting(args.health_address):
            election.acquire(stop)
        threading.Thread(target=election.keep, args=(stop, lost), daemon=True).start()
        handlers.OPTIONS.on_shutdown.append(lambda: _hand_over(election, stop, lost))

    health = f"http://{args.health_address}/healthz" if args.health_address else None
    try:
        asyncio.run(
            kopf.operator(
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                liveness_endpoint=health,
                stop_flag=lost,
            )
        )
    finally:
        if election is not None:
            _hand_over(election, stop, lost)
    return 1 if lost.is_set() else 0


def _hand_over(election: Any, stop: threading.Event, lost: threading.Event) -> None:
    """Stop renewing and give the Lease back (once), unless it was lost already."""
    if not stop.is_set():
        stop.set()
        if not lost.is_set():
            election.release()


@contextlib.contextmanager
def _health_while_waiting(address: str | None) -> Iterator[None]:
    if not address:
        yield
        return
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Alive(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"waiting to become the leader\n")

        def log_message(self, *_: Any) -> None:
            pass

    host, _, port = address.rpartition(":")
    server = HTTPServer((host or "0.0.0.0", int(port)), Alive)  # noqa: S104
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pulsebase-operator", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        help="watch only this namespace (repeat for several); all by default",
    )
    run.add_argument(
        "--kubeconfig", help="kubeconfig file; in-cluster or ~/.kube/config by default"
    )
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.add_argument(
        "--resync-seconds",
        type=float,
        default=60.0,
        help="how often each PulseBase is checked for drift (default 60)",
    )
    run.add_argument(
        "--health-address",
        metavar="HOST:PORT",
        help="serve a liveness endpoint at http://HOST:PORT/healthz",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="run several replicas safely: only the holder of the Lease reconciles",
    )
    run.add_argument(
        "--leader-elect-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else default)",
    )
    run.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics",
    )
    run.set_defaults(func=cmd_run)

    commands.add_parser("crd", help="print the CustomResourceDefinition").set_defaults(func=cmd_crd)
    commands.add_parser("version", help="print the version").set_defaults(func=cmd_version)

    render = commands.add_parser("render", help="print the objects a PulseBase becomes")
    render.add_argument("-f", "--filename", required=True, help="YAML file, or - for stdin")
    render.add_argument(
        "-n", "--namespace", default="default", help="namespace for resources that name none"
    )
    render.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    render.set_defaults(func=cmd_render)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
