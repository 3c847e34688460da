"""HTTP endpoints (the API): one GET, healthy on any 2xx.

Standard library only. The latency runs until the status line and headers have arrived;
the body is not read. Redirects are followed, as a browser would. Proxy settings in the
environment are ignored: the endpoints probed are the stack's own Services, and a proxy
meant for the operator's outbound traffic would measure the proxy instead.

`timeout` bounds each socket operation. A server that trickles its headers a byte at a
time keeps one probe running past it; `run` stops waiting for such a probe.
"""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pulsebase_operator.probes.reading import (
    HEALTHY,
    TIMEOUT,
    UNREACHABLE,
    Reading,
    duration,
    failed,
    now,
    seconds,
)
from pulsebase_operator.probes.redaction import scrub, sentence
from pulsebase_operator.probes.targets import HttpTarget

COMPONENT = "api"
USER_AGENT = "pulsebase-operator-probe"

SERVER_ERROR = "ServerError"
UNEXPECTED_STATUS = "UnexpectedStatus"
INVALID_URL = "InvalidUrl"
TLS_FAILED = "TlsFailed"

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def blank_values(target: HttpTarget | None = None) -> dict[str, Any]:
    return {"latencySeconds": None, "statusCode": None}


def probe(target: HttpTarget, *, timeout: float, previous: Reading | None = None) -> Reading:
    measured_at = now()
    values = blank_values(target)
    url = _shown(target.url)

    def unhealthy(reason: str, message: str) -> Reading:
        return failed(
            COMPONENT,
            reason=reason,
            message=sentence(scrub(message)),
            measured_at=measured_at,
            values=values,
            previous=previous,
        )

    if urllib.parse.urlsplit(target.url).scheme not in ("http", "https"):
        return unhealthy(INVALID_URL, f"{url} is not an http or https URL")

    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        target.url, headers={"User-Agent": USER_AGENT}, method="GET"
    )
    started = time.monotonic()
    try:
        with _opener.open(request, timeout=timeout) as response:
            values["latencySeconds"] = seconds(time.monotonic() - started)
            status = int(response.status)
    except urllib.error.HTTPError as error:
        # Any status outside 2xx (and not a redirect) arrives as an exception.
        values["latencySeconds"] = seconds(time.monotonic() - started)
        status = int(error.code)
        error.close()
    except TimeoutError:
        return unhealthy(TIMEOUT, f"{url} did not answer within {timeout:g} s")
    except urllib.error.URLError as error:
        cause = error.reason
        if isinstance(cause, TimeoutError):
            return unhealthy(TIMEOUT, f"{url} did not answer within {timeout:g} s")
        if isinstance(cause, ssl.SSLError):
            return unhealthy(TLS_FAILED, f"TLS with {url} failed: {cause}")
        return unhealthy(UNREACHABLE, f"Could not reach {url}: {cause}")
    except (OSError, ValueError, http.client.HTTPException) as error:
        # Connections closed mid-response, malformed status lines, bad URLs.
        return unhealthy(UNREACHABLE, f"Could not get a response from {url}: {error}")

    values["statusCode"] = status
    took = duration(values["latencySeconds"])
    if 200 <= status < 300:
        return Reading(
            component=COMPONENT,
            healthy=True,
            reason=HEALTHY,
            message=f"{url} answered {status} in {took}.",
            measured_at=measured_at,
            values=values,
        )
    reason = SERVER_ERROR if status >= 500 else UNEXPECTED_STATUS
    return unhealthy(reason, f"{url} answered {status} in {took}")


def _shown(url: str) -> str:
    """The URL for messages: no user information, no query string (it may hold a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
