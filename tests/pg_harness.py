"""A throw-away PostgreSQL cluster for the tests (ADR 0051).

The server suite runs on SQLite and on PostgreSQL.  The PostgreSQL it runs on is Debian's
``postgresql`` package (``.ci/run`` installs it when it is missing), started here, by the
tests themselves:

* :func:`find_bindir` finds ``initdb``, ``pg_ctl`` and ``postgres``: the directory of
  ``initdb`` on ``PATH``, else the newest ``/usr/lib/postgresql/*/bin`` (Debian keeps them
  off ``PATH``).
* :class:`Cluster` runs ``initdb`` in a temporary directory and ``pg_ctl -w start`` -- as
  an unprivileged user when the tests run as root (PostgreSQL refuses to run as root):
  ``nobody``, through ``setpriv``, the directory chowned to it.  It listens on 127.0.0.1
  only, on a free port, with trust authentication for 127.0.0.1 and no Unix socket;
  ``fsync`` stays on (durability is what the storage tests test).  :meth:`Cluster.stop`
  is ``pg_ctl stop -m fast``; a cluster also stops at interpreter exit, and the directory
  is removed.
* Each pytest-xdist worker is its own process with its own cluster (own port, own
  directory): workers never share a database.  A test gets a database of its own from
  :meth:`Cluster.create_database` (a copy of a template database when one is given).

Without the binaries the tests that need a cluster skip (:func:`require_bindir`), except
under ``CI=true`` (``.ci/run``), where they fail: CI must not skip them.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

#: CI (.ci/run, CI=true) installs PostgreSQL: there a missing one fails instead of skipping.
IN_CI = os.environ.get("CI") == "true"
MISSING = "PostgreSQL's initdb/pg_ctl/postgres are not installed (Debian: apt-get install postgresql)"
#: The unprivileged user a cluster runs as when the tests run as root.
UNPRIVILEGED = "nobody"
#: The cluster's superuser (trust authentication on 127.0.0.1: no password).
SUPERUSER = "schakel"
_PROGRAMS = ("initdb", "pg_ctl", "postgres")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.parent.name.split(".") if part.isdigit())


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    on_path = shutil.which("initdb")
    candidates: list[Path] = []
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted((p for p in Path("/usr/lib/postgresql").glob("*/bin")),
                         key=_version_key, reverse=True)
    for bindir in candidates:
        if all((bindir / program).is_file() and os.access(bindir / program, os.X_OK)
               for program in _PROGRAMS):
            return bindir
    return None


def require_bindir() -> Path:
    """:func:`find_bindir`, or skip the test (fail it under CI)."""
    bindir = find_bindir()
    if bindir is None:
        if IN_CI:
            pytest.fail(f"CI must run the PostgreSQL tests: {MISSING}")
        pytest.skip(MISSING)
    return bindir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (a race with another process
    taking it is caught by :meth:`Cluster.start`, which tries another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One PostgreSQL cluster in a temporary directory (see the module's docstring)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # In /tmp, which the unprivileged user can reach (a TMPDIR under /root it cannot).
        self.root = Path(tempfile.mkdtemp(prefix="schakel-pg-",
                                          dir="/tmp" if os.path.isdir("/tmp") else None))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.running = False
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            user = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={pwd.getpwnam(UNPRIVILEGED).pw_gid}",
                       "--clear-groups", "--", *command]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        return subprocess.run(command, check=check, capture_output=True, text=True, env=env,
                              cwd=self.root, timeout=120)

    def start(self) -> None:
        """``initdb`` (once) and ``pg_ctl -w start`` on a free port."""
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-E", "UTF8",
                      "--no-locale", "--auth-host=trust", "--auth-local=trust", "--no-sync")
        last = ""
        for _ in range(5):
            self.port = free_port()
            options = (f"-c listen_addresses=127.0.0.1 -c port={self.port}"
                       " -c unix_socket_directories='' -c fsync=on -c max_connections=100"
                       " -c shared_buffers=32MB -c max_prepared_transactions=0")
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                             "-t", "60", "-o", options, "start", check=False)
            if done.returncode == 0:
                self.running = True
                atexit.register(self.stop)
                return
            last = done.stdout + done.stderr + self._log_tail()
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` and remove the directory (idempotent)."""
        if self.running:
            self.running = False
            self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, template: str | None = None) -> str:
        """A new, empty database (a copy of ``template`` when given); returns its name."""
        with self._lock:
            name = f"t{os.getpid()}_{next(self._names)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{copy}')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')




