"""Running a backup program with a deadline, in a process group of its own.

pgBackRest and pg_dump start helpers of their own (pgBackRest's workers, compression);
each runs in a new session, so a missed deadline stops the whole group, not just the
parent. A program that cannot start or misses its deadline raises `BackupError` with
the step; what a non-zero exit means is left to the caller, which knows the program's
error format.

`run` runs the program here. A `Runner` runs it somewhere else with the same contract,
such as inside the primary's pod through the Kubernetes exec API; the pgBackRest
wrapper takes either, so the commands it builds exist once.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pulsebase_operator.backups.errors import STOP_GRACE, BackupError


@dataclass(frozen=True)
class Finished:
    returncode: int
    out: str
    err: str


class Result(Protocol):
    @property
    def returncode(self) -> int: ...
    @property
    def out(self) -> str: ...
    @property
    def err(self) -> str: ...


class Runner(Protocol):
    """Runs `args` and returns how it ended; BackupError naming `step` when it cannot
    start or misses `timeout`. `env` is what the program needs beyond its own
    surroundings; a runner in a pod may leave it out (the container has its own)."""

    def __call__(
        self, args: Sequence[str], *, step: str, env: Mapping[str, str], timeout: float
    ) -> Result: ...


def run(
    args: Sequence[str],
    *,
    step: str,
    env: Mapping[str, str],
    timeout: float,
    user: str | None = None,
    group: int | None = None,
) -> Finished:
    try:
        process = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
            user=user,
            group=group,
            start_new_session=True,
            cwd="/",
        )
    except OSError as error:
        program = os.path.basename(args[0])
        raise BackupError(step=step, reason=f"cannot run {program}: {error.strerror}") from None
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        raise BackupError(
            step=step, reason=f"no answer within {timeout:g} s; stopped", timed_out=True
        ) from None
    return Finished(returncode=process.returncode, out=out, err=err)


def _stop_group(process: subprocess.Popen[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.communicate(timeout=STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue
