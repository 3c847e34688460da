"""Keep secrets and personal data out of every log line.

A structlog processor that runs last before rendering, over every field of every event,
ours and kopf's alike (kopf's lines pass through the same pipeline). It drops the values
of fields whose names say they hold a secret, and scrubs secrets from free text: the
password in a connection string or URL, bearer tokens, AWS access keys, private keys,
and e-mail addresses. Error messages from the API server can quote a whole object, so
free text is where most of this is found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

REDACTED = "[redacted]"

# Field names whose values are secret whatever they contain.
_SECRET_NAME = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|private[-_]?key|credential|auth(orization)?"
    r"|access[-_]?key|session[-_]?key|cookie)",
    re.IGNORECASE,
)
_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:[redacted]@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(@)"), rf"\1{REDACTED}\2"),
    # password=..., password: ..., "password": "..." in libpq strings, YAML and JSON
    (
        re.compile(
            r"""(?i)(["']?\b(?:password|passwd|pwd|secret|token|secret[-_]?access[-_]?key)"""
            r"""["']?\s*[:=]\s*["']?)[^\s"',;}&]+"""
        ),
        rf"\1{REDACTED}",
    ),
    # {name: SOME_SECRET_KEY, value: ...}: environment variables quoted in an error
    (
        re.compile(
            r"""(?i)(["']?name["']?\s*[:=]\s*["']?[a-z0-9_.-]*"""
            r"""(?:pass|secret|token|key|credential)[a-z0-9_.-]*["']?\s*,\s*"""
            r"""["']?value["']?\s*[:=]\s*["']?)[^\s"',}]+"""
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), REDACTED),
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        REDACTED,
    ),
    (re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), "[email]"),
)


def scrub_text(text: str) -> str:
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any, name: str = "") -> Any:
    """`value` with secrets removed; `name` is the field it was found under."""
    if name and _SECRET_NAME.search(name) and not isinstance(value, Mapping | list | tuple):
        return REDACTED if value not in (None, "") else value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        # An environment variable: the secret's name is the sibling of its value.
        secret_value = _SECRET_NAME.search(str(value.get("name", ""))) and "value" in value
        return {
            k: REDACTED if secret_value and k == "value" else scrub(v, str(k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v, name) for v in value]
    return value


# Fields structlog and the pipeline add themselves; never secret.
_SAFE_FIELDS = frozenset({"timestamp", "level", "logger", "correlation_id"})


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """The structlog processor."""
    return {k: v if k in _SAFE_FIELDS else scrub(v, k) for k, v in event.items()}
