"""Test-wide isolation.

The command line speaks Dutch unless asked otherwise (ADR 0037); the tests read its
English, so every test runs with ``SCHAKEL_LANG=en`` (subprocesses inherit it; the
harnesses that clean the environment set it again, tests/cli_harness.py) and starts
without a language chosen in-process (``schakel --lang`` or the demo choose one).

The ``schakel`` command configures structlog for a person at a terminal (warnings only,
on stderr).  Tests that invoke the command in-process (click's ``CliRunner``) would leave
that process-global configuration behind, and later tests that capture the server's
request log would see nothing.  Every test starts and ends with the configuration it
found.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from schakel.cli.i18n import use


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SCHAKEL_LANG", "en")
    use(None)
    yield
    use(None)


@pytest.fixture(autouse=True)
def _structlog_configuration_is_restored() -> Iterator[None]:
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)
