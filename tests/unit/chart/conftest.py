"""The chart's tests need the pinned helm binary; without it they skip and say why."""

from __future__ import annotations

import pytest

from tests.unit.chart import helm


@pytest.fixture(autouse=True)
def _helm_built() -> None:
    if helm.binary() is None:
        pytest.skip(
            f"helm is not built: run `make tools` (hack/build-tools.sh) or set {helm.HELM_ENV}"
        )
