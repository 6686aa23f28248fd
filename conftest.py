"""Project conftest: loads the bpcheck pytest plugin (``--impl``, the Hypothesis profiles ci/dev/thorough).

The plugin is also a ``pytest11`` entry point of the same name, so in an
installed checkout it is registered once, whichever route loads it first.
"""

import pytest
from hypothesis import settings

pytest_plugins = ["oracle.pytest_plugin"]


def pytest_configure(config):
    """Every Hypothesis test of this repository runs under the selected bpcheck profile (ci in CI)."""
    from oracle import pytest_plugin

    settings.load_profile(pytest_plugin.active_profile)


@pytest.fixture(autouse=True)
def wide_table(monkeypatch):
    """Tables wide enough that no cell wraps, whoever runs the test: pytest-xdist sets $COLUMNS to 80 in its
    workers, and a test that reads a verdict from a table row must not depend on that."""
    monkeypatch.setenv("COLUMNS", "250")
