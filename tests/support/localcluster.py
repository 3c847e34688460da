"""A real Kubernetes control plane on loopback, without Docker, for e2e tests and `make dev`.

It runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK as plain
processes from the binaries that `hack/build-tools.sh` builds. KWOK plays the kubelets of
two fake Nodes, so the scheduler, the controllers, pod security admission, RBAC and the
audit log are all real while no container ever runs.

Everything lives in one state folder: PKI, kubeconfigs, etcd data, process logs (logs/),
the audit log, `cluster.json` (ports, binary folder) and `pids` (lets `down` stop a cluster
that `up` started from another process).

    python -m tests.support.localcluster up --state-dir DIR     # prints the kubeconfig path
    python -m tests.support.localcluster status --state-dir DIR
    python -m tests.support.localcluster down --state-dir DIR

Only the standard library, cryptography and pyyaml are used, so the module can run before
the rest of the test dependencies are installed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = REPO_ROOT / "hack" / "build-tools.sh"
BIN_DIR_ENV = "PULSEBASE_BIN_DIR"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"  # KWOK hands out pod IPs from here; nothing routes them.
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
NODES = (("kwok-node-0", "zone-a"), ("kwok-node-1", "zone-b"))
STORAGE_CLASS = "standard"
OPERATOR_USER = "pulsebase-operator"
HEALTH_PATHS = "/healthz,/readyz,/livez,/metrics"
# Start order: each one waits for the previous to be healthy. stop() signals all at once.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

# Client identities: (file stem, CN, organisations). The component CNs are the ones the
# bootstrap RBAC policy already grants, so the components run with their real permissions.
CLIENTS = (
    ("admin", "admin", ("system:masters",)),
    ("controller-manager", "system:kube-controller-manager", ()),
    ("scheduler", "system:kube-scheduler", ()),
    ("kwok", "system:kwok-controller", ("system:masters",)),
    ("operator", OPERATOR_USER, ("system:masters",)),
)


class ClusterError(RuntimeError):
    """The control plane could not be started, reached or stopped."""


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str, orgs: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Back-dated so a slightly skewed clock never sees a "not yet valid" cert.
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def make_ca() -> Issued:
    # EC keys: generating a handful of RSA keys costs seconds on a slow CI machine.
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("pulsebase-local-ca")
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued,
    cn: str,
    orgs: Iterable[str] = (),
    *,
    server: bool = False,
    dns: Iterable[str] = (),
    ips: Iterable[str] = (),
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(cn, orgs), ca.cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _write_pair(pki: Path, stem: str, issued: Issued) -> None:
    (pki / f"{stem}.crt").write_bytes(_pem_cert(issued.cert))
    _write_private(pki / f"{stem}.key", _pem_key(issued.key))


def service_ip(cidr: str = SERVICE_CIDR) -> str:
    """The `kubernetes` Service's ClusterIP: the first address of the service range."""
    return str(next(ipaddress.ip_network(cidr).hosts()))


def generate_pki(pki: Path) -> None:
    """Writes the CA, the apiserver serving pair, one client pair per identity, SA keys."""
    pki.mkdir(parents=True, exist_ok=True)
    ca = make_ca()
    _write_pair(pki, "ca", ca)
    dns = (
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    _write_pair(
        pki,
        "apiserver",
        issue(ca, "kube-apiserver", server=True, dns=dns, ips=("127.0.0.1", service_ip())),
    )
    for stem, cn, orgs in CLIENTS:
        _write_pair(pki, stem, issue(ca, cn, orgs))
    # Service-account tokens are signed with RSA: it is what every token consumer accepts.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(pki / "sa.key", _pem_key(sa_key))
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def kubeconfig(server: str, pki: Path, stem: str) -> dict[str, Any]:
    """A self-contained kubeconfig (certificates inline) for the client pair `stem`."""

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "pulsebase-local",
                "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": stem,
                "user": {
                    "client-certificate-data": b64(f"{stem}.crt"),
                    "client-key-data": b64(f"{stem}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "pulsebase-local", "context": {"cluster": "pulsebase-local", "user": stem}}
        ],
        "current-context": "pulsebase-local",
    }


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    # The kernel picks an unused port; the short window before the server binds it is an
    # accepted race for a test cluster.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child: SIGTERM it when the parent dies, so a killed pytest leaks nothing."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _proc_cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited child that nobody reaped yet still answers kill(0); it is dead all the same.
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _owned(pid: int, marker: str) -> bool:
    """True when `pid` is still one of ours: every component gets the state dir in its args,
    which protects against signalling an unrelated process that reused the pid."""
    cmdline = _proc_cmdline(pid)
    if cmdline is None:  # no /proc (not Linux): trust the pids file
        return pid_alive(pid)
    return marker in cmdline


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- HTTP


def _ssl_context(pki: Path | None, client: str | None = "admin") -> ssl.SSLContext:
    if pki is None:  # the components' own self-signed serving certs: only liveness matters
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
    return ctx


def _check_scheme(url: str) -> str:
    # URLs here are built from our own loopback ports; refuse anything else (file:, ...).
    if not url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
        raise ValueError(f"not a loopback URL: {url}")
    return url


def http_ok(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 3) -> bool:
    try:
        with urllib.request.urlopen(  # noqa: S310 - scheme checked
            _check_scheme(url), context=ctx, timeout=timeout
        ) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError, ssl.SSLError):
        return False


