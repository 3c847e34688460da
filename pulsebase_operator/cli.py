"""`pulsebase-operator`: run the operator, print the CRD, render a spec offline."""

from __future__ import annotations

import argparse
import contextlib
import datetime
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
from pulsebase_operator.policy import backups as backup_policy
from pulsebase_operator.render import certificates, restore, stack
from pulsebase_operator.render.parts import GeneratedSecret

# pgBackRest stamps no backup outside these years; near the ends of the calendar a
# day's or a week's bounds cannot be computed.
_EARLIEST_NOW = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_LATEST_NOW = datetime.datetime(9998, 12, 31, tzinfo=datetime.UTC)


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
    try:
        with open(args.filename, encoding="utf-8") if args.filename != "-" else sys.stdin as stream:
            documents = [d for d in yaml.safe_load_all(stream) if d]
    except OSError as error:
        print(f"error: cannot read {args.filename}: {error.strerror}", file=sys.stderr)
        return 2
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        print(f"error: {args.filename} is not YAML: {error}", file=sys.stderr)
        return 2
    for number, document in enumerate(documents, start=1):
        if not isinstance(document, dict):
            print(f"error: document {number} is not a mapping", file=sys.stderr)
            return 2
    bodies = [d for d in documents if d.get("kind") == models.KIND]
    if not bodies:
        print(f"error: {args.filename} holds no {models.KIND} resource", file=sys.stderr)
        return 2
    output: list[Any] = []
    generated: list[GeneratedSecret] = []
    pulsebases: list[models.PulseBase] = []
    for body in bodies:
        meta = body.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta.setdefault("namespace", args.namespace)
        try:
            pulsebases.append(models.PulseBase.from_body(body))
        except ValidationError as error:
            name = meta.get("name", "?") if isinstance(meta, dict) else "?"
            print(f"error: {models.KIND} {name} is invalid:", file=sys.stderr)
            for problem in error.errors():
                print(f"  {models.describe(problem)}", file=sys.stderr)
            return 2
    in_file: dict[tuple[str, str], tuple[models.PulseBase, dict[str, Any]]] = {}
    for pb, body in zip(pulsebases, bodies, strict=True):
        key = (pb.metadata.namespace, pb.metadata.name)
        if key in in_file:
            # The API server keeps one object per name: which one would apply is unclear.
            print(
                f"error: {models.KIND} {pb.metadata.name} is in {args.filename} twice "
                f"(namespace {pb.metadata.namespace}); keep one",
                file=sys.stderr,
            )
            return 2
        in_file[key] = (pb, body)
    for pb in pulsebases:
        source = None
        if (recovery := pb.spec.bootstrap.recovery) is not None:
            # The operator reads the source from the cluster; offline it must be in the
            # file, or the output would show an empty database where a restore belongs.
            found = in_file.get((pb.metadata.namespace, recovery.source.pulse_base))
            if found is None:
                print(
                    f"error: {models.KIND} {pb.metadata.name} restores from "
                    f"{recovery.source.pulse_base}, which is not in {args.filename}; render "
                    "both from one file to see the restore",
                    file=sys.stderr,
                )
                return 2
            source, source_body = found
            oldest = backup_policy.recoverable_from(source_body)
            if refused := restore.refusal(pb, source, recoverable_from=oldest):
                print(f"error: {models.KIND} {pb.metadata.name}: {refused}", file=sys.stderr)
                return 2
        served = [k.key for k in stack.OPTIONAL_KINDS] if args.prometheus_rule else []
        rendered = stack.render(pb, served=served, recovery_source=source)
        output.extend(rendered.objects)
        generated.extend(rendered.secrets)
    if args.output == "json":
        print(json.dumps(output, indent=2))
        return 0
    sys.stdout.write(_dump_all(output))
    # Credentials are made in the cluster, once; the output stays applicable without them.
    for secret in generated:
        names = [k for k, _ in (*secret.random_keys, *secret.templates)]
        if secret.certificate_for:
            names += [certificates.CA_KEY, certificates.CERT_KEY, certificates.KEY_KEY]
        keys = ", ".join(names)
        print(
            f"# Secret {secret.namespace}/{secret.name} ({keys}) is generated by the "
            "operator when it first reconciles this PulseBase."
        )
    return 0