# --------------------------------------------------------------------------- the backend
#
# The server tests run on SQLite and on PostgreSQL (tests/conftest.py collects each file of
# ON_POSTGRESQL a second time, as ``test_x.py[postgresql]``).  While such a file runs,
# :data:`ACTIVE` is set, and ``tests.server_harness.build_app`` puts each server it builds
# on a database of its own in this process's cluster (:func:`database_url_for`): the same
# data directory gets the same database again (a restart), a new one a new database.

#: Whether the tests running now put their servers on PostgreSQL.
ACTIVE = False
_cluster: Cluster | None = None
_template: str | None = None
_databases: dict[Path, str] = {}
#: Databases of finished tests, emptied (:func:`release`): the next test takes one of these
#: first.  Recycling keeps a worker's cluster at a few databases, where a new one per test
#: would fill the disk and make every checkpoint fsync hundreds of databases' files.
_pool: list[str] = []


def cluster() -> Cluster:
    """This process's cluster, started on first use (skips, or fails under CI, without
    the binaries)."""
    global _cluster
    if _cluster is None:
        c = Cluster(require_bindir())
        c.start()
        _cluster = c
    return _cluster


def template() -> str:
    """A database migrated to the current schema, which each test database copies."""
    global _template
    if _template is None:
        from schakel.server.pgstore import connect, migrate
        c = cluster()
        name = c.create_database()
        with connect(c.url(name)) as conn:
            migrate(conn)
        _template = name
    return _template


def _fresh_database() -> str:
    """An empty database with the current schema: a recycled one, else a new copy of the
    template."""
    if _pool:
        return _pool.pop()
    return cluster().create_database(template=template())


def new_database_url() -> str:
    """A fresh database with the current schema."""
    return cluster().url(_fresh_database())


def database_url_for(data_dir: Path) -> str | None:
    """The PostgreSQL URL for a server on ``data_dir`` while :data:`ACTIVE`, else None
    (SQLite in the data directory)."""
    if not ACTIVE:
        return None
    key = data_dir.resolve()
    if key not in _databases:
        _databases[key] = _fresh_database()
    return cluster().url(_databases[key])


def databases() -> list[Path]:
    """The data directories whose servers have a database now."""
    return list(_databases)


def release(data_dirs: Iterable[Path]) -> None:
    """The servers on ``data_dirs`` are gone: empty their databases for the next tests
    (every row deleted, every identity sequence restarted: as new; ``DELETE`` of a few
    rows is one small commit, where ``TRUNCATE`` would make and fsync new files for every
    table and index).  A database still in use (a server left running) is not reused."""
    import psycopg
    for key in data_dirs:
        name = _databases.pop(key, None)
        if name is None or _cluster is None:
            continue
        try:
            with psycopg.connect(_cluster.url(name)) as conn:    # one transaction
                conn.execute("SET LOCAL lock_timeout = '5s'")
                tables = [r[0] for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    " AND tablename <> 'schakel_schema'")]
                for table in tables:
                    conn.execute(f'DELETE FROM "{table}"'.encode())
                conn.execute("SELECT setval(format('%I.%I', schemaname, sequencename), 1, false)"
                             " FROM pg_sequences WHERE schemaname = 'public'")
        except psycopg.Error:
            continue
        _pool.append(name)


def stop() -> None:
    global _cluster, _template
    _pool.clear()
    if _cluster is not None:
        _cluster.stop()
    _cluster, _template = None, None
    _databases.clear()
