"""server/pgstore.py: the PostgreSQL backend behind the storage seam (ADR 0051) -- the SQL
conversion at the seam, the schema twin of SQLite's migrations, rows read like
``sqlite3.Row``, the same write semantics (group commit, a failing write rolls back only
itself, wake-ups after the commit), and faults of the storage refused with 503."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schakel.server.config import ServerConfig
from schakel.server.context import open_store
from schakel.server.data import insert
from schakel.server.errors import Conflict, Unavailable
from schakel.server.pgstore import PgStore, connect, pg_fault, pg_sql
from schakel.server.storage import MIGRATIONS as SQLITE_MIGRATIONS
from schakel.server.storage import WITHOUT_ROWID, Store, lock_network, migrate
from tests import pg_harness

# --------------------------------------------------------------------------- pg_sql


def test_placeholders_become_percent_s_and_every_percent_is_doubled() -> None:
    """psycopg reads every ``%`` of a query as a placeholder's, inside literals too."""
    assert pg_sql("SELECT a FROM t WHERE b = ? AND c LIKE 'x%' AND d = ?") == \
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%' AND d = %s"
    assert pg_sql("SELECT a % 2 FROM t") == "SELECT a %% 2 FROM t"


def test_bracket_quoting_becomes_double_quotes_outside_literals_only() -> None:
    assert pg_sql("SELECT [case], a.[grant] FROM t WHERE x = '[case]?' AND \"y?\" = ?") == \
        "SELECT \"case\", a.\"grant\" FROM t WHERE x = '[case]?' AND \"y?\" = %s"


def test_a_doubled_quote_stays_inside_its_literal() -> None:
    assert pg_sql("SELECT 'it''s ?' , ?") == "SELECT 'it''s ?' , %s"


@pytest.mark.parametrize("sql", ["SELECT [a b] FROM t", "SELECT [] FROM t", "SELECT x[1",
                                 "SELECT 'open"])
def test_what_is_not_a_bracketed_name_or_a_closed_literal_is_refused(sql: str) -> None:
    with pytest.raises(ValueError):
        pg_sql(sql)


@given(st.lists(st.sampled_from(["a", " ", "?", "%", "[case]", "'l?%'", "\"q\"", ","]),
                max_size=30))
def test_every_placeholder_outside_literals_is_converted_and_nothing_else(parts: list[str]) -> None:
    sql = "".join(parts)
    out = pg_sql(sql)
    assert out.count("%s") == parts.count("?")
    assert out.replace("%s", "?").replace("%%", "%").replace('"case"', "[case]") == sql


# --------------------------------------------------------------------------- faults


def test_storage_faults_are_the_sqlstate_classes_of_a_failing_storage() -> None:
    assert pg_fault(psycopg.errors.DiskFull())                    # 53100
    assert pg_fault(psycopg.errors.SerializationFailure())        # 40001
    assert pg_fault(psycopg.errors.AdminShutdown())               # 57P01
    assert pg_fault(psycopg.errors.ReadOnlySqlTransaction())      # 25006
    assert pg_fault(psycopg.OperationalError("connection lost"))  # no answer at all
    assert not pg_fault(psycopg.errors.UniqueViolation())
    assert not pg_fault(psycopg.errors.SyntaxError())
    assert not pg_fault(ValueError())


# --------------------------------------------------------------------------- on a cluster


@pytest.fixture
def url() -> str:
    return pg_harness.new_database_url()


def _sqlite_schema(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    out: dict[str, Any] = {}
    for table in tables:
        columns = {r[1]: r[5] for r in conn.execute(f"PRAGMA table_info([{table}])")}
        pk = tuple(name for name, n in sorted(columns.items(), key=lambda c: c[1]) if n)
        uniques = {tuple(c[2] for c in conn.execute(f"PRAGMA index_info([{i[1]}])"))
                   for i in conn.execute(f"PRAGMA index_list([{table}])") if i[2]}
        out[table] = (set(columns), pk, uniques - {pk})
    return out


def _pg_schema(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_name <> 'schakel_schema'")]
        out: dict[str, Any] = {}
        for table in tables:
            columns = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (table,))} - {"rowid"}
            indexes = conn.execute(
                "SELECT i.indisprimary, array_agg(a.attname ORDER BY k.n) FROM pg_index i"
                " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
                " WHERE i.indrelid = %s::regclass AND i.indisunique GROUP BY i.indexrelid,"
                " i.indisprimary", (table,)).fetchall()
            pk = next(tuple(cols) for primary, cols in indexes if primary)
            out[table] = (columns, pk, {tuple(cols) for primary, cols in indexes if not primary})
        return out


def test_the_postgresql_schema_is_the_twin_of_sqlites(url: str, tmp_path: Path) -> None:
    """Same tables, same columns, same primary keys, same unique indexes after every
    migration; the version applied is the same number."""
    assert _pg_schema(url) == _sqlite_schema(tmp_path / "s.db")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM schakel_schema").fetchall() == \
            [(len(SQLITE_MIGRATIONS),)]


def test_migrating_again_changes_nothing(url: str) -> None:
    from schakel.server.pgstore import MIGRATIONS, migrate as pg_migrate
    with connect(url) as conn:
        assert pg_migrate(conn) == len(MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM schakel_schema").fetchone()[0] == 1


@pytest.fixture
def store(url: str) -> Iterator[PgStore]:
    s = PgStore(url, readers=2, batch=64)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(s.start())
    s.loop = loop    # type: ignore[attr-defined]
    yield s
    loop.run_until_complete(s.close())
    loop.close()


def _run(store: PgStore, coro: Any) -> Any:
    return store.loop.run_until_complete(coro)    # type: ignore[attr-defined]


def test_rows_read_by_index_and_by_name_like_sqlite(store: PgStore) -> None:
    def write(db: Any) -> int:
        return insert(db, "feed", {"network": "n", "case": "c", "kind": "header",
                                   "envelope": "{}"})
    first = _run(store, store.write(write))
    row = _run(store, store.read(lambda db: db.execute(
        "SELECT id, [case] AS Kase, rowid FROM feed WHERE network = ?", ("n",)).fetchone()))
    assert row[0] == row["id"] == row["ID"] == first == row["rowid"]
    assert row["kase"] == "c" and dict(row) == {"id": first, "kase": "c", "rowid": first}


def test_a_percent_means_itself_with_and_without_parameters(store: PgStore) -> None:
    def both(db: Any) -> tuple[Any, ...]:
        return (db.execute("SELECT 'x%' || ?, 7 % 4", ("y",)).fetchone()[:],
                db.execute("SELECT 'x%', 7 % 4").fetchone()[:])
    assert _run(store, store.read(both)) == (("x%y", 3), ("x%", 3))


def test_a_failing_write_rolls_back_only_itself_in_its_group(store: PgStore) -> None:
    def good(db: Any, case: str) -> int:
        return insert(db, "feed", {"network": "n", "case": case, "kind": "k", "envelope": "{}"})

    def bad(db: Any) -> None:
        insert(db, "feed", {"network": "n", "case": "lost", "kind": "k", "envelope": "{}"})
        db.execute("INSERT INTO networks (network) VALUES (?)", ("n",))    # NOT NULL broken

    def conflict(db: Any) -> None:
        insert(db, "feed", {"network": "n", "case": "lost2", "kind": "k", "envelope": "{}"})
        raise Conflict("no")

    async def together() -> list[Any]:
        return await asyncio.gather(store.write(good, "a"), store.write(bad),
                                    store.write(conflict), store.write(good, "b"),
                                    return_exceptions=True)
    before = store.commits
    results = _run(store, together())
    assert isinstance(results[1], psycopg.errors.NotNullViolation)
    assert isinstance(results[2], Conflict)
    assert store.commits - before == 1
    cases = _run(store, store.read(lambda db: [r[0] for r in db.execute(
        "SELECT [case] FROM feed ORDER BY id")]))
    assert cases == ["a", "b"]


def test_on_commit_wakes_the_networks_of_successful_writes_only(url: str) -> None:
    seen: list[frozenset[str]] = []

    async def run() -> None:
        s = PgStore(url, on_commit=seen.append)
        await s.start()
        try:
            await s.write(lambda db: None, notify="net-a")
            with pytest.raises(Conflict):
                await s.write(lambda db: (_ for _ in ()).throw(Conflict("x")), notify="net-b")
        finally:
            await s.close()
    asyncio.run(run())
    assert seen == [frozenset({"net-a"})]


def test_a_bool_is_stored_as_sqlites_integer(store: PgStore) -> None:
    def write(db: Any) -> None:
        db.execute("INSERT INTO invocations (network, invocation, justified) VALUES (?, ?, ?)",
                   ("n", "i", True))
    _run(store, store.write(write))
    assert _run(store, store.read(lambda db: db.execute(
        "SELECT justified FROM invocations").fetchone()[0])) == 1


def test_json_extract_reads_inside_a_stored_envelope_as_on_sqlite(store: PgStore) -> None:
    doc = '{"signed": {"at": "2026-01-01", "n": 3}}'
    assert _run(store, store.read(lambda db: db.execute(
        "SELECT json_extract(?, '$.signed.at'), json_extract(?, '$.missing')",
        (doc, doc)).fetchone())) == ("2026-01-01", None)


def test_audit_appends_of_one_network_are_serialised_across_connections(url: str) -> None:
    """The per-network advisory lock holds between connections (as between processes):
    a second transaction waits for the first to end."""
    from schakel.server.pgstore import PgDb
    with connect(url) as a, connect(url) as b:
        a.execute("BEGIN")
        lock_network(PgDb(a), "net", "audit")
        b.execute("BEGIN")
        b.execute("SET LOCAL lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            lock_network(PgDb(b), "net", "audit")
        b.execute("ROLLBACK")
        b.execute("BEGIN")
        lock_network(PgDb(b), "other-net", "audit")      # another network: no wait
        b.execute("ROLLBACK")
        a.execute("ROLLBACK")


def test_a_lost_connection_is_a_503_and_the_writer_reconnects(store: PgStore) -> None:
    def whoami(db: Any) -> int:
        return int(db.execute("SELECT pg_backend_pid()").fetchone()[0])
    pid = _run(store, store.write(whoami))
    with psycopg.connect(store.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(Unavailable):
        _run(store, store.write(whoami))
    assert _run(store, store.write(whoami)) != pid      # a new connection, writes resume


def test_the_server_chooses_postgresql_by_url_and_sqlite_without(tmp_path: Path, url: str) -> None:
    assert isinstance(open_store(ServerConfig(data_dir=tmp_path, database_url=url)), PgStore)
    assert isinstance(open_store(ServerConfig(data_dir=tmp_path)), Store)
    with pytest.raises(ValueError):
        ServerConfig(data_dir=tmp_path, database_url="mysql://x")


def test_the_database_url_and_its_password_stay_out_of_the_configurations_repr(
        tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path,
                          database_url="postgresql://schakel:geheim-wachtwoord@127.0.0.1/db")
    assert "geheim-wachtwoord" not in repr(config)


def test_the_tables_without_rowid_are_sqlites(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    migrate(conn)
    declared = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%WITHOUT ROWID'")}
    assert declared == WITHOUT_ROWID


def test_serve_refuses_a_database_that_is_not_a_postgresql_url(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from schakel.cli.main import main
    for args, env in ((["--database", "mysql://db/x"], {}), ([], {"SCHAKEL_DATABASE": "sqlite:x"})):
        result = CliRunner().invoke(main, ["serve", "--data", str(tmp_path / "d"), *args], env=env)
        assert result.exit_code == 2, result.output
        assert "postgresql://" in result.output


def test_a_reader_whose_connection_was_lost_is_a_503_and_reads_resume(url: str) -> None:
    async def run() -> None:
        s = PgStore(url, readers=1)
        await s.start()
        try:
            def whoami(db: Any) -> int:
                return int(db.execute("SELECT pg_backend_pid()").fetchone()[0])
            pid = await s.read(whoami)
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(Unavailable):
                await s.read(whoami)
            assert await s.read(whoami) != pid       # the reader opened a new connection
        finally:
            await s.close()
    asyncio.run(run())


def test_servers_starting_together_on_a_new_database_migrate_it_once() -> None:
    """Every step, the version table's creation included, runs under the migration lock:
    processes that start at once on an empty database neither fail nor migrate twice."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from schakel.server.pgstore import MIGRATIONS as PG_MIGRATIONS
    from schakel.server.pgstore import migrate as pg_migrate
    cluster = pg_harness.cluster()
    for _ in range(3):
        name = cluster.create_database()
        try:
            together = threading.Barrier(4)

            def start(_: int) -> int:
                with connect(cluster.url(name)) as conn:
                    together.wait()
                    return pg_migrate(conn)
            with ThreadPoolExecutor(4) as pool:
                assert list(pool.map(start, range(4))) == [len(PG_MIGRATIONS)] * 4
        finally:
            cluster.drop_database(name)
