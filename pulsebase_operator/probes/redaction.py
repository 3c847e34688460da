"""Make library error text safe to show in status and events.

Client libraries put whatever they like in their errors; libpq and psycopg can quote the
connection string, passwords included. Every message a probe builds from library text
passes through `scrub`, which removes the secrets the probe knows, the password part of
URLs and of key=value connection strings, and whole connection strings and database URIs,
then folds the text onto one line of bounded length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"  # no letters, so it never rebuilds a secret made of them
CONNECTION_STRING = "[connection string]"
MAX_LENGTH = 300

_QUOTED_OR_WORD = r"(?:'(?:[^'\\]|\\.)*'?|[^\s']+)"
# Keywords of libpq connection strings; two or more in a row are a connection string.
_LIBPQ_KEYWORDS = (
    "host|hostaddr|port|dbname|user|password|passfile|sslmode|sslpassword|sslcert|sslkey"
    "|sslrootcert|connect_timeout|options|application_name|target_session_attrs|service"
    "|channel_binding|gssencmode|keepalives"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # postgres://... and postgresql://... URIs, whole
    (re.compile(r"(?i)\bpostgres(?:ql)?://\S+"), CONNECTION_STRING),
    # host=... port=... user=... password=...
    (
        re.compile(
            rf"(?:\b(?:{_LIBPQ_KEYWORDS})\s*=\s*{_QUOTED_OR_WORD}\s*){{2,}}",
            re.IGNORECASE,
        ),
        CONNECTION_STRING + " ",
    ),
    # scheme://user:password@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:]*:)[^\s/@]*@"), rf"\1{MASK}@"),
    # password=..., "password": "...", SecretAccessKey: ... in text, JSON and YAML
    (
        re.compile(
            r"""(?i)(\b(?:ssl)?(?:password|passwd|pwd)|secret[-_]?access[-_]?key|secret"""
            r"""|token|authorization)(["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"?|"""
            + _QUOTED_OR_WORD
            + r")"
        ),
        rf"\1\2{MASK}",
    ),
)
_WHITESPACE = re.compile(r"\s+")


# Shorter secrets are masked only where they stand as a word of their own. Otherwise a
# test password like "pw" would mask the middle of every word that contains it and make the
# message unreadable; inside another word it does not reveal itself anyway.
WHOLE_WORD_BELOW = 8


def _mask_known(text: str, known: list[str]) -> str:
    for secret in known:
        if len(secret) >= WHOLE_WORD_BELOW:
            text = text.replace(secret, MASK)
            continue
        head = r"(?<!\w)" if re.match(r"\w", secret[0]) else ""
        tail = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
        text = re.sub(head + re.escape(secret) + tail, MASK, text)
    return text


def scrub(text: str, *, secrets: Iterable[str | None] = ()) -> str:
    """`text` on one line, at most MAX_LENGTH characters, with no secret left in it."""
    # Longest first, so a secret that contains another is masked whole.
    known = sorted({s for s in secrets if s}, key=len, reverse=True)
    # Known secrets go first, before the patterns cut one in half, and again last, in
    # case folding whitespace or a pattern put the pieces of one back together.
    text = _mask_known(text, known)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = _mask_known(text, known)
    if len(text) > MAX_LENGTH:
        # A cut can leave the start of a word that equals a short secret; masking once more
        # may then add two characters, for which the cut leaves room.
        text = _mask_known(text[: MAX_LENGTH - 3].rstrip() + "…", known)
    return text


def sentence(text: str) -> str:
    """`text` ending with a full stop, for messages that end in library text."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?", "…")) else text + "."
