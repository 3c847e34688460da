"""Backups: the only code that runs pgBackRest, and the logical dump and index check of
the tables that hold embeddings (vectors).

I/O, beside the probes: it runs programs and queries against PostgreSQL and the backups
bucket and reports what happened. What to keep is the retention policy's decision (policy), what
to run where is the renderer's (render); this package only carries them out.
"""

from pulsebase_operator.backups.errors import BackupError
from pulsebase_operator.backups.pgbackrest import (
    BackupKind,
    Stanza,
    apply_retention,
    backup,
    expire,
    info,
    restore,
    stanza_create,
)
from pulsebase_operator.backups.vectors import (
    IndexCheck,
    check_vector_indexes,
    dump_vector_tables,
    vector_tables,
)

__all__ = [
    "BackupError",
    "BackupKind",
    "IndexCheck",
    "Stanza",
    "apply_retention",
    "backup",
    "check_vector_indexes",
    "dump_vector_tables",
    "expire",
    "info",
    "restore",
    "stanza_create",
    "vector_tables",
]
