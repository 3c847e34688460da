"""The operator's own metrics on /metrics (prometheus-client).

The operator's own figures; per-PulseBase health series are in `health`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

PASS_SECONDS = Histogram(
    "pulsebase_operator_reconcile_duration_seconds",
    "Time one reconcile pass took, by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PASS_ERRORS = Counter(
    "pulsebase_operator_reconcile_errors_total",
    "Passes that failed, by kind: temporary (retried with backoff) or permanent.",
    ["kind"],
)
WRITES = Counter(
    "pulsebase_operator_api_writes_total",
    "Write requests the passes sent to the API server; flat while nothing changes.",
)

QUEUE_DEPTH = Gauge(
    "pulsebase_operator_queue_depth",
    "PulseBases woken by a change and waiting for their next pass.",
)
PROBE_SECONDS = Histogram(
    "pulsebase_operator_probe_duration_seconds",
    "Time one round of live probes of a PulseBase took.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Family names as a scrape shows them, for the dashboard test.
OPERATOR_SERIES = (
    "pulsebase_operator_reconcile_duration_seconds",
    "pulsebase_operator_reconcile_errors_total",
    "pulsebase_operator_api_writes_total",
    "pulsebase_operator_queue_depth",
    "pulsebase_operator_probe_duration_seconds",
)


def serve(address: str) -> None:
    """Serve /metrics at HOST:PORT in a background thread."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0")  # noqa: S104 - a pod listens on all
