"""How kube.exec reads the stream: output, exit codes, deadlines, a lost stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from pulsebase_operator.kube import exec as kube_exec

SUCCESS = json.dumps({"metadata": {}, "status": "Success"}).encode()


def exit_status(code: int) -> bytes:
    return json.dumps(
        {
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    ).encode()


class FakeStream:
    """Delivers one frame per update(), as (channel, bytes), and closes with the last
    one, the way the client's WSClient does; reading a channel with nothing buffered
    receives the next frame first, as its read_channel does."""

    def __init__(self, frames: list[tuple[int, bytes]], *, closes: bool = True) -> None:
        self._frames: Iterator[tuple[int, bytes]] = iter(frames)
        self._left = len(frames)
        self._channels: dict[int, bytes] = {}
        self._open = True
        self._closes = closes
        self.closed = False

    def update(self, timeout: float = 0) -> None:
        if not self._open:
            return
        try:
            channel, data = next(self._frames)
        except StopIteration:
            self._open = not self._closes
            return
        self._left -= 1
        self._channels[channel] = self._channels.get(channel, b"") + data
        if self._left == 0 and self._closes:
            self._open = False

    def read_channel(self, channel: int, timeout: float = 0) -> bytes:
        if channel not in self._channels:
            self.update(timeout)
        return self._channels.pop(channel, b"")

    def is_open(self) -> bool:
        return self._open

    def close(self) -> None:
        self.closed = True


def pod_exec(stream: FakeStream, calls: list[dict[str, Any]] | None = None) -> kube_exec.PodExec:
    def connect(_: Any, pod: str, namespace: str, **kwargs: Any) -> FakeStream:
        if calls is not None:
            calls.append({"pod": pod, "namespace": namespace, **kwargs})
        return stream

    return kube_exec.PodExec(
        None,  # type: ignore[arg-type]
        namespace="prod",
        pod="shop-postgres-0",
        container="postgres",
        connect=connect,
    )


def test_text_output_and_a_zero_exit_code() -> None:
    calls: list[dict[str, Any]] = []
    stream = FakeStream([(1, b"[{"), (2, b"WARN: slow\n"), (1, b'"name": "x"}]'), (3, SUCCESS)])
    done = pod_exec(stream, calls).run(["pgbackrest", "info"], step="info", timeout=10)
    assert (done.returncode, done.out, done.err) == (0, '[{"name": "x"}]', "WARN: slow\n")
    assert stream.closed
    (call,) = calls
    assert call["command"] == ["pgbackrest", "info"]
    assert (call["pod"], call["namespace"], call["container"]) == (
        "shop-postgres-0",
        "prod",
        "postgres",
    )
    assert call["stdin"] is False and call["tty"] is False and call["binary"] is True


def test_output_that_arrives_with_the_close_is_not_lost() -> None:
    # The status is read first, then the last chunk of stdout comes with the close.
    stream = FakeStream([(3, SUCCESS), (1, b"tail")])
    done = pod_exec(stream).run(["pgbackrest", "info"], step="info", timeout=10)
    assert (done.returncode, done.out) == (0, "tail")


def test_a_non_zero_exit_code_is_returned_not_raised() -> None:
    stream = FakeStream([(2, b"ERROR: [055]: missing\n"), (3, exit_status(55))])
    done = pod_exec(stream).run(["pgbackrest", "backup"], step="full backup", timeout=10)
    assert done.returncode == 55
    assert "ERROR: [055]" in done.err


def test_binary_output_is_handed_on_chunk_by_chunk_unchanged() -> None:
    chunks = [b"PGDMP\x00\xff", b"\x01\x02"]
    received: list[bytes] = []
    stream = FakeStream([(1, chunks[0]), (1, chunks[1]), (3, SUCCESS)])
    code, err = pod_exec(stream).stream(
        ["pg_dump"], step="dump", timeout=10, on_stdout=received.append
    )
    assert (code, err) == (0, "")
    assert b"".join(received) == b"".join(chunks)


def test_a_command_that_cannot_start_raises_with_the_api_servers_message() -> None:
    status = json.dumps(
        {"status": "Failure", "message": 'exec: "pgbackrest": not found', "reason": "InternalError"}
    ).encode()
    with pytest.raises(kube_exec.ExecError) as raised:
        pod_exec(FakeStream([(3, status)])).run(["pgbackrest"], step="info", timeout=10)
    assert raised.value.step == "info"
    assert "not found" in raised.value.reason
    assert "prod/shop-postgres-0" in raised.value.reason


def test_a_stream_lost_without_a_status_is_an_error() -> None:
    with pytest.raises(kube_exec.ExecError, match="ended without an exit status"):
        pod_exec(FakeStream([(1, b"partial")])).run(["pg_dump"], step="dump", timeout=10)


def test_a_missed_deadline_closes_the_stream_and_says_so() -> None:
    stream = FakeStream([], closes=False)
    with pytest.raises(kube_exec.ExecError) as raised:
        pod_exec(stream).run(["pgbackrest", "backup"], step="full backup", timeout=0.05)
    assert raised.value.timed_out
    assert "no answer within 0.05 s" in raised.value.reason
    assert stream.closed
