"""Fixture modules shared by test folders, registered once here: one ``conftest`` module in
the tree keeps module names unique for mypy."""

pytest_plugins = [
    "support.gateway_fixtures",
    "support.redis_fixtures",
    "support.upstream_fixtures",
]
