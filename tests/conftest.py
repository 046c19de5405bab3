"""Shared pytest configuration: the `slow` marker (deselected by `make test`, run by `make test-slow`)."""
import numpy as np
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test, run by `make test-slow`")


@pytest.fixture
def rng():
    "A fixed-seed generator; tests that need another seed make their own."
    return np.random.default_rng(20261125)
