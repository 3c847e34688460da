"""What every backup step raises when it fails, and how long a stopped program gets."""

from __future__ import annotations

# How long a program gets to end after SIGTERM (then SIGKILL) once its deadline passed.
STOP_GRACE = 10.0


class BackupError(RuntimeError):
    """A backup step failed; `step` says which, `reason` says why (secrets masked)."""

    def __init__(self, *, step: str, reason: str, timed_out: bool = False) -> None:
        super().__init__(f"{step} failed: {reason}")
        self.step = step
        self.reason = reason
        self.timed_out = timed_out
