"""Real servers on loopback for the integration tests: PostgreSQL, Redis, S3, HTTP.

Each server starts on 127.0.0.1 with a free port and its own temporary folder, and is
stopped by its process id when its fixture ends; a server process also gets a signal when
pytest itself dies, so nothing outlives the run. A fixture skips its tests, saying which
Debian package to install, only when the server's program is not installed;
`hack/install-test-deps.sh` installs them all.

tests/conftest.py registers this module as a plugin, so any test can ask for the fixtures:

    postgres_pair         per run: a primary with pg_stat_statements and one streaming
                          replica (PostgresPair: .primary, .replica)
    postgres_server       per test: a lone primary to stop or freeze
    pgvector_server       per run: PostgreSQL 16 with pgvector, from the pgserver wheel
    redis_node            per run: one Redis with a password (.password)
    redis_cluster         per run: six nodes, three primaries with a replica each
    redis_cluster_fresh   per test: the same six-node layout, to break
    s3_server             per run: moto's S3 server (.endpoint, .client(), .target())
    s3_server_fresh       per test: another one, to stop and start again
    http_server           per run: /ok (200), /down (503), /slow and /drip (hang)

The same servers without pytest: `start_postgres()` (`bindir=pgvector_bindir()` and
`preload=""` for the pgvector one) and `start_replica(primary)` (then
`.remove()`), `RedisNode.start(root=...)`, `start_redis_cluster()`, `MotoServer.start()`
(then `.remove()`) and `HttpServer()`, each with `.stop()`.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import redis

from pulsebase_operator.probes import ObjectStoreTarget, PostgresTarget, RedisTarget
from tests.support.localcluster import free_port, pid_alive

PG_BIN_ENV = "PULSEBASE_PG_BINDIR"
PGVECTOR_BIN_ENV = "PULSEBASE_PGVECTOR_BINDIR"
PG_SUPERUSER_PASSWORD = "postgres-superuser-secret"
PROBE_USER = "probe"
PROBE_PASSWORD = "probe-user-secret-42"
REDIS_PASSWORD = "redis-secret-7781"
S3_ACCESS_KEY = "AKIAPROBETESTKEY0001"
S3_SECRET_KEY = "s3-secret-key-for-tests-0001"
S3_REGION = "us-east-1"
CLUSTER_NODE_TIMEOUT_MS = 1000


def poll(read: Callable[[], Any], until: Callable[[Any], bool], *, within: float = 20) -> Any:
    """Read until `until` holds or `within` seconds pass; assert it holds at the end."""
    deadline = time.monotonic() + within
    reading = read()
    while not until(reading) and time.monotonic() < deadline:
        time.sleep(0.2)
        reading = read()
    assert until(reading), reading
    return reading


class ServerError(RuntimeError):
    """A server did not start or did not become ready."""


def wait_until(check: Callable[[], bool], what: str, *, timeout: float = 30) -> None:
    """Poll `check` until it returns True; errors count as not yet, ServerError ends it."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ServerError:
            raise
        except Exception as error:
            last = f" (last error: {type(error).__name__}: {error})"
        time.sleep(0.1)
    raise ServerError(f"timed out after {timeout:g} s waiting for {what}{last}")


def _die_with_parent(sig: int) -> Callable[[], None]:
    def arm() -> None:
        # Runs in the child after any change of user (which would clear it).
        with contextlib.suppress(Exception):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, sig)

    return arm


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@dataclass
class Process:
    """One server process, started and stopped by pid."""

    name: str
    args: Sequence[str]
    log: Path
    user: str | None = None  # run as this user (PostgreSQL refuses to run as root)
    stop_signal: int = signal.SIGTERM
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Process:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                list(self.args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                group=_group_of(self.user),
                env=self.env,
                preexec_fn=_die_with_parent(self.stop_signal),
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None and pid_alive(self.pid)

    def check(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ServerError(
                f"{self.name} exited with {self.popen.returncode}:\n{_tail(self.log)}"
            )

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, *, timeout: float = 15) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)  # a frozen process cannot act on a signal
            os.kill(self.pid, self.stop_signal)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


