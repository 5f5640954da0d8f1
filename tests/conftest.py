"""Test-wide isolation.

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


@pytest.fixture(autouse=True)
def _structlog_configuration_is_restored() -> Iterator[None]:
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)
