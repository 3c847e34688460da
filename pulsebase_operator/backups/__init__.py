"""Physical backups: the only code that runs pgBackRest.

I/O, beside the probes: it runs a program against PostgreSQL and the backups bucket and
reports what happened. What to keep is the retention policy's decision (policy), what
to run where is the renderer's (render); this package only carries them out.
"""

from pulsebase_operator.backups.pgbackrest import (
    BackupError,
    BackupKind,
    Stanza,
    apply_retention,
    backup,
    expire,
    info,
    restore,
    stanza_create,
)

__all__ = [
    "BackupError",
    "BackupKind",
    "Stanza",
    "apply_retention",
    "backup",
    "expire",
    "info",
    "restore",
    "stanza_create",
]
