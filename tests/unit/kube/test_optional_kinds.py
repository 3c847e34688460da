"""Whether an optional kind is served: asked once, kept for a while, asked again later,
and never mistaken for "not served" when the question could not be answered; and which
failed requests say that the kind went away."""

from __future__ import annotations

import pytest

from pulsebase_operator.kube.client import Discovery, PermanentError, TemporaryError, kind_gone

MONITORING = "monitoring.coreos.com/v1"


class Server:
    """A discovery endpoint whose answer the test changes, counting the questions."""

    def __init__(self) -> None:
        self.resources: frozenset[str] | None = None
        self.failure: Exception | None = None
        self.asked = 0

    def fetch(self, api_version: str) -> frozenset[str] | None:
        assert api_version == MONITORING
        self.asked += 1
        if self.failure is not None:
            raise self.failure
        return self.resources


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def discovery(server: Server, clock: Clock) -> Discovery:
    return Discovery(server.fetch, ttl=180, clock=clock)


def test_a_group_that_is_not_there_is_not_served(discovery: Discovery) -> None:
    assert discovery.serves(MONITORING, "prometheusrules") is False


def test_only_the_listed_resources_are_served(server: Server, discovery: Discovery) -> None:
    server.resources = frozenset({"prometheusrules", "servicemonitors"})
    assert discovery.serves(MONITORING, "prometheusrules") is True
    assert discovery.serves(MONITORING, "podmonitors") is False
    assert server.asked == 1  # one question per group version, whatever the resource


def test_the_answer_is_kept_then_asked_again_after_the_ttl(
    server: Server, clock: Clock, discovery: Discovery
) -> None:
    assert discovery.serves(MONITORING, "prometheusrules") is False
    server.resources = frozenset({"prometheusrules"})  # prometheus-operator installed
    clock.now += 179
    assert discovery.serves(MONITORING, "prometheusrules") is False
    assert server.asked == 1
    clock.now += 1
    assert discovery.serves(MONITORING, "prometheusrules") is True
    assert server.asked == 2


def test_forget_makes_the_next_use_ask_again(server: Server, discovery: Discovery) -> None:
    server.resources = frozenset({"prometheusrules"})
    assert discovery.serves(MONITORING, "prometheusrules") is True
    server.resources = None  # the CRD was deleted; a request just got a 404
    discovery.forget(MONITORING)
    assert discovery.serves(MONITORING, "prometheusrules") is False
    assert server.asked == 2


def test_no_answer_at_all_is_temporary_never_not_served(
    server: Server, discovery: Discovery
) -> None:
    server.failure = PermanentError("discover", "forbidden", 403)
    with pytest.raises(TemporaryError) as raised:
        discovery.serves(MONITORING, "prometheusrules")
    assert raised.value.step == f"discover {MONITORING}"


def test_a_failed_question_keeps_the_last_answer_and_asks_again_next_time(
    server: Server, clock: Clock, discovery: Discovery
) -> None:
    server.resources = frozenset({"prometheusrules"})
    assert discovery.serves(MONITORING, "prometheusrules") is True
    clock.now += 200
    server.failure = TemporaryError("discover", "connection refused")
    # Served as far as we know: dropping it would stop the pass from pruning its rule.
    assert discovery.serves(MONITORING, "prometheusrules") is True
    server.failure = None
    server.resources = None
    assert discovery.serves(MONITORING, "prometheusrules") is False
    assert server.asked == 3


def test_a_404_or_a_terminating_crd_means_the_kind_is_gone_and_nothing_else_does() -> None:
    missing = PermanentError("list PrometheusRule in prod", "404 page not found", 404)
    assert kind_gone(missing, creating=False) and kind_gone(missing, creating=True)
    terminating = PermanentError(
        "apply PrometheusRule prod/shop-alerts",
        'prometheusrules.monitoring.coreos.com "shop-alerts" is forbidden: create not '
        "allowed while custom resource definition is terminating",
        403,
    )
    assert kind_gone(terminating, creating=True)
    forbidden = PermanentError(
        "apply PrometheusRule prod/shop-alerts",
        'prometheusrules.monitoring.coreos.com "shop-alerts" is forbidden: User "x" cannot '
        'patch resource "prometheusrules"',
        403,
    )
    # A missing permission stays a failure that status reports.
    assert not kind_gone(forbidden, creating=True)
    assert not kind_gone(PermanentError("apply", "invalid", 422), creating=True)
