"""Project conftest: loads the bpcheck pytest plugin (``--impl``, the Hypothesis profiles ci/dev/thorough).

The plugin is also a ``pytest11`` entry point of the same name, so in an
installed checkout it is registered once, whichever route loads it first.
"""

pytest_plugins = ["oracle.pytest_plugin"]
