"""Structured JSON logs: one event per line, kopf's own lines through the same pipeline,
secrets and e-mail addresses removed from every field (see `redaction`).

Each reconcile pass binds namespace, name and a correlation id once (contextvars), so
every line of the pass, ours or kopf's, carries them.
"""

from __future__ import annotations

import logging
import sys

import structlog

from pulsebase_operator.telemetry import redaction

_SHARED: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(level: str = "INFO") -> None:
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            # Last before rendering, so tracebacks and kopf's own lines are scrubbed too.
            redaction.redact,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The HTTP client logs every request at debug; keep that out unless asked for.
    logging.getLogger("urllib3").setLevel(max(root.level, logging.INFO))
    # kopf reports every handler call at info; ours say what each pass decided instead.
    if root.level > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
