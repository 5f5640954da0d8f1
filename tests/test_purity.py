"""Architecture rules that keep the protocol core honest (style.md, design §6):
protocol/ is sans-I/O — no sockets, files, databases or clocks — and exactly one module
in the whole project imports nacl.  That protocol/ imports no outer layer is one of the
layer rules of tests/test_layers.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = sorted((ROOT / "protocol").rglob("*.py"))
ALL_CODE = sorted(p for d in ("protocol", "keys", "server", "client", "cli")
                  for p in (ROOT / d).rglob("*.py"))

FORBIDDEN_IN_PROTOCOL = {
    "aiohttp", "sqlite3", "sqlite_utils", "psycopg", "structlog", "socket", "asyncio", "os", "pathlib",
    "shutil", "subprocess", "time", "random", "urllib.request", "http.client", "tempfile", "io",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_there_is_protocol_code_to_check() -> None:
    assert len(PROTOCOL) >= 8


@pytest.mark.parametrize("path", PROTOCOL, ids=lambda p: str(p.relative_to(ROOT)))
def test_protocol_module_imports_no_io(path: Path) -> None:
    bad = {m for m in imported_modules(path)
           if m in FORBIDDEN_IN_PROTOCOL or m.split(".")[0] in FORBIDDEN_IN_PROTOCOL}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", PROTOCOL, ids=lambda p: str(p.relative_to(ROOT)))
def test_protocol_module_reads_no_clock_and_opens_no_file(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "open":
                pytest.fail(f"{path.name}:{node.lineno} opens a file")
            if isinstance(func, ast.Attribute) and func.attr in CLOCK_CALLS:
                pytest.fail(f"{path.name}:{node.lineno} reads a clock ({func.attr})")


def test_only_protocol_crypto_imports_nacl() -> None:
    importers = sorted(str(p.relative_to(ROOT)) for p in ALL_CODE
                       if any(m == "nacl" or m.startswith("nacl.") for m in imported_modules(p)))
    assert importers == ["protocol/crypto.py"]


def test_only_the_storage_backends_import_a_database_driver() -> None:
    """The seam (ADR 0051): ``server/storage.py`` owns SQLite and ``server/pgstore.py``
    PostgreSQL; every query function types its connection as ``storage.Db``.  The backup of
    the SQLite file (``server/backup.py``, ADR 0050) copies it with SQLite's own online
    backup API, and the backup of a PostgreSQL database (``server/pgbackup.py``) copies it
    into a SQLite backup file and back."""
    drivers = {"sqlite3", "sqlite_utils", "psycopg"}
    allowed = {"server/storage.py": {"sqlite3", "sqlite_utils"}, "server/pgstore.py": {"psycopg"},
               "server/backup.py": {"sqlite3"},
               "server/pgbackup.py": {"sqlite3", "sqlite_utils", "psycopg"}}
    for path in sorted((ROOT / "server").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name.startswith("server/witness/"):     # the witness service keeps its own SQLite
            continue
        found = {m.split(".")[0] for m in imported_modules(path)} & drivers
        assert found <= allowed.get(name, set()), f"{name} imports {found}"
