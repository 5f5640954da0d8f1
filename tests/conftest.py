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

The server tests run on both backends (ADR 0051): each file of :data:`ON_POSTGRESQL` is
collected twice, as itself (SQLite) and as ``test_x.py[postgresql]``, whose tests build
their servers on databases of a throw-away PostgreSQL cluster (tests/pg_harness.py; one
cluster per xdist worker, stopped at the end of the session).  ``-k postgresql`` runs only
those, ``-k "not postgresql"`` only the SQLite ones.

The suite starts hundreds of Python subprocesses (``schakel`` commands, servers, the
tutorials' shells).  Where the environment says ``PYTHONDONTWRITEBYTECODE`` (a container's
default), each of them compiled every Schakel module again, a fifth of a second of each
command's start: the tests' children keep their bytecode in a cache of their own outside
the source tree (``PYTHONPYCACHEPREFIX``, :func:`_bytecode_cached`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from schakel.cli.i18n import use

from tests import pg_harness


def _bytecode_cached() -> None:
    """Let the subprocesses of the tests (and the xdist workers) cache their bytecode, in
    a directory of this user's under the temporary directory, never in the source tree."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        os.environ.setdefault("PYTHONPYCACHEPREFIX",
                              os.path.join(tempfile.gettempdir(), f"schakel-pycache-{os.getuid()}"))


_bytecode_cached()

#: The files whose tests also run with their servers on PostgreSQL: every file that drives
#: the server's behaviour in-process (through ``tests.server_harness.build_app``).  Not the
#: client, CLI, console and protocol files (the server under them is the same code, already
#: run on both here), nor the files whose subject is SQLite's own file: its storage faults
#: (test_storage.py, test_server_disk.py under libfiu) or its rows edited on disk
#: (test_audit_log.py, test_erasure.py, test_trust_log.py, test_access_request.py,
#: test_identity_rotation.py).  test_server_crash.py kills a ``schakel serve --database``
#: subprocess on PostgreSQL as on SQLite.
ON_POSTGRESQL = frozenset({
    "test_server_app.py", "test_server_attacks.py", "test_server_garbage.py",
    "test_server_matrix.py", "test_server_rekey.py", "test_server_rotation.py",
    "test_server_threats.py", "test_server_traffic.py", "test_server_crash.py",
    "test_audience.py", "test_behalf.py", "test_coordinator_rotation.py", "test_disclosure.py",
    "test_disclosure_atomicity.py", "test_disclosure_basis.py", "test_network_policy.py",
    "test_purge_on_removal.py", "test_reads.py", "test_referrals.py", "test_retention.py",
    "test_split_view.py", "test_sync_progress.py", "test_veilig_thuis.py",
    "test_intake_page.py",
})


class PostgresqlModule(pytest.Module):
    """A test file collected a second time, its servers on PostgreSQL."""


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.name not in ON_POSTGRESQL:
        return None
    name = f"{file_path.name}[postgresql]"
    return PostgresqlModule.from_parent(parent, path=file_path, name=name,
                                        nodeid=f"{parent.nodeid}/{name}".lstrip("/"))


@pytest.fixture(scope="module", autouse=True)
def _server_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """While a ``[postgresql]`` file runs, its servers are built on PostgreSQL."""
    if not isinstance(request.node, PostgresqlModule):
        yield
        return
    pg_harness.cluster()
    pg_harness.ACTIVE = True
    try:
        yield
    finally:
        pg_harness.ACTIVE = False
        pg_harness.release(list(pg_harness.databases()))


@pytest.fixture(autouse=True)
def _server_databases_recycled() -> Iterator[None]:
    """The databases of the servers a test built are emptied for the next test when it
    ends (its function-scoped servers are closed by then; a module's stay until the end of
    the module, :func:`_server_backend`)."""
    if not pg_harness.ACTIVE:
        yield
        return
    before = set(pg_harness.databases())
    yield
    pg_harness.release(set(pg_harness.databases()) - before)


def pytest_sessionfinish() -> None:
    pg_harness.stop()


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