def _group_of(user: str | None) -> int | None:
    return pwd.getpwnam(user).pw_gid if user else None


def _owned_tempdir(prefix: str, user: str | None) -> Path:
    # Outside pytest's tmp_path: its parents are private to root, and PostgreSQL may run
    # as another user.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    return root


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path | None:
    candidates = [os.environ.get(PG_BIN_ENV, "")]
    candidates += sorted(
        (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and all(
            (Path(candidate) / tool).is_file() for tool in ("postgres", "initdb", "pg_basebackup")
        ):
            return Path(candidate)
    return None


def postgres_user() -> str | None:
    """The user to run PostgreSQL as: None to run as ourselves, which it allows unless root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerError(
            "running as root and there is no 'postgres' user to run PostgreSQL as; "
            "the postgresql-15 package creates one (hack/install-test-deps.sh)"
        ) from None
    return "postgres"


@dataclass
class Postgres:
    name: str
    bindir: Path
    root: Path
    port: int
    user: str | None
    # What the server preloads: pgserver's build has no pg_stat_statements, so none there.
    preload: str = "pg_stat_statements"
    process: Process | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def conninfo(self, *, dbname: str = "postgres") -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "postgres",
            "password": PG_SUPERUSER_PASSWORD,
            "dbname": dbname,
            "connect_timeout": 5,
        }

    def connect(self, *, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """A superuser connection in autocommit mode."""
        return psycopg.connect(**self.conninfo(dbname=dbname), autocommit=True)

    def execute(
        self, query: str, params: Sequence[Any] = (), *, dbname: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser; its rows, if it returns any."""
        with self.connect(dbname=dbname) as conn:
            cursor = conn.execute(query.encode(), params or None)
            return cursor.fetchall() if cursor.description else []

    def target(
        self,
        *,
        database: str = "postgres",
        user: str = PROBE_USER,
        password: str = PROBE_PASSWORD,
        volume_bytes: int | None = None,
    ) -> PostgresTarget:
        return PostgresTarget(
            host="127.0.0.1",
            port=self.port,
            database=database,
            user=user,
            password=password,
            sslmode="disable",
            volume_bytes=volume_bytes,
        )

    def start(self, *settings: str) -> Postgres:
        options = [
            f"port={self.port}",
            "listen_addresses=127.0.0.1",
            "unix_socket_directories=",  # TCP only: no socket folder to own
            f"cluster_name={self.name}",
            f"shared_preload_libraries={self.preload}",
            "max_connections=20",
            "shared_buffers=16MB",
            "fsync=off",  # a test server: speed over durability
            "max_wal_senders=4",
            "wal_receiver_status_interval=1s",
            "logging_collector=off",
            *settings,
        ]
        args = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for option in options:
            args += ["-c", option]
        self.process = Process(
            name=self.name, args=args, log=self.log, user=self.user, stop_signal=signal.SIGINT
        ).start()

        def ready() -> bool:
            assert self.process is not None
            self.process.check()
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True

        wait_until(ready, f"{self.name} to accept connections")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _run_as(user: str | None, args: Sequence[str], *, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        list(args),
        user=user,
        group=_group_of(user),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise ServerError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")


def start_postgres(
    *,
    name: str = "primary",
    bindir: Path | None = None,
    settings: Sequence[str] = (),
    preload: str = "pg_stat_statements",
) -> Postgres:
    """initdb and start a primary with pg_stat_statements (when preloaded) and a pg_monitor
    user `probe`; `settings` are more `name=value` options, and a later one wins."""
    bindir = bindir or postgres_bindir()
    if bindir is None:
        raise ServerError("no PostgreSQL server binaries")
    user = postgres_user()
    root = _owned_tempdir("pulsebase-pg-", user)
    server = Postgres(
        name=name, bindir=bindir, root=root, port=free_port(), user=user, preload=preload
    )
    try:
        password_file = root / "superuser-password"
        password_file.write_text(PG_SUPERUSER_PASSWORD + "\n")
        if user:
            entry = pwd.getpwnam(user)
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
        _run_as(
            user,
            [
                str(bindir / "initdb"),
                "-D",
                str(server.data),
                "--username=postgres",
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--locale=C",
                "--encoding=UTF8",
                "--no-sync",
            ],
        )
        server.start(*settings)
        if "pg_stat_statements" in preload:
            server.execute("CREATE EXTENSION pg_stat_statements")
        server.execute(
            f"CREATE ROLE {PROBE_USER} LOGIN PASSWORD '{PROBE_PASSWORD}' IN ROLE pg_monitor"
        )
        # A database created after the extension, from template0, has no pg_stat_statements.
        server.execute("CREATE DATABASE plain TEMPLATE template0")
    except BaseException:
        server.remove()
        raise
    return server


def start_replica(primary: Postgres, *, name: str = "replica1") -> Postgres:
    """A streaming replica of `primary`, cloned with pg_basebackup -R."""
    root = _owned_tempdir("pulsebase-pg-", primary.user)
    replica = Postgres(
        name=name,
        bindir=primary.bindir,
        root=root,
        port=free_port(),
        user=primary.user,
        preload=primary.preload,
    )
    try:
        _run_as(
            primary.user,
            [
                str(primary.bindir / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(replica.data),
                "-R",  # writes primary_conninfo and standby.signal
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            env={**os.environ, "PGPASSWORD": PG_SUPERUSER_PASSWORD},
        )
        replica.start()
        wait_until(
            lambda: bool(
                primary.execute(
                    "SELECT 1 FROM pg_stat_replication"
                    " WHERE application_name = %s AND state = 'streaming'",
                    [name],
                )
            ),
            f"{name} to stream from {primary.name}",
        )
    except BaseException:
        replica.remove()
        raise
    return replica


def pgvector_bindir() -> Path | None:
    """PostgreSQL binaries whose server has pgvector: PULSEBASE_PGVECTOR_BINDIR, else the
    ones inside the pgserver wheel (PostgreSQL 16.2 with pgvector 0.6.2 built in)."""
    candidates = [Path(os.environ[PGVECTOR_BIN_ENV])] if os.environ.get(PGVECTOR_BIN_ENV) else []
    # Found, not imported: importing pgserver would pull in psutil for nothing.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    tools = ("postgres", "initdb", "pg_dump", "pg_restore")
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in tools):
            return bindir
    return None


@dataclass
class PostgresPair:
    primary: Postgres
    replica: Postgres


# --------------------------------------------------------------------------- Redis


def redis_binaries() -> tuple[str, str] | None:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    return (server, cli) if server and cli else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    # A cluster node also listens on its port + 10000 for the cluster bus, so the port must
    # be at most 55535 and the bus port free as well.
    for _ in range(100):
        port = free_port()
        if port <= 55535 and _port_free(port + 10000):
            return port
    raise ServerError("found no free port pair for a Redis cluster node")


@dataclass
class RedisNode:
    root: Path
    port: int
    password: str | None
    process: Process

    @classmethod
    def start(
        cls,
        *,
        root: Path,
        password: str | None = None,
        cluster: bool = False,
        settings: Sequence[str] = (),
    ) -> RedisNode:
        found = redis_binaries()
        if found is None:
            raise ServerError("no redis-server")
        port = _cluster_port() if cluster else free_port()
        folder = root / str(port)
        folder.mkdir(parents=True)
        args = [
            found[0],
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        if password:
            args += ["--requirepass", password, "--masterauth", password]
        if cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(folder / "nodes.conf"),
                "--cluster-node-timeout",
                str(CLUSTER_NODE_TIMEOUT_MS),
            ]
        args += list(settings)
        process = Process(name=f"redis-{port}", args=args, log=folder / "redis.log").start()
        node = cls(root=folder, port=port, password=password, process=process)

        def ready() -> bool:
            process.check()
            return bool(node.client().ping())

        wait_until(ready, f"redis on port {port}")
        return node

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=5,
            decode_responses=True,
            **options,
        )

    def target(self, *, password: str | None = None) -> RedisTarget:
        return RedisTarget(
            endpoints=(("127.0.0.1", self.port),),
            password=password if password is not None else self.password,
            cluster=False,
        )

    def stop(self) -> None:
        self.process.stop()


@dataclass
class RedisCluster:
    root: Path
    nodes: list[RedisNode]

    def target(self) -> RedisTarget:
        # Two seeds, as a Service in front of the cluster would offer more than one.
        return RedisTarget(endpoints=tuple(("127.0.0.1", n.port) for n in self.nodes[:2]))

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(
            host="127.0.0.1", port=self.nodes[0].port, decode_responses=True, socket_timeout=5
        )

    def node_roles(self) -> dict[int, str]:
        return {n.port: str(n.client().info("replication")["role"]) for n in self.nodes}

    def replica_of(self, primary: RedisNode) -> RedisNode:
        primary_id = str(primary.client().execute_command("CLUSTER", "MYID"))
        for node in self.nodes:
            info = node.client().execute_command("CLUSTER", "NODES")
            for line in str(info).splitlines():
                parts = line.split()
                if "myself" in parts[2] and parts[3] == primary_id:
                    return node
        raise ServerError(f"no replica of the primary on port {primary.port}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_redis_cluster(*, primaries: int = 3, replicas: int = 1) -> RedisCluster:
    found = redis_binaries()
    if found is None:
        raise ServerError("no redis-server")
    root = Path(tempfile.mkdtemp(prefix="pulsebase-redis-cluster-"))
    nodes: list[RedisNode] = []
    try:
        for _ in range(primaries * (1 + replicas)):
            nodes.append(RedisNode.start(root=root, cluster=True))
        result = subprocess.run(
            [
                found[1],
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed: {result.stdout[-2000:]}")

        def formed() -> bool:
            for node in nodes:
                info = str(node.client().execute_command("CLUSTER", "INFO"))
                if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                    return False
                known = f"cluster_known_nodes:{len(nodes)}"
                if known not in info:
                    return False
            roles = [n.client().info("replication")["role"] for n in nodes]
            return roles.count("master") == primaries

        wait_until(formed, "the Redis cluster to form", timeout=60)
    except BaseException:
        for node in nodes:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return RedisCluster(root=root, nodes=nodes)


# --------------------------------------------------------------------------- S3 (moto)


def moto_server_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("moto_server")
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("moto_server")


@dataclass
class MotoServer:
    root: Path
    port: int
    process: Process | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, *, root: Path | None = None, port: int | None = None) -> MotoServer:
        server = cls(
            root=root or Path(tempfile.mkdtemp(prefix="pulsebase-s3-")), port=port or free_port()
        )
        server.restart()
        return server

    def restart(self) -> None:
        """Start (again, on the same port). moto keeps everything in memory: a restart
        begins with no buckets."""
        binary = moto_server_binary()
        if binary is None:
            raise ServerError("no moto_server")
        self.process = Process(
            name=f"moto-{self.port}",
            args=[binary, "-H", "127.0.0.1", "-p", str(self.port)],
            log=self.root / "moto.log",
        ).start()

        def ready() -> bool:
            assert self.process is not None
            self.process.check()
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2) as answer:  # noqa: S310
                return int(answer.status) == 200

        wait_until(ready, f"moto_server on port {self.port}")

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        )

    def target(
        self, *, buckets: Sequence[str] = (), backups_bucket: str | None = None
    ) -> ObjectStoreTarget:
        return ObjectStoreTarget(
            endpoint=self.endpoint,
            region=S3_REGION,
            access_key_id=S3_ACCESS_KEY,
            secret_access_key=S3_SECRET_KEY,
            buckets=tuple(buckets),
            backups_bucket=backups_bucket,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- HTTP


class HttpServer:
    """A threaded http.server with a few fixed answers; `release` ends the hanging ones."""

    def __init__(self, *, hang_seconds: float = 30) -> None:
        self.release = threading.Event()
        self.hang_seconds = hang_seconds
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/ok":
                    self._answer(200)
                elif self.path == "/down":
                    self._answer(503)
                elif self.path == "/slow":
                    # Silent until released: trips the client's socket timeout.
                    owner.release.wait(owner.hang_seconds)
                    self._answer(200)
                elif self.path == "/drip":
                    # A byte at a time, a status line and then an endless header: every
                    # read succeeds within the socket timeout, so only a total deadline
                    # ends the wait.
                    payload = b"HTTP/1.1 200 OK\r\nX-Trickle: "
                    deadline = time.monotonic() + owner.hang_seconds
                    sent = 0
                    while time.monotonic() < deadline and not owner.release.wait(0.2):
                        byte = payload[sent] if sent < len(payload) else ord("z")
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        sent += 1
                    self.close_connection = True
                else:
                    self._answer(404)

            def _answer(self, status: int) -> None:
                body = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on /slow or /drip is the point of those paths

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# --------------------------------------------------------------------------- fixtures


def _require(found: object, what: str, *, install: str) -> None:
    if not found:
        pytest.skip(f"{what} is not installed: {install}")


_PG_INSTALL = "Debian package postgresql-15 (hack/install-test-deps.sh installs it)"
_PGVECTOR_INSTALL = (
    "pip install pgserver==0.1.4 (in the test extras; known to work from its manylinux"
    " x86_64 wheel), or point PULSEBASE_PGVECTOR_BINDIR at the binaries of a PostgreSQL"
    " with pgvector"
)
_REDIS_INSTALL = "Debian package redis-server (hack/install-test-deps.sh installs it)"
_MOTO_INSTALL = "pip install 'moto[server]' (in the test extras)"


def _started(start: Callable[[], Any]) -> Any:
    # pytest.fail outside the except block, so the report shows the message once.
    try:
        return start()
    except ServerError as error:
        problem = str(error)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def postgres_pair() -> Iterator[PostgresPair]:
    _require(postgres_bindir(), "the PostgreSQL server", install=_PG_INSTALL)
    primary = _started(start_postgres)
    try:
        replica = _started(lambda: start_replica(primary))
        try:
            yield PostgresPair(primary=primary, replica=replica)
        finally:
            replica.remove()
    finally:
        primary.remove()


@pytest.fixture
def postgres_server() -> Iterator[Postgres]:
    _require(postgres_bindir(), "the PostgreSQL server", install=_PG_INSTALL)
    server = _started(lambda: start_postgres(name="lone"))
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[Postgres]:
    _require(pgvector_bindir(), "a PostgreSQL with pgvector", install=_PGVECTOR_INSTALL)
    server = _started(lambda: start_postgres(name="vectors", bindir=pgvector_bindir(), preload=""))
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def redis_node() -> Iterator[RedisNode]:
    _require(redis_binaries(), "redis-server", install=_REDIS_INSTALL)
    root = Path(tempfile.mkdtemp(prefix="pulsebase-redis-"))
    node = _started(lambda: RedisNode.start(root=root, password=REDIS_PASSWORD))
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


def _redis_cluster() -> Iterator[RedisCluster]:
    _require(redis_binaries(), "redis-server", install=_REDIS_INSTALL)
    cluster = _started(start_redis_cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


# One shared by the session, and one of its own for each test that breaks it.
redis_cluster = pytest.fixture(scope="session", name="redis_cluster")(_redis_cluster)
redis_cluster_fresh = pytest.fixture(name="redis_cluster_fresh")(_redis_cluster)


def _s3_server() -> Iterator[MotoServer]:
    _require(moto_server_binary(), "moto_server", install=_MOTO_INSTALL)
    server = _started(MotoServer.start)
    try:
        yield server
    finally:
        server.remove()


# One shared by the session, and one of its own for each test that stops it.
s3_server = pytest.fixture(scope="session", name="s3_server")(_s3_server)
s3_server_fresh = pytest.fixture(name="s3_server_fresh")(_s3_server)


@pytest.fixture(scope="session")
def http_server() -> Iterator[HttpServer]:
    server = HttpServer()
    try:
        yield server
    finally:
        server.stop()
