"""WAL archiving through pgBackRest: the PostgreSQL settings and the restore command.

Its own module because both the Patroni configuration (render.postgres) and the backup
objects (render.backups, which reads Patroni's paths) need it; neither imports the other
through it.
"""

from __future__ import annotations

from pulsebase_operator.api import models
from pulsebase_operator.api.quantity import parse_duration

STANZA = "pulsebase"
CONFIG_DIR = "/etc/pgbackrest"
CONFIG_FILE = f"{CONFIG_DIR}/pgbackrest.conf"

# A partly filled WAL segment is archived after a third of the RPO: a segment that
# fails to push once can be retried twice more before the RPO is spent. Never below a
# minute, because every switch archives a whole 16 MB segment however little it holds.
ARCHIVE_TIMEOUT_SHARE = 3
ARCHIVE_TIMEOUT_MIN = 60


def enabled(pb: models.PulseBase) -> bool:
    """Whether the managed PostgreSQL archives WAL: backups on, database managed."""
    return pb.spec.backup.enabled and pb.spec.postgres.mode is models.Mode.MANAGED


def archive_timeout(pb: models.PulseBase) -> int:
    """Seconds after which PostgreSQL archives a partly filled WAL segment."""
    rpo = int(parse_duration(pb.spec.backup.rpo))
    return max(ARCHIVE_TIMEOUT_MIN, rpo // ARCHIVE_TIMEOUT_SHARE)


def archive_parameters(pb: models.PulseBase) -> dict[str, str]:
    """The postgresql.conf settings that turn WAL archiving on, for Patroni's
    `postgresql.parameters`; archive_mode off alone when backups are off."""
    if not enabled(pb):
        return {"archive_mode": "off"}
    return {
        "archive_mode": "on",
        "archive_command": f"pgbackrest --config={CONFIG_FILE} --stanza={STANZA} archive-push %p",
        "archive_timeout": f"{archive_timeout(pb)}s",
        "wal_level": "replica",
    }


def restore_command() -> str:
    """For Patroni's `postgresql.recovery_conf`: replicas fetch WAL they lack from the
    archive, and a restored cluster replays it."""
    return f"pgbackrest --config={CONFIG_FILE} --stanza={STANZA} archive-get %f %p"
