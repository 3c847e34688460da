"""Fixtures every suite may use: the local control plane and its audit-log helpers."""

pytest_plugins = ["tests.support.fixtures"]
