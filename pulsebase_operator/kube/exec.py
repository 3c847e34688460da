"""Running a command in a container through the Kubernetes exec API, with a deadline.

What `kubectl exec` does, from Python: the command's stdout and stderr come back over
one websocket, and its exit code on the status channel once it ends. Text output is
collected (pgBackRest); binary output is handed on chunk by chunk (pg_dump's custom
format, never held whole in memory).

Limit: a missed deadline closes the stream, and the API server stops the command only
if the container runtime ends it when its streams close; a program that ignores that
keeps running in the pod. The jobs' activeDeadlineSeconds bounds the wait, not the
program; pgBackRest's own lock keeps a second backup from running beside it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.stream import stream as connect_stream

STDOUT, STDERR, STATUS = 1, 2, 3
# How long one wait for output lasts before the deadline is looked at again.
POLL_SECONDS = 1.0


class ExecError(Exception):
    """The command could not be run in the pod, or missed its deadline."""

    def __init__(self, step: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(f"{step} failed: {reason}")
        self.step = step
        self.reason = reason
        self.timed_out = timed_out


@dataclass(frozen=True)
class Finished:
    returncode: int
    out: str
    err: str


class PodExec:
    """Runs commands in one container of one pod."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        namespace: str,
        pod: str,
        container: str,
        connect: Callable[..., Any] = connect_stream,
    ) -> None:
        self._core = k8s.CoreV1Api(api_client)
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self._connect = connect

    def run(self, args: Sequence[str], *, step: str, timeout: float) -> Finished:
        """Run to the end; stdout and stderr as text."""
        out: list[bytes] = []
        err: list[bytes] = []
        code = self._exec(args, step=step, timeout=timeout, on_stdout=out.append, errors=err)
        return Finished(
            returncode=code,
            out=b"".join(out).decode("utf-8", "replace"),
            err=b"".join(err).decode("utf-8", "replace"),
        )

    def stream(
        self,
        args: Sequence[str],
        *,
        step: str,
        timeout: float,
        on_stdout: Callable[[bytes], object],
    ) -> tuple[int, str]:
        """Run to the end, handing stdout on as it comes; the exit code and stderr."""
        err: list[bytes] = []
        code = self._exec(args, step=step, timeout=timeout, on_stdout=on_stdout, errors=err)
        return code, b"".join(err).decode("utf-8", "replace")

    def _exec(
        self,
        args: Sequence[str],
        *,
        step: str,
        timeout: float,
        on_stdout: Callable[[bytes], object],
        errors: list[bytes],
    ) -> int:
        where = f"{self.namespace}/{self.pod}"
        try:
            response = self._connect(
                self._core.connect_get_namespaced_pod_exec,
                self.pod,
                self.namespace,
                command=list(args),
                container=self.container,
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                binary=True,
                _preload_content=False,
            )
        except (k8s.ApiException, OSError) as error:
            reason = getattr(error, "reason", None) or str(error)
            raise ExecError(step, f"cannot exec in pod {where}: {reason}") from None
        deadline = time.monotonic() + timeout
        status: list[bytes] = []

        def drain() -> None:
            # Each read may itself receive more frames, the close among them.
            for channel, sink in ((STDOUT, on_stdout), (STDERR, errors.append)):
                chunk = response.read_channel(channel, timeout=0)
                if chunk:
                    sink(_bytes(chunk))
            chunk = response.read_channel(STATUS, timeout=0)
            if chunk:
                status.append(_bytes(chunk))

        try:
            while True:
                drain()
                if not response.is_open():
                    # What arrived with the close (the last chunk, the status) is still
                    # buffered: take it before leaving.
                    drain()
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ExecError(
                        step, f"no answer within {timeout:g} s in pod {where}", timed_out=True
                    )
                response.update(timeout=min(POLL_SECONDS, left))
        finally:
            response.close()
        return exit_code(b"".join(status), step=step, where=where)


def exit_code(status: bytes, *, step: str, where: str) -> int:
    """The exit code in the exec status channel's message (a metav1.Status)."""
    if not status:
        raise ExecError(step, f"the exec stream from pod {where} ended without an exit status")
    try:
        message = json.loads(status)
    except ValueError:
        raise ExecError(step, f"unreadable exec status from pod {where}") from None
    if message.get("status") == "Success":
        return 0
    for cause in (message.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                break
    # Not an exit code: the command did not start (not found, container not running).
    raise ExecError(step, f"in pod {where}: {message.get('message') or 'exec failed'}")


def _bytes(chunk: Any) -> bytes:
    return chunk if isinstance(chunk, bytes) else str(chunk).encode()
