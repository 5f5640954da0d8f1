"""tests/pg_harness.py: the throw-away PostgreSQL cluster the server suite runs on
(ADR 0051) starts as an unprivileged user on 127.0.0.1, with fsync on, keeps its
databases apart, does not collide with a second cluster (another xdist worker), and is
stopped and removed after."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from tests.pg_harness import SUPERUSER, Cluster, require_bindir


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster(require_bindir())
    c.start()
    yield c
    c.stop()


def test_a_cluster_starts_and_answers_with_fsync_on(cluster: Cluster) -> None:
    with psycopg.connect(cluster.url()) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SELECT current_user").fetchone() == (SUPERUSER,)


def test_the_cluster_does_not_run_as_root(cluster: Cluster) -> None:
    pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0


def test_databases_of_one_cluster_are_apart(cluster: Cluster) -> None:
    first, second = cluster.create_database(), cluster.create_database()
    assert first != second
    with psycopg.connect(cluster.url(first), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x BIGINT)")
        conn.execute("INSERT INTO kept VALUES (1)")
    copy = cluster.create_database(template=first)
    with psycopg.connect(cluster.url(copy)) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(1,)]
    with psycopg.connect(cluster.url(second)) as conn, pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT x FROM kept")


def test_a_second_cluster_does_not_collide_and_both_are_stopped(cluster: Cluster) -> None:
    other = Cluster(cluster.bindir)
    other.start()
    try:
        assert other.port != cluster.port and other.root != cluster.root
        with psycopg.connect(other.url()) as a, psycopg.connect(cluster.url()) as b:
            assert a.execute("SELECT 1").fetchone() == b.execute("SELECT 1").fetchone()
    finally:
        other.stop()
    assert not other.root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(other.url(), connect_timeout=3)


def test_a_cluster_left_running_by_a_process_is_stopped_when_it_exits(tmp_path: Path) -> None:
    """The atexit hook: a test process that ends without stopping its cluster (a failed
    session) leaves no server running."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from tests.pg_harness import Cluster, find_bindir
        c = Cluster(find_bindir())
        c.start()
        print(c.url(), c.root)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    url, root = done.stdout.split()
    assert not Path(root).exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)
