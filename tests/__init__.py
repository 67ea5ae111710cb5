"""The suite. Imported before any test module or conftest, and so before the app is."""

import os

# Tests send nothing beyond 127.0.0.1: a trace collector that the shell running them names
# (OTEL_*, app/core/tracing.py) is no test's. A test that wants traces sets its own, on
# 127.0.0.1; servers the tests start inherit this environment.
for _name in [name for name in os.environ if name.startswith("OTEL_")]:
    del os.environ[_name]