class _RefusedError(Exception):
    """A one-line reason the command cannot go on, printed after `error: `."""


def _pulsebase_name(name: str, *, what: str = "NAME") -> None:
    """Refuse, before any API call, a NAME no PulseBase can have."""
    import re

    if len(name) > models.NAME_MAX_LENGTH or not re.fullmatch(models.NAME_PATTERN, name):
        raise _RefusedError(f"{what} must be a PulseBase name (a DNS label), not {name!r}")


def _bad_name(name: str) -> int | None:
    """Exit status 2, after saying why, when NAME is no PulseBase name; else None."""
    try:
        _pulsebase_name(name)
    except _RefusedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return None


def _one_line(error: Exception, said: tuple[type[Exception], ...]) -> int:
    """A failure of a command for people as one line, and exit 1: errors whose message is
    written for them as it is, the API server's with the step, anything else by its text."""
    from pulsebase_operator.kube.client import KubeError

    if isinstance(error, (_RefusedError, *said)):
        print(f"error: {error}", file=sys.stderr)
    elif isinstance(error, KubeError):
        print(f"error: could not {error.step}: {error.detail}", file=sys.stderr)
    else:  # anything else the client raises
        reason = " ".join(str(error).split()) or type(error).__name__
        print(f"error: {reason}", file=sys.stderr)
    return 1


def _api_client(kubeconfig: str | None) -> Any:
    """kube.client.load_config, with every way it fails turned into one line that
    names the file."""
    from pulsebase_operator.kube.client import load_config

    path = kubeconfig
    if path is None:
        # load_config's own fallback when not in a pod.
        path = os.path.expanduser(
            os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
        )
    try:
        api_client, _ = load_config(kubeconfig)
    except Exception as error:  # the client's ConfigException, YAML, OSError, TypeError...
        if kubeconfig is None and not os.environ.get("KUBECONFIG") and not os.path.exists(path):
            raise _RefusedError("no kubeconfig found: set --kubeconfig or KUBECONFIG") from None
        raise _RefusedError(
            f"cannot use kubeconfig {path}: {_kubeconfig_reason(path, error)}"
        ) from None
    return api_client


def _kubeconfig_reason(path: str, error: Exception) -> str:
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "it is a folder, not a file"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    if isinstance(error, yaml.YAMLError):
        return "it is not YAML"
    if isinstance(error, (TypeError, AttributeError, KeyError, IndexError, ValueError)):
        # The client indexes into whatever the YAML holds.
        return "it is not a kubeconfig (a mapping with clusters, contexts and users)"
    return " ".join(str(error).split()) or type(error).__name__


def cmd_retention_plan(args: argparse.Namespace) -> int:
    """Which backups of a pgBackRest catalog the retention policy keeps; touches nothing."""
    from pulsebase_operator.policy import retention

    # The arguments first: a bad one is reported whatever arrives on stdin.
    try:
        policy = retention.Policy(daily=args.daily, weekly=args.weekly, time_zone=args.time_zone)
        retention.zone(policy)
        models.known_time_zone(args.time_zone)  # as spec.backup.timeZone: no Factory
        now = datetime.datetime.fromisoformat(args.now) if args.now else None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    elif now.tzinfo is None:
        print("error: --now needs an offset, such as 2026-12-03T10:00:00Z", file=sys.stderr)
        return 2
    elif not _EARLIEST_NOW <= now <= _LATEST_NOW:
        print(
            f"error: --now must lie between {_EARLIEST_NOW:%Y-%m-%d} and {_LATEST_NOW:%Y-%m-%d}, "
            f"not {args.now}",
            file=sys.stderr,
        )
        return 2
    try:
        info = json.load(sys.stdin)
    except RecursionError:
        print(
            "error: the catalog is nested too deeply to be pgBackRest's info output",
            file=sys.stderr,
        )
        return 2
    except ValueError as error:  # not JSON, or not text
        print(
            f"error: standard input is not JSON (pgbackrest info --output=json): {error}",
            file=sys.stderr,
        )
        return 2
    # Each stanza is a calendar of its own: pgBackRest lists every stanza of the
    # repository, and one's backups must never stand for another's day.
    try:
        decisions = [
            {"stanza": stanza, **d.as_dict()}
            for stanza, backups in retention.backups_by_stanza(info)
            for d in retention.plan(backups, policy=policy, now=now)
        ]
    except (ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(decisions, indent=2))
    return 0