class Api:
    """The few REST calls the bootstrap needs, so it works without kubectl or a client lib."""

    def __init__(self, server: str, pki: Path) -> None:
        self.server = server
        self.ctx = _ssl_context(pki)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - scheme checked
            _check_scheme(self.server + path),
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as resp:  # noqa: S310
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                return err.code, json.loads(payload or b"{}")
            except ValueError:
                return err.code, {"message": payload.decode(errors="replace")}

    def get(self, path: str) -> dict[str, Any] | None:
        status, obj = self.call("GET", path)
        return obj if status == 200 else None

    def ensure(self, collection: str, obj: dict[str, Any]) -> None:
        """Creates `obj`; an existing one is fine, because `up` may restart a state dir."""
        status, reply = self.call("POST", collection, obj)
        if status not in (200, 201, 409):
            raise ClusterError(f"POST {collection}: {status} {reply.get('message', reply)}")


def wait_for(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    alive: Callable[[], None] = lambda: None,
    interval: float = 0.5,
) -> None:
    """Polls `check`; `alive` raises as soon as a component has died, instead of timing out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        if check():
            return
        time.sleep(interval)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")


# --------------------------------------------------------------------------- cluster


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def pick(cls) -> Ports:
        ports: set[int] = set()
        while len(ports) < 6:  # the kernel may hand the same port out twice in a row
            ports.add(free_port())
        return cls(*sorted(ports))


class LocalCluster:
    """One control plane rooted in `state_dir`; see the module docstring for the layout."""

    def __init__(self, state_dir: Path | str, bin_dir: Path | str | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.bin_dir = Path(bin_dir).resolve() if bin_dir else None
        self.ports: Ports | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ready_seconds: float | None = None

    # ---- layout
    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        return self.state_dir / "operator.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def server(self) -> str:
        assert self.ports, "cluster not started or attached"
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def _pids_file(self) -> Path:
        return self.state_dir / "pids"

    @property
    def _info_file(self) -> Path:
        return self.state_dir / "cluster.json"

    def binary(self, name: str) -> Path:
        assert self.bin_dir, "no binary folder"
        return self.bin_dir / name

    # ---- public API
    @classmethod
    def attach(cls, state_dir: Path | str) -> LocalCluster:
        """A handle on a cluster that `up` started, possibly from another process."""
        cluster = cls(state_dir)
        try:
            info = json.loads(cluster._info_file.read_text())
        except (OSError, ValueError) as err:
            raise ClusterError(f"no cluster in {cluster.state_dir}: {err}") from err
        cluster.bin_dir = Path(info["bin_dir"])
        cluster.ports = Ports(**info["ports"])
        cluster.ready_seconds = info.get("ready_seconds")
        return cluster

    def start(self, *, detach: bool = False, timeout: float = 300) -> None:
        """Starts every component and returns once the cluster can run workloads.

        detach=True puts the processes in their own session so they outlive this process
        (the `up` command); otherwise they die with it (the pytest fixture)."""
        if self.running_pids():
            raise ClusterError(
                f"a cluster is already running in {self.state_dir} (make cluster-down stops it)"
            )
        self.bin_dir = self.bin_dir or resolve_bin_dir(build=False)
        began = time.monotonic()
        self._prepare()
        try:
            for name in COMPONENTS:
                self._spawn(name, detach)
                self._wait_healthy(name, timeout)
            self._bootstrap(timeout)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = round(time.monotonic() - began, 1)
        self._save_info()

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to every component, SIGKILL to what is left after `timeout` seconds."""
        volumes = self._provisioned_volumes()
        pids = self.running_pids()
        for name in reversed(COMPONENTS):
            if name in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pids[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(self._alive(p) for p in pids.values()):
            time.sleep(0.2)
        for pid in pids.values():
            if self._alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()
        self._pids_file.unlink(missing_ok=True)
        for path in volumes:
            shutil.rmtree(path, ignore_errors=True)

    def running_pids(self) -> dict[str, int]:
        try:
            pids: dict[str, int] = json.loads(self._pids_file.read_text())
        except (OSError, ValueError):
            return {}
        return {name: pid for name, pid in pids.items() if self._alive(pid)}

    def is_ready(self) -> bool:
        return self.ports is not None and http_ok(f"{self.server}/readyz", _ssl_context(self.pki))

    def kubectl(
        self, *args: str, check: bool = False, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs the pinned kubectl as the admin user."""
        return subprocess.run(
            [str(self.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=check,
            input=input,
        )

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Wait until the API server serves a CRD just applied. `kubectl wait
        --for=condition=Established` fails at once, rather than waiting, while the CRD
        has no conditions yet, which a busy API server shows for a moment."""
        query = '{.status.conditions[?(@.type=="Established")].status}'
        deadline = time.monotonic() + timeout
        while True:
            done = self.kubectl("get", "crd", crd, "-o", f"jsonpath={query}")
            if done.returncode == 0 and done.stdout.strip() == "True":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {crd} not Established after {timeout:.0f} s: {done}")
            time.sleep(0.2)

    # ---- start helpers
    def _prepare(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        if not (self.pki / "ca.crt").exists():  # keep the PKI so a restart reuses etcd data
            generate_pki(self.pki)
        self.ports = Ports.pick()
        for stem, _, _ in CLIENTS:
            name = {"admin": "kubeconfig", "operator": "operator.kubeconfig"}.get(
                stem, f"{stem}.kubeconfig"
            )
            text = yaml.safe_dump(kubeconfig(self.server, self.pki, stem), sort_keys=False)
            _write_private(self.state_dir / name, text.encode())
        (self.state_dir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))
        (self.state_dir / "kwok.yaml").write_text(yaml.safe_dump(KWOK_CONFIG))
        self._save_info()

    def _save_info(self) -> None:
        assert self.ports
        info = {
            "bin_dir": str(self.bin_dir),
            "ports": asdict(self.ports),
            "server": self.server,
            "ready_seconds": self.ready_seconds,
        }
        self._info_file.write_text(json.dumps(info, indent=2) + "\n")

    def _spawn(self, name: str, detach: bool) -> None:
        args = [str(self.binary(name)), *component_args(name, self)]
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=detach,
                preexec_fn=None if detach else _die_with_parent,
            )
        self._procs[name] = proc
        pids = {n: p.pid for n, p in self._procs.items()}
        self._pids_file.write_text(json.dumps(pids, indent=2) + "\n")

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise ClusterError(
                    f"{name} exited with {proc.returncode}; last log lines:\n"
                    + _tail(self.logs / f"{name}.log")
                )

    def _health_url(self, name: str) -> tuple[str, ssl.SSLContext | None]:
        assert self.ports
        p = self.ports
        return {
            "etcd": (f"http://127.0.0.1:{p.etcd_client}/health", None),
            "kube-apiserver": (f"{self.server}/readyz", _ssl_context(self.pki)),
            "kube-controller-manager": (
                f"https://127.0.0.1:{p.controller_manager}/healthz",
                _ssl_context(None),
            ),
            "kube-scheduler": (f"https://127.0.0.1:{p.scheduler}/healthz", _ssl_context(None)),
            "kwok": (f"http://127.0.0.1:{p.kwok}/healthz", None),
        }[name]

    def _wait_healthy(self, name: str, timeout: float) -> None:
        url, ctx = self._health_url(name)
        wait_for(lambda: http_ok(url, ctx), f"{name} at {url}", timeout, self._check_alive)

    def _bootstrap(self, timeout: float) -> None:
        api = Api(self.server, self.pki)
        for obj in node_objects():
            api.ensure("/api/v1/nodes", obj)
        api.ensure("/apis/storage.k8s.io/v1/storageclasses", storage_class())
        wait_for(
            lambda: all(_node_ready(api.get(f"/api/v1/nodes/{n}")) for n, _ in NODES),
            "KWOK to mark the nodes Ready",
            timeout,
            self._check_alive,
        )
        # Pods cannot be created before the controller-manager made the ServiceAccount.
        wait_for(
            lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
            "the default ServiceAccount",
            timeout,
            self._check_alive,
        )

    # ---- stop helpers
    def _alive(self, pid: int) -> bool:
        return pid_alive(pid) and _owned(pid, str(self.state_dir))

    def _provisioned_volumes(self) -> list[Path]:
        """Folders the in-tree hostPath provisioner made for this cluster's PVs.

        The provisioner hard-codes its base folder outside the state dir, so they are
        removed by hand when the cluster goes away."""
        if not self.ports or not self.is_ready():
            return []
        pvs = Api(self.server, self.pki).get("/api/v1/persistentvolumes") or {}
        paths = []
        for pv in pvs.get("items", []):
            annotations = pv["metadata"].get("annotations", {})
            path = pv["spec"].get("hostPath", {}).get("path")
            # Only what the provisioner made (never a hostPath PV that a test created).
            if (
                path
                and annotations.get("pv.kubernetes.io/provisioned-by") == "kubernetes.io/host-path"
                and Path(path).parent.name == "hostpath_pv"
            ):
                paths.append(Path(path))
        return paths


def _node_ready(node: dict[str, Any] | None) -> bool:
    conditions = (node or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


# --------------------------------------------------------------------------- configuration

AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    # One event per request (ResponseComplete), so counting lines counts requests.
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}

KWOK_CONFIG: dict[str, Any] = {
    # An explicit config keeps a developer's ~/.kwok/kwok.yaml out of the tests.
    "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
    "kind": "KwokConfiguration",
    "options": {},
}

ADMISSION_PLUGINS = (
    "NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,"
    "DefaultTolerationSeconds,StorageObjectInUseProtection,PersistentVolumeClaimResize,"
    "RuntimeClass,Priority,TaintNodesByCondition,NodeRestriction,PodSecurity,"
    "MutatingAdmissionWebhook,ValidatingAdmissionPolicy,"
    "ValidatingAdmissionWebhook,ResourceQuota,CertificateApproval,CertificateSigning,"
    "CertificateSubjectRestriction,DefaultIngressClass"
)


def component_args(name: str, c: LocalCluster) -> list[str]:
    assert c.ports
    p, s, pki = c.ports, c.state_dir, c.pki
    etcd_peer = f"http://127.0.0.1:{p.etcd_peer}"
    etcd_client = f"http://127.0.0.1:{p.etcd_client}"
    if name == "etcd":
        return [
            "--name=default",
            f"--data-dir={s / 'etcd'}",
            f"--listen-client-urls={etcd_client}",
            f"--advertise-client-urls={etcd_client}",
            f"--listen-peer-urls={etcd_peer}",
            f"--initial-advertise-peer-urls={etcd_peer}",
            f"--initial-cluster=default={etcd_peer}",
            # Test data is disposable; skipping fsync makes every write much cheaper.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
    if name == "kube-apiserver":
        return [
            f"--etcd-servers={etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p.apiserver}",
            f"--cert-dir={s / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            # Endpoints may not hold a loopback address, so the default reconciler logs a
            # failure every 10s; nothing here dials the `kubernetes` Service anyway.
            "--endpoint-reconciler-type=none",
            f"--enable-admission-plugins={ADMISSION_PLUGINS}",
            # Lets pod security admission, not the apiserver's own check, refuse privileged.
            "--allow-privileged=true",
            f"--audit-policy-file={s / 'audit-policy.yaml'}",
            f"--audit-log-path={c.audit_log}",
            # No rotation: tests address the audit log by line number.
            "--audit-log-maxsize=0",
            "--audit-log-maxbackup=0",
        ]
    if name == "kube-controller-manager":
        kcfg = s / "controller-manager.kubeconfig"
        return [
            f"--kubeconfig={kcfg}",
            f"--authentication-kubeconfig={kcfg}",
            f"--authorization-kubeconfig={kcfg}",
            f"--authorization-always-allow-paths={HEALTH_PATHS}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p.controller_manager}",
            f"--cert-dir={s / 'controller-manager-certs'}",
            "--controllers=*",
            "--leader-elect=false",
            # The in-tree hostPath provisioner serves StorageClass kubernetes.io/host-path.
            "--enable-hostpath-provisioner",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            "--use-service-account-credentials",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ]
    if name == "kube-scheduler":
        kcfg = s / "scheduler.kubeconfig"
        return [
            f"--kubeconfig={kcfg}",
            f"--authentication-kubeconfig={kcfg}",
            f"--authorization-kubeconfig={kcfg}",
            f"--authorization-always-allow-paths={HEALTH_PATHS}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p.scheduler}",
            f"--cert-dir={s / 'scheduler-certs'}",
            "--leader-elect=false",
        ]
    if name == "kwok":
        return [
            f"--kubeconfig={s / 'kwok.kubeconfig'}",
            f"--config={s / 'kwok.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=" + "=".join(KWOK_ANNOTATION),
            "--manage-nodes-with-label-selector=",
            f"--server-address=127.0.0.1:{p.kwok}",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
            "--node-lease-duration-seconds=40",
        ]
    raise ValueError(name)


def node_objects() -> Iterator[dict[str, Any]]:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    for name, zone in NODES:
        yield {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": zone,
                    "topology.kubernetes.io/region": "local",
                },
            },
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "fake",
                    "kubeProxyVersion": "fake",
                },
            },
        }


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/host-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        # Accepted by the API so resize requests can be tested; the hostPath plugin itself
        # cannot grow a volume, so a resize never completes.
        "allowVolumeExpansion": True,
    }


