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

``make test`` runs the files on pytest-xdist workers, a whole file to a worker
(``--dist loadfile``: a file's module fixtures start once).  Under xdist the collection
puts the files that take longest first (:data:`LONGEST_FIRST`), so that no long file starts
last; the workers follow that order when given ``--no-loadscope-reorder`` (the Makefile
gives it), else xdist's own (most tests first).  A run in one process keeps pytest's order.
"""

from __future__ import annotations

import os
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


#: The longest files of the suite (``--durations``), longest first: under xdist they are
#: handed out before the rest.  A file missing here only runs in its usual place.
LONGEST_FIRST = (
    "test_tutorials.py", "test_schema_verdicts.py", "test_cli_erasure.py", "test_cli_lists.py",
    "test_demo.py", "test_openapi_fuzz.py", "test_openapi.py", "test_cli_flows.py",
    "test_cli_pii.py", "test_cli_i18n.py", "test_agent.py", "test_sfv_fast.py",
    "test_cli_serve.py", "test_types.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))    # stable: files stay whole