def cmd_backups_list(args: argparse.Namespace) -> int:
    """The backup sets of a PulseBase as pgBackRest reads them in its primary, with the
    retention policy's decision for each."""
    from pulsebase_operator.backups.errors import BackupError
    from pulsebase_operator.reconcile import backup_job

    if (refused := _bad_name(args.name)) is not None:
        return refused
    try:
        api_client = _api_client(args.kubeconfig)
        rows = backup_job.list_backups(api_client, name=args.name, namespace=args.namespace)
    except Exception as error:
        return _one_line(error, (backup_job.SpecError, backup_job.PrimaryError, BackupError))
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    elif rows:
        print(backup_job.format_rows(rows))
    else:
        print(f"no backups of {args.namespace}/{args.name} yet")
    return 0


def cmd_backup_job(args: argparse.Namespace) -> int:
    """One run of a backup Job in the cluster: the stanza, a backup, or the vector dump."""
    from pulsebase_operator.reconcile import backup_job

    try:
        _pulsebase_name(args.name, what="--name")
    except _RefusedError as error:
        print(f"error: {error}", file=sys.stderr)
        return backup_job.EXIT_SPEC
    try:
        api_client = _api_client(args.kubeconfig)
    except _RefusedError as error:
        print(f"error: {error}", file=sys.stderr)
        return backup_job.EXIT_CLUSTER
    return backup_job.main(
        kind=args.kind,
        name=args.name,
        namespace=args.namespace,
        api_client=api_client,
        emit=backup_job.json_lines(name=args.name, namespace=args.namespace),
    )


