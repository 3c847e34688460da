"""A backup test bed on loopback: S3 over TLS, a PostgreSQL primary archiving its WAL
with pgBackRest, and the pgBackRest configuration that joins them.

pgBackRest's S3 driver speaks only TLS, and moto's own TLS mode drops the connections
pgBackRest keeps alive, so moto serves plain HTTP and Debian's nginx terminates TLS in
front of it. The certificate is made at the start of the run by a throwaway certificate
authority whose certificate pgBackRest trusts through `repo1-storage-ca-file`; nothing
turns verification off.

tests/conftest.py registers this module as a plugin:

    s3_tls_server     per run: moto behind nginx (.port, .ca_file, .client())
    backup_bed        per test: a fresh bucket, a primary with archive_mode=on and a
                      created stanza (BackupBed: .primary, .stanza, .bucket, .restored())

Every process is started and stopped by its pid (tests.integration.servers.Process) and
every folder is removed when its fixture ends. A fixture skips only when a program is
missing: pgbackrest and nginx come from hack/install-test-deps.sh.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import shutil
import signal
import ssl
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pulsebase_operator.backups import Stanza
from tests.integration.servers import (
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    MotoServer,
    Postgres,
    Process,
    ServerError,
    _owned_tempdir,
    _require,
    _started,
    moto_server_binary,
    postgres_bindir,
    start_postgres,
    wait_until,
)
from tests.support.localcluster import free_port

STANZA = "pulsebase"
REPO_PATH = "/pgbackrest"
_INSTALL = "Debian packages pgbackrest and nginx (hack/install-test-deps.sh installs them)"


def pgbackrest_binary() -> str | None:
    return shutil.which("pgbackrest")


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    # Debian keeps nginx in /usr/sbin, which is not on every PATH.
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


# --------------------------------------------------------------------------- certificates


def _write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate for IP 127.0.0.1, signed by it:
    (ca, certificate, key)."""
    now = datetime.datetime.now(tz=datetime.UTC)
    lifetime = datetime.timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pulsebase test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(
            # pgBackRest 2.45 compares the host with DNS names only, so the address is
            # there as both kinds of name.
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("127.0.0.1")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    # Other users (PostgreSQL's archive_command runs pgBackRest as postgres) read the CA.
    folder.chmod(0o755)
    ca_file.chmod(0o644)
    return ca_file, cert_file, key_file


# --------------------------------------------------------------------------- S3 over TLS


_NGINX_CONF = """\
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        # Backup files of any size, streamed through rather than spooled to disk.
        client_max_body_size 0;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"""


@dataclass
class TlsS3Server:
    """moto on plain HTTP with nginx terminating TLS in front of it."""

    root: Path
    moto: MotoServer
    port: int
    ca_file: Path
    nginx: Process

    @classmethod
    def start(cls) -> TlsS3Server:
        nginx = nginx_binary()
        if nginx is None:
            raise ServerError("no nginx")
        root = Path(tempfile.mkdtemp(prefix="pulsebase-s3tls-"))
        moto: MotoServer | None = None
        try:
            ca_file, cert_file, key_file = _write_certificates(root)
            moto = MotoServer.start(root=root)
            port = free_port()
            conf = root / "nginx.conf"
            conf.write_text(
                _NGINX_CONF.format(
                    root=root, port=port, cert=cert_file, key=key_file, upstream=moto.port
                )
            )
            process = Process(
                name=f"nginx-{port}",
                args=[nginx, "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf)],
                log=root / "nginx.log",
                stop_signal=signal.SIGQUIT,  # finish what is in flight, then exit
            ).start()
            server = cls(root=root, moto=moto, port=port, ca_file=ca_file, nginx=process)

            def ready() -> bool:
                process.check()
                context = ssl.create_default_context(cafile=str(ca_file))
                url = f"{server.endpoint}/moto-api/"
                with urllib.request.urlopen(url, timeout=2, context=context) as answer:  # noqa: S310
                    return int(answer.status) == 200

            wait_until(ready, f"nginx with TLS on port {port}")
        except BaseException:
            if moto is not None:
                moto.stop()
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self) -> Any:
        """boto3 straight to moto: the tests look at and break the bucket through it."""
        return self.moto.client()

    def stop(self) -> None:
        self.nginx.stop()
        self.moto.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- pgBackRest


def _pgbackrest_conf(
    *, root: Path, s3: TlsS3Server, bucket: str, data: Path, port: int, socket: Path
) -> str:
    # The keys sit in the file here because the bed is a test; the operator passes them
    # as environment variables from Secrets instead.
    return "\n".join(
        [
            "[global]",
            f"lock-path={root / 'lock'}",
            f"log-path={root / 'log'}",
            "log-level-file=off",
            "log-level-console=warn",
            "log-level-stderr=off",
            "start-fast=y",
            # Compression costs more than it saves on a test database of a few MB.
            "compress-type=none",
            "repo1-type=s3",
            f"repo1-path={REPO_PATH}",
            f"repo1-s3-bucket={bucket}",
            "repo1-s3-endpoint=127.0.0.1",
            f"repo1-storage-port={s3.port}",
            f"repo1-storage-ca-file={s3.ca_file}",
            "repo1-s3-uri-style=path",
            f"repo1-s3-region={S3_REGION}",
            f"repo1-s3-key={S3_ACCESS_KEY}",
            f"repo1-s3-key-secret={S3_SECRET_KEY}",
            # Sets are expired by the operator's calendar policy (expire --set), never
            # by pgBackRest's own count after each backup.
            "repo1-retention-full=9999999",
            "",
            f"[{STANZA}]",
            f"pg1-path={data}",
            f"pg1-port={port}",
            f"pg1-socket-path={socket}",
            "pg1-user=postgres",
            "",
        ]
    )


@dataclass
class BackupBed:
    root: Path
    primary: Postgres
    stanza: Stanza
    s3: TlsS3Server
    bucket: str

    def restored(self, name: str = "restored") -> Postgres:
        """A PostgreSQL, not started, whose data folder is new and empty: a restore target."""
        root = _owned_tempdir("pulsebase-pg-restored-", self.primary.user)
        return Postgres(
            name=name,
            bindir=self.primary.bindir,
            root=root,
            port=free_port(),
            user=self.primary.user,
        )

    def repo_keys(self) -> list[str]:
        """Every object in the repository's bucket."""
        client = self.s3.client()
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def remove(self) -> None:
        remove_archiving(self.primary, conf=self.root / "pgbackrest.conf")
        shutil.rmtree(self.root, ignore_errors=True)


def remove_archiving(server: Postgres, *, conf: Path) -> None:
    """Stop a server whose archiver may be inside archive-push, and remove it.

    PostgreSQL waits for a running archive_command before it exits, so it gets longer
    than usual; an archive-push that still runs after that (its parent gone) is stopped
    by pid, found by the configuration file it was started with.
    """
    if server.process is not None:
        server.process.stop(timeout=60)
    needle = f"--config={conf}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue
    server.remove()


def start_backup_bed(s3: TlsS3Server) -> BackupBed:
    """A fresh bucket, a primary that archives to it, and its stanza, created."""
    from pulsebase_operator import backups

    bucket = f"backups-{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=bucket)
    user = None if os.geteuid() != 0 else "postgres"
    root = _owned_tempdir("pulsebase-pgbackrest-", user)
    for folder in ("lock", "log", "socket"):
        (root / folder).mkdir()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(root / folder, entry.pw_uid, entry.pw_gid)
    conf = root / "pgbackrest.conf"
    primary: Postgres | None = None
    try:
        # The configuration names the data folder and port, known once start_postgres
        # returns; archive-push fails (and PostgreSQL retries it) until it is written.
        primary = start_postgres(
            name="archiving",
            settings=[
                f"unix_socket_directories={root / 'socket'}",
                "archive_mode=on",
                f"archive_command=pgbackrest --config={conf} --stanza={STANZA} archive-push %p",
                "wal_level=replica",
            ],
        )
        conf.write_text(
            _pgbackrest_conf(
                root=root,
                s3=s3,
                bucket=bucket,
                data=primary.data,
                port=primary.port,
                socket=root / "socket",
            )
        )
        conf.chmod(0o644)
        stanza = Stanza(name=STANZA, config=str(conf), run_as=user)
        backups.stanza_create(stanza)
        return BackupBed(root=root, primary=primary, stanza=stanza, s3=s3, bucket=bucket)
    except BaseException:
        if primary is not None:
            remove_archiving(primary, conf=conf)
        shutil.rmtree(root, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def s3_tls_server() -> Iterator[TlsS3Server]:
    _require(moto_server_binary(), "moto_server", install="pip install 'moto[server]'")
    _require(nginx_binary(), "nginx", install=_INSTALL)
    server = _started(TlsS3Server.start)
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def backup_bed(s3_tls_server: TlsS3Server) -> Iterator[BackupBed]:
    _require(postgres_bindir(), "the PostgreSQL server", install=_INSTALL)
    _require(pgbackrest_binary(), "pgbackrest", install=_INSTALL)
    bed = _started(lambda: start_backup_bed(s3_tls_server))
    try:
        yield bed
    finally:
        bed.remove()
