"""values.schema.json refuses bad values at `helm template`/`helm install`, naming them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart import helm

BAD_VALUES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "no replicas": ({"replicas": 0}, ["/replicas", "minimum: got 0, want 1"]),
    "replicas as a string": ({"replicas": "2"}, ["/replicas", "want integer"]),
    "unknown log level": ({"logLevel": "LOUD"}, ["/logLevel", "'LOUD'"]),
    "unknown probe scope": ({"probes": "some"}, ["/probes", "'some'"]),
    "namespace not a DNS label": (
        {"watchNamespaces": ["Bad_NS"]},
        ["/watchNamespaces/0", "'Bad_NS'"],
    ),
    "namespaces not a list": ({"watchNamespaces": "a,b"}, ["/watchNamespaces", "want array"]),
    "digest without algorithm": ({"image": {"digest": "abc"}}, ["/image/digest", "'abc'"]),
    "unknown pull policy": ({"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy"]),
    "misspelt value": ({"replica": 2}, ["'replica' not allowed"]),
    "resources not a map": ({"resources": "small"}, ["/resources", "want object"]),
    # A selector label among the pod's labels would be written twice, and the pods
    # would no longer match their Deployment's selector.
    "pod label that is a selector label": (
        {"podLabels": {"app.kubernetes.io/name": "other"}},
        ["/podLabels/app.kubernetes.io~1name"],
    ),
    "pod label for the instance": (
        {"podLabels": {"app.kubernetes.io/instance": "other"}},
        ["/podLabels/app.kubernetes.io~1instance"],
    ),
}


@pytest.mark.parametrize(("values", "expected"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_fail_with_a_message_naming_them(
    values: dict[str, Any], expected: list[str]
) -> None:
    done = helm.template_result(values)
    assert done.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in done.stderr
    for part in expected:
        assert part in done.stderr, done.stderr


def test_good_values_pass() -> None:
    helm.template(
        {
            "replicas": 3,
            "logLevel": "WARNING",
            "watchNamespaces": ["team-a", "b2"],
            "image": {"tag": "0.1.0-rc.1", "digest": "sha256:" + "0" * 64},
            "resources": {"requests": {"cpu": 1, "memory": "1Gi"}},
        }
    )