def cmd_drill_check(args: argparse.Namespace) -> int:
    """The check container of a restore drill: one JSON result on stdout and in the
    termination message; non-zero when the drill failed."""
    import pathlib
    import signal

    from pulsebase_operator.backups import drill

    def stop(signum: int, _: object) -> None:
        raise drill.Stopped(signal.Signals(signum).name)

    import re

    if args.marker_table and not re.fullmatch(models.MARKER_TABLE_PATTERN, args.marker_table):
        print(
            f"error: --marker-table must be schema.table, not {args.marker_table!r}",
            file=sys.stderr,
        )
        return 2
    if not args.deadline > 0:
        print("error: --deadline must be a number of seconds above zero", file=sys.stderr)
        return 2
    scratch = pathlib.Path(args.scratch)
    if not scratch.is_dir():
        print(f"error: --scratch {scratch} is not a folder", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, stop)
    conn_params = {"host": str(scratch / "run"), "user": args.user, "dbname": args.dbname}
    result = drill.run(
        drill.Drill(
            scratch=scratch,
            conn_params=conn_params,
            deadline=args.deadline,
            stanza=args.stanza,
            marker_table=args.marker_table,
        )
    )
    message = drill.encode(result)
    print(message, flush=True)
    termination = pathlib.Path(args.termination_log)
    # Kubernetes creates the file; elsewhere (a local run) there is nothing to write to.
    try:
        if termination.exists():
            termination.write_text(message)
    except OSError as error:  # stdout holds the report already
        print(f"error: cannot write {termination}: {error.strerror}", file=sys.stderr)
        return 1
    return 0 if result.succeeded else 1


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import threading

    import kopf

    from pulsebase_operator.kube.client import Kube, connection_info, load_config
    from pulsebase_operator.kube.leases import LeaderElection
    from pulsebase_operator.reconcile import handlers
    from pulsebase_operator.reconcile.health import Scope as ProbeScope
    from pulsebase_operator.telemetry import health as health_metrics
    from pulsebase_operator.telemetry import logging as telemetry_logging
    from pulsebase_operator.telemetry import metrics

    telemetry_logging.configure(args.log_level)
    if args.metrics_address:
        health_metrics.register()
        metrics.serve(args.metrics_address)
    api_client, in_cluster = load_config(args.kubeconfig)
    handlers.OPTIONS.kube = Kube(api_client, discovery_seconds=args.discovery_seconds)
    if not in_cluster:
        handlers.OPTIONS.connection = kopf.ConnectionInfo(**connection_info(api_client))
    handlers.OPTIONS.resync_seconds = args.resync_seconds
    handlers.OPTIONS.probe_scope = ProbeScope(args.probes)
    namespaces = args.namespace or []
    # kopf lists cluster-wide without --namespace; with only namespaced Roles (the chart's
    # watchNamespaces) every list would be refused and kopf would stop with a traceback.
    if not namespaces and not handlers.OPTIONS.kube.may(
        verb="list", group=models.GROUP, resource=models.PLURAL
    ):
        print(
            f"error: this identity may not list {models.PLURAL} in all namespaces; pass "
            "--namespace NS for each namespace it may watch",
            file=sys.stderr,
        )
        return 2

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
        handlers.OPTIONS.on_shutdown.append(lambda: _hand_over(election, stop, lost))

    health = f"http://{args.health_address}/healthz" if args.health_address else None

    async def operate() -> None:
        # kopf waits for a threading flag in an executor thread, which would keep the
        # process alive after a normal stop; an asyncio.Event needs no thread.
        loop = asyncio.get_running_loop()
        stop_kopf = asyncio.Event()
        if election is not None:

            def on_lost() -> None:
                lost.set()
                loop.call_soon_threadsafe(stop_kopf.set)

            threading.Thread(target=election.keep, args=(stop, on_lost), daemon=True).start()
        await kopf.operator(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=health,
            stop_flag=stop_kopf,
        )

    try:
        asyncio.run(operate())
    finally:
        if election is not None:
            _hand_over(election, stop, lost)
    return 1 if lost.is_set() else 0


