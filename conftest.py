"""Top-level pytest wiring: the lab options and fixtures live in the harness's plugin."""

pytest_plugins = ["harness.pytest_plugin"]