# --------------------------------------------------------------------------- binaries


def resolve_bin_dir(*, build: bool) -> Path:
    """$PULSEBASE_BIN_DIR, else the folder hack/build-tools.sh uses (building it if asked)."""
    env = os.environ.get(BIN_DIR_ENV)
    if env:
        bin_dir = Path(env)
    else:
        # The script prints the folder on stdout; its build progress goes to our stderr.
        cmd = ["bash", str(BUILD_TOOLS)] + ([] if build else ["--print"])
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        bin_dir = Path(out.stdout.strip().splitlines()[-1])
    missing = [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        raise ClusterError(
            f"missing {', '.join(missing)} in {bin_dir}: run `make tools` "
            f"(hack/build-tools.sh) or set {BIN_DIR_ENV}"
        )
    return bin_dir


# --------------------------------------------------------------------------- CLI


def _cmd_up(args: argparse.Namespace) -> int:
    cluster = LocalCluster(args.state_dir, resolve_bin_dir(build=True))
    cluster.start(detach=True, timeout=args.timeout)
    print(f"ready in {cluster.ready_seconds}s; logs in {cluster.logs}", file=sys.stderr)
    print(cluster.kubeconfig)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    try:
        cluster = LocalCluster.attach(args.state_dir)
    except ClusterError:
        cluster = LocalCluster(args.state_dir)  # stop whatever the pids file names
    cluster.stop()
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    cluster = LocalCluster.attach(args.state_dir)
    pids = cluster.running_pids()
    for name in COMPONENTS:
        print(f"{name:24} {'running pid ' + str(pids[name]) if name in pids else 'stopped'}")
    ready = cluster.is_ready()
    print(f"{'apiserver':24} {cluster.server} {'ready' if ready else 'not ready'}")
    print(f"{'kubeconfig':24} {cluster.kubeconfig}")
    return 0 if ready and len(pids) == len(COMPONENTS) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.localcluster",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("up", _cmd_up), ("down", _cmd_down), ("status", _cmd_status)):
        cmd = sub.add_parser(name)
        cmd.add_argument("--state-dir", required=True, type=Path)
        cmd.set_defaults(func=func)
    sub.choices["up"].add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for each step (default 300)"
    )
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