def cmd_manual_job(args: argparse.Namespace) -> int:
    """`backup` and `drill`: start one run of the CronJob now, as a Job."""
    from pulsebase_operator.kube.client import Kube
    from pulsebase_operator.reconcile import manual

    what = args.kind if args.command == "backup" else "drill"
    if (refused := _bad_name(args.name)) is not None:
        return refused
    try:
        api_client = _api_client(args.kubeconfig)
        started = manual.start(
            Kube(api_client), namespace=args.namespace, pulsebase=args.name, what=what
        )
    except Exception as error:
        return _one_line(error, (manual.ManualJobError,))
    print(f"job.batch/{started.name} created from cronjob/{started.cron_job}")
    print(f"follow it: kubectl -n {started.namespace} logs -f job/{started.name}")
    return 0


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
        "--probes",
        choices=["all", "external", "none"],
        default="all",
        help="which dependencies the live health probes reach: all (default), only "
        "external ones (when the operator cannot reach the cluster's Services), or none",
    )
    run.add_argument(
        "--discovery-seconds",
        type=float,
        default=180.0,
        help="how often the operator asks whether optional kinds such as PrometheusRule "
        "are served (default 180)",
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

    retention = commands.add_parser("retention", help="backup retention decisions")
    retention_commands = retention.add_subparsers(dest="retention_command", required=True)
    plan = retention_commands.add_parser(
        "plan",
        help="read `pgbackrest info --output=json` on stdin, print keep/expire per backup",
    )
    plan.add_argument("--daily", type=int, default=30, help="days kept (default 30)")
    plan.add_argument("--weekly", type=int, default=52, help="ISO weeks kept (default 52)")
    plan.add_argument("--time-zone", default="UTC", help="IANA time zone of days and weeks")
    plan.add_argument("--now", help="the current time, RFC 3339 with an offset")
    plan.set_defaults(func=cmd_retention_plan)

    listing = commands.add_parser("backups", help="the backups of a PulseBase")
    listing_commands = listing.add_subparsers(dest="backups_command", required=True)
    sets = listing_commands.add_parser(
        "list", help="every backup set, as pgBackRest reads it, with the retention decision"
    )
    sets.add_argument("name", help="the PulseBase")
    sets.add_argument("-n", "--namespace", default="default", help="(default: default)")
    sets.add_argument("-o", "--output", choices=["table", "json"], default="table")
    sets.add_argument(
        "--kubeconfig", help="kubeconfig file; in-cluster or ~/.kube/config by default"
    )
    sets.set_defaults(func=cmd_backups_list)

    job = commands.add_parser(
        "backup-job",
        help="take a backup of a PulseBase from inside the cluster (what its backup Jobs run)",
    )
    job.add_argument(
        "--kind",
        required=True,
        choices=["stanza", "full", "incr", "vectors"],
        help="create the stanza, take a full or incremental backup, or dump the vector tables",
    )
    job.add_argument("--name", required=True, help="the PulseBase")
    job.add_argument("--namespace", required=True, help="its namespace")
    job.add_argument(
        "--kubeconfig", help="kubeconfig file; in-cluster or ~/.kube/config by default"
    )
    job.set_defaults(func=cmd_backup_job)

    backup = commands.add_parser(
        "backup", help="take a backup now, from the PulseBase's backup CronJob"
    )
    backup.add_argument("name", help="the PulseBase")
    backup.add_argument("--kind", choices=["full", "incr"], default="full")
    drill = commands.add_parser(
        "drill", help="run a restore drill now, from the PulseBase's drill CronJob"
    )
    drill.add_argument("name", help="the PulseBase")
    for manual in (backup, drill):
        manual.add_argument("-n", "--namespace", default="default", help="(default: default)")
        manual.add_argument(
            "--kubeconfig", help="kubeconfig file; in-cluster or ~/.kube/config by default"
        )
        manual.set_defaults(func=cmd_manual_job)
    check = commands.add_parser(
        "drill-check", help="measure and check a restore drill's copy (runs in the drill pod)"
    )
    check.add_argument("--scratch", required=True, help="the scratch folder shared with restore")
    check.add_argument(
        "--deadline", type=float, required=True, help="seconds the whole drill may take"
    )
    check.add_argument("--marker-table", help="schema.table that must hold rows in the copy")
    check.add_argument("--user", default="postgres", help="role to connect as (default postgres)")
    check.add_argument(
        "--dbname",
        default=os.environ.get("PGDATABASE", "postgres"),
        help="database to check (default: $PGDATABASE, else postgres)",
    )
    check.add_argument("--stanza", default="pulsebase", help="pgBackRest stanza restored")
    check.add_argument(
        "--termination-log",
        default="/dev/termination-log",
        help="also write the result here, if the file exists (default /dev/termination-log)",
    )
    check.set_defaults(func=cmd_drill_check)

    commands.add_parser("crd", help="print the CustomResourceDefinition").set_defaults(func=cmd_crd)
    commands.add_parser("version", help="print the version").set_defaults(func=cmd_version)

    render = commands.add_parser("render", help="print the objects a PulseBase becomes")
    render.add_argument("-f", "--filename", required=True, help="YAML file, or - for stdin")
    render.add_argument(
        "-n", "--namespace", default="default", help="namespace for resources that name none"
    )
    render.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    render.add_argument(
        "--prometheus-rule",
        action="store_true",
        help="include the PrometheusRule, for clusters with prometheus-operator's CRDs",
    )
    render.set_defaults(func=cmd_render)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
