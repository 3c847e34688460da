"""The chart's tests need the pinned helm binary; without it they skip and say why.

A module that only reads the chart's files sets `NEEDS_HELM = False` and marks the tests
of it that do run helm itself."""

from __future__ import annotations

import pytest

from tests.unit.chart import helm


@pytest.fixture(autouse=True)
def _helm_built(request: pytest.FixtureRequest) -> None:
    if getattr(request.module, "NEEDS_HELM", True) and helm.binary() is None:
        pytest.skip(
            f"helm is not built: run `make tools` (hack/build-tools.sh) or set {helm.HELM_ENV}"
        )
