"""pgBackRest, run as a program: create the stanza, back up, read the catalog, expire
and restore.

Every call runs one pgBackRest command in its own process group with a deadline; past
it the whole group (pgBackRest forks workers) is stopped. A failure raises BackupError
naming the step and carrying pgBackRest's own ERROR line, with every secret the caller
passed, and anything shaped like a key, masked. Repository credentials travel in the
environment (PGBACKREST_REPO1_S3_KEY and friends) or a configuration file, never in the
arguments, where any user on the host could read them.

Written against pgBackRest 2.45 (Debian bookworm). What that version offers and does not:

- `expire --set=LABEL` removes one backup set and every set that depends on it. It
  refuses the newest backup, which the retention policy never proposes anyway. A set
  removed by label does not take its WAL with it: WAL is expired by pgBackRest's archive
  retention, which counts full backups (`--repo1-retention-archive-type=full
  --repo1-retention-archive=N`: unbroken WAL from the Nth newest full backup on, and for
  older sets only what makes each consistent). `expire_archive` runs that with the N
  the retention policy derives, on the command line, so the expiry pgBackRest runs
  after every backup keeps all WAL.
- `restore --type=time` picks the newest backup that finished before the target by
  itself (2.45 does), replays WAL to the target and, with `--target-action=promote`,
  opens the copy read-write.
- 2.45 predates PostgreSQL 16, whose support came in a later 2.4x release: physical
  backups of a PostgreSQL 16 server need that newer pgBackRest.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pulsebase_operator.backups import process
from pulsebase_operator.backups.errors import BackupError
from pulsebase_operator.policy import retention

BackupKind = Literal["full", "incr", "diff"]
KINDS: tuple[str, ...] = ("full", "incr", "diff")

# Deadlines in seconds. A backup or a restore of a large database takes hours; the
# catalog and the stanza are small and answer within a minute unless the store hangs.
STANZA_TIMEOUT = 300.0
BACKUP_TIMEOUT = 6 * 3600.0
INFO_TIMEOUT = 120.0
EXPIRE_TIMEOUT = 600.0
RESTORE_TIMEOUT = 6 * 3600.0
# After SIGTERM, how long pgBackRest has to release its locks before SIGKILL.

MASK = "***"
MAX_REASON = 500
# Variables and options whose values are secrets whatever the caller says.
_SECRET_NAME = re.compile(r"(?i)(key|secret|pass|token)")
_SECRET_OPTION = re.compile(
    r"(?i)\b((?:repo\d+-)?(?:s3-key-secret|s3-key|s3-token|azure-key|gcs-key|cipher-pass)"
    r"\s*[=:]\s*)\S+"
)
# After pgBackRest's time stamp and process number: "ERROR: [055]: unable to ...".
_ERROR_LINE = re.compile(r"\bERROR: \[\d+\]:.*$", re.MULTILINE)


@dataclass(frozen=True)
class Stanza:
    """One PostgreSQL cluster's place in a pgBackRest repository, and how to reach it.

    `config` is a pgbackrest.conf to read (None: pgBackRest's default, or PGBACKREST_*
    variables alone); `env` adds variables, credentials among them; `run_as` names the
    user to run as, which must own the data directory (None: ourselves); `runner`
    runs the commands somewhere else than here, such as in the primary's pod (None:
    a local process; `run_as` then applies).
    """

    name: str
    config: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    run_as: str | None = None
    binary: str = "pgbackrest"
    runner: process.Runner | None = field(default=None, compare=False, repr=False)


def stanza_create(stanza: Stanza, *, timeout: float = STANZA_TIMEOUT) -> None:
    """Create the stanza in the repository; a second call on a healthy stanza is a no-op."""
    _run(stanza, command="stanza-create", step="stanza-create", timeout=timeout)


def backup(stanza: Stanza, *, kind: BackupKind, timeout: float = BACKUP_TIMEOUT) -> str:
    """Take a backup and return its label.

    An incremental or differential backup with no full one to build on becomes a full
    backup (pgBackRest's own rule); the label says which it became.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    before = {entry["label"] for entry in info(stanza).get("backup") or []}
    _run(
        stanza,
        command="backup",
        options=[f"--type={kind}"],
        step=f"{kind} backup",
        timeout=timeout,
    )
    after = [entry["label"] for entry in info(stanza).get("backup") or []]
    new = [label for label in after if label not in before]
    if not new:
        raise BackupError(step=f"{kind} backup", reason="no new backup in the catalog")
    return str(new[-1])


def info(stanza: Stanza, *, timeout: float = INFO_TIMEOUT) -> dict[str, Any]:
    """This stanza's entry of `pgbackrest info --output=json`: status, backups, archive."""
    out = _run(stanza, command="info", options=["--output=json"], step="info", timeout=timeout)
    try:
        stanzas = json.loads(out)
    except json.JSONDecodeError as error:
        raise BackupError(step="info", reason=f"output is not JSON ({error.msg})") from None
    for entry in stanzas if isinstance(stanzas, list) else []:
        if isinstance(entry, dict) and entry.get("name") == stanza.name:
            return entry
    raise BackupError(step="info", reason=f"stanza {stanza.name!r} is not in the catalog")


def expire(stanza: Stanza, *, labels: Iterable[str], timeout: float = EXPIRE_TIMEOUT) -> list[str]:
    """Expire these backup sets, one `expire --set` each; the labels expired, in order.

    Newest first, so that a set is gone before the set it depends on is expired (which
    would take it along and leave its own call nothing to do).
    """
    ordered = sorted(set(labels), key=_label_order, reverse=True)
    present = {entry["label"] for entry in info(stanza).get("backup") or []}
    done = []
    for label in ordered:
        if label not in present:
            continue
        _run(
            stanza,
            command="expire",
            options=[f"--set={label}"],
            step=f"expire {label}",
            timeout=timeout,
        )
        done.append(label)
    return done


def plan_retention(
    stanza: Stanza, *, policy: retention.Policy, now: datetime.datetime
) -> list[retention.Decision]:
    """The retention policy's decision for each backup in the stanza's catalog; expires
    nothing."""
    catalog = info(stanza)
    try:
        found = retention.backups_from_info([catalog])
    except ValueError as error:
        raise BackupError(step="info", reason=str(error)) from None
    return retention.plan(found, policy=policy, now=now)


def expire_archive(
    stanza: Stanza,
    *,
    policy: retention.Policy,
    now: datetime.datetime,
    timeout: float = EXPIRE_TIMEOUT,
) -> int:
    """Expire the WAL no kept backup and no moment of the recovery window needs; the
    number of newest full backups whose WAL stays unbroken (0: none, nothing run).

    The count is read from the catalog just before the command runs. A full backup
    that finished in between (two full backups at once) would shift it by one, and
    the oldest day of the window would keep only its backup's own WAL.
    """
    try:
        found = retention.backups_from_info([info(stanza)])
    except ValueError as error:
        raise BackupError(step="info", reason=str(error)) from None
    fulls = retention.continuous_archive_fulls(found, policy=policy, now=now)
    if fulls:
        _run(
            stanza,
            command="expire",
            options=["--repo1-retention-archive-type=full", f"--repo1-retention-archive={fulls}"],
            step="expire archive",
            timeout=timeout,
        )
    return fulls


def apply_retention(
    stanza: Stanza,
    *,
    policy: retention.Policy,
    now: datetime.datetime,
    timeout: float = EXPIRE_TIMEOUT,
) -> list[retention.Decision]:
    """Plan retention on the stanza's catalog, expire what the plan says to expire, then
    the WAL nothing kept needs."""
    decisions = plan_retention(stanza, policy=policy, now=now)
    expire(
        stanza,
        labels=[d.label for d in decisions if d.action == "expire"],
        timeout=timeout,
    )
    expire_archive(stanza, policy=policy, now=now, timeout=timeout)
    return decisions


def restore(
    stanza: Stanza,
    *,
    data_dir: str | Path,
    target_time: datetime.datetime | None = None,
    archive: bool = False,
    timeout: float = RESTORE_TIMEOUT,
) -> None:
    """Restore into `data_dir`, a new or empty directory; never into the source's.

    With `target_time` (timezone-aware), WAL replays up to that moment and the copy is
    promoted there; without it, to the end of the archive. The copy has archive_mode=off
    unless `archive` is set: a restored copy that pushed WAL into the same stanza would
    interleave a new timeline with the source's.
    """
    folder = Path(data_dir)
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(
            step="restore", reason=f"{folder} is not empty; restore only into a new directory"
        )
    options = [f"--pg1-path={folder}"]
    if target_time is not None:
        if target_time.tzinfo is None:
            raise ValueError("target_time must carry a time zone")
        options += [
            "--type=time",
            f"--target={_postgres_time(target_time)}",
            "--target-action=promote",
        ]
    if not archive:
        options.append("--archive-mode=off")
    if not folder.exists():
        folder.mkdir(mode=0o700)
        if stanza.run_as:
            os.chown(folder, _uid(stanza.run_as), _gid(stanza.run_as))
    _run(stanza, command="restore", options=options, step="restore", timeout=timeout)


# --- running pgBackRest -------------------------------------------------------------


def _run(
    stanza: Stanza,
    *,
    command: str,
    step: str,
    timeout: float,
    options: Sequence[str] = (),
) -> str:
    args = [stanza.binary, f"--stanza={stanza.name}"]
    if stanza.config:
        args.append(f"--config={stanza.config}")
    args += [*options, command]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        **{k: v for k, v in os.environ.items() if k.startswith("PGBACKREST_")},
        **stanza.env,
    }
    done: process.Result
    if stanza.runner is not None:
        done = stanza.runner(args, step=step, env=env, timeout=timeout)
    else:
        done = process.run(
            args,
            step=step,
            env=env,
            timeout=timeout,
            user=stanza.run_as,
            group=_gid(stanza.run_as) if stanza.run_as else None,
        )
    if done.returncode != 0:
        raise BackupError(
            step=step,
            reason=_reason(
                done.out, done.err, returncode=done.returncode, secrets=_secrets(stanza)
            ),
        )
    return done.out


def _reason(out: str, err: str, *, returncode: int, secrets: Iterable[str]) -> str:
    """pgBackRest's ERROR lines, else the last line it wrote, else its exit code."""
    text = f"{err}\n{out}"
    errors = [line.strip() for line in _ERROR_LINE.findall(text)]
    if errors:
        reason = " ".join(errors)
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"pgbackrest exited with {returncode}"
    return scrub(reason, secrets=secrets)


def scrub(text: str, *, secrets: Iterable[str] = ()) -> str:
    """Mask the given secrets and anything shaped like a repository key; one line."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _SECRET_OPTION.sub(rf"\1{MASK}", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def _secrets(stanza: Stanza) -> list[str]:
    return [value for name, value in stanza.env.items() if _SECRET_NAME.search(name)]


def _postgres_time(moment: datetime.datetime) -> str:
    # recovery_target_time reads this form; UTC with an explicit offset leaves the
    # server's own time zone out of it.
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _label_order(label: str) -> tuple[str, str]:
    # A label is FULL or FULL_DEPENDENT; each part sorts by time as text.
    full, _, dependent = label.partition("_")
    return full, dependent


def _uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def _gid(user: str) -> int:
    return pwd.getpwnam(user).pw_gid
