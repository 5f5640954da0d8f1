"""The client's local state and home directory (client/state.py, client/home.py; ADR 0007
"Local state" and "Home directory").

Each test is one rule: secrets are ciphertext under a state key that only the partner's
own box key unseals; each secret is bound to its row by its associated data; documents are
canonical JSON; prefix queries; misbehaviour records outlive a rolled-back transaction;
the home directory round-trips and keeps its trust anchors.
"""

from __future__ import annotations

import sqlite3
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schakel.client.home import Home
from schakel.client.partner import Partner
from schakel.client.state import LocalState, associated_data
from schakel.keys import KdfParams
from schakel.protocol.crypto import BoxSecretKey
from schakel.protocol.errors import DecryptionError, KeystoreError, MalformedError, UntrustedKeyError

SECRET = b"epoch key bytes that must never be readable on disk!"


def fresh(tmp_path: Path, name: str = "state.db") -> tuple[LocalState, BoxSecretKey]:
    box = BoxSecretKey.generate()
    return LocalState.open(tmp_path / name, box, create=True), box


def test_state_secrets_are_unreadable_without_the_box_key(tmp_path: Path) -> None:
    state, box = fresh(tmp_path)
    state.put_secret("epoch", ("net", "1"), SECRET)
    state.close()
    raw = (tmp_path / "state.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("state.db-*"))
    assert SECRET not in raw and SECRET[:16] not in raw
    with pytest.raises(DecryptionError):
        LocalState.open(tmp_path / "state.db", BoxSecretKey.generate())
    reopened = LocalState.open(tmp_path / "state.db", box)
    assert reopened.get_secret("epoch", ("net", "1")) == SECRET
    reopened.close()


def test_state_secret_is_bound_to_its_row(tmp_path: Path) -> None:
    state, box = fresh(tmp_path)
    state.put_secret("case-key", ("net", "case-a", "1"), SECRET)
    state.put_secret("case-key", ("net", "case-b", "1"), b"another key")
    state.close()
    # Someone with the file moves case A's ciphertext into case B's row, and into
    # another kind: neither opens there.
    conn = sqlite3.connect(tmp_path / "state.db")
    blob = conn.execute("SELECT value FROM secrets WHERE ref = ?",
                        ("net\x1fcase-a\x1f1",)).fetchone()[0]
    conn.execute("UPDATE secrets SET value = ? WHERE ref = ?", (blob, "net\x1fcase-b\x1f1"))
    conn.execute("INSERT INTO secrets(kind, ref, value) VALUES (?, ?, ?)",
                 ("class-key", "net\x1fcase-a\x1f1", blob))
    conn.commit()
    conn.close()
    state = LocalState.open(tmp_path / "state.db", box)
    assert state.get_secret("case-key", ("net", "case-a", "1")) == SECRET
    with pytest.raises(DecryptionError):
        state.get_secret("case-key", ("net", "case-b", "1"))
    with pytest.raises(DecryptionError):
        state.get_secret("class-key", ("net", "case-a", "1"))
    state.close()


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                            " ORDER BY name")]
        return {n: conn.execute(f"PRAGMA table_info({n})").fetchall() for n in names}
    finally:
        conn.close()


def test_a_new_state_file_has_the_tables_the_older_releases_made(tmp_path: Path) -> None:
    """state.db files made by earlier releases (through sqlite-utils) open unchanged: a new
    file has the same tables, columns, types and keys as sqlite-utils creates."""
    import sqlite_utils

    state, _ = fresh(tmp_path)
    state.close()
    reference = sqlite_utils.Database(tmp_path / "reference.db")
    reference["meta"].create({"name": str, "value": str}, pk="name")
    reference["secrets"].create({"kind": str, "ref": str, "value": bytes}, pk=("kind", "ref"))
    reference["docs"].create({"kind": str, "ref": str, "value": str}, pk=("kind", "ref"))
    reference["cursors"].create({"network": str, "feed": str, "cursor": str},
                                pk=("network", "feed"))
    reference["misbehaviours"].create({"id": int, "network": str, "what": str, "message": str,
                                       "details": str, "at": str}, pk="id")
    reference.close()
    assert _tables(tmp_path / "state.db") == _tables(tmp_path / "reference.db")


def test_the_client_library_imports_neither_sqlite_utils_nor_numpy() -> None:
    """Every ``schakel`` command imports the client library; sqlite-utils (and numpy, which it
    imports when installed) cost a command a quarter of a second and are not needed."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys, schakel.client, schakel.cli.main\n"
         "print(sorted(m for m in ('sqlite_utils', 'numpy') if m in sys.modules))"],
        capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"


def test_state_associated_data_names_kind_and_ref() -> None:
    assert associated_data("class-key", ("n", "c", "name", "2")) == \
        b"schakel/v1/local-state/class-key/n/c/name/2"
    with pytest.raises(MalformedError):
        associated_data("epoch", ("a/b",))          # would make the binding ambiguous


def test_state_docs_are_canonical_json_and_select_by_prefix(tmp_path: Path) -> None:
    state, _ = fresh(tmp_path)
    state.put_doc("event", ("n", "c", "0000000002"), {"b": 1, "a": [1, "é"]})
    state.put_doc("event", ("n", "c", "0000000001"), {"x": None})
    state.put_doc("event", ("n", "cc", "0000000001"), {"other": True})
    state.put_doc("event", ("n2", "c", "0000000001"), {"other": True})
    raw = state._conn.execute("SELECT value FROM docs WHERE ref = ?",
                                 ("n\x1fc\x1f0000000002",)).fetchone()[0]
    assert raw == '{"a":[1,"é"],"b":1}'
    assert [ref for ref, _ in state.docs("event", ("n", "c"))] == [
        ("n", "c", "0000000001"), ("n", "c", "0000000002")]
    assert len(state.docs("event", ("n",))) == 3
    assert len(state.docs("event")) == 4
    state.delete_doc("event", ("n", "c", "0000000001"))
    assert state.get_doc("event", ("n", "c", "0000000001")) is None
    state.close()


def test_state_cursor_defaults_to_zero_and_persists(tmp_path: Path) -> None:
    state, box = fresh(tmp_path)
    assert state.cursor("n", "sync") == "0"
    state.set_cursor("n", "sync", "17")
    state.close()
    state = LocalState.open(tmp_path / "state.db", box)
    assert state.cursor("n", "sync") == "17"
    state.close()


def test_state_misbehaviour_record_survives_a_rolled_back_transaction(tmp_path: Path) -> None:
    state, _ = fresh(tmp_path)
    with pytest.raises(RuntimeError):
        with state.transaction():
            state.put_doc("event", ("n", "c", "1"), {"stored": True})
            state.record_misbehaviour("n", "event-missing", "a gap", {"seq": 3})
            raise RuntimeError("verification failed")
    assert state.get_doc("event", ("n", "c", "1")) is None
    [record] = state.misbehaviours()
    assert (record["network"], record["what"], record["details"]) == ("n", "event-missing",
                                                                     {"seq": 3})
    state.close()


PART = st.text(alphabet=string.ascii_letters + string.digits + "-_.:", min_size=1, max_size=40)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=PART, ref=st.lists(PART, min_size=1, max_size=5).map(tuple),
       value=st.binary(max_size=2048), other=st.binary(max_size=64))
def test_state_secret_round_trip_property(tmp_path_factory: pytest.TempPathFactory, kind: str,
                                          ref: tuple[str, ...], value: bytes,
                                          other: bytes) -> None:
    """put_secret/get_secret round-trips any bytes under any kind and ref; another ref
    of the same kind is unaffected; the stored blob never contains the value."""
    directory = tmp_path_factory.mktemp("prop")
    state, box = fresh(directory)
    state.put_secret(kind, ref, value)
    state.put_secret(kind, (*ref, "sibling"), other)
    assert state.get_secret(kind, ref) == value
    assert state.get_secret(kind, (*ref, "sibling")) == other
    assert ref in state.secret_refs(kind, ref[:1])
    blob = state._conn.execute("SELECT value FROM secrets WHERE kind = ? AND ref = ?",
                                  (kind, "\x1f".join(ref))).fetchone()[0]
    assert len(value) < 8 or value not in bytes(blob)
    state.close()
    reopened = LocalState.open(directory / "state.db", box)
    assert reopened.get_secret(kind, ref) == value
    reopened.delete_secret(kind, ref)
    assert reopened.get_secret(kind, ref) is None
    reopened.close()


async def test_home_round_trip_and_wrong_passphrase(tmp_path: Path) -> None:
    partner = await Partner.create(tmp_path / "home", "correct horse", name="Wijkteam",
                                   server="http://127.0.0.1:8470", acting_user="anna",
                                   kdf=KdfParams.INTERACTIVE)
    key_id, fp = partner.key_id, partner.fingerprint
    partner.trust("net-a", fp)
    await partner.close()
    home = Home(tmp_path / "home")
    assert {p.name for p in home.path.iterdir()} >= {"keystore.json", "client.json", "state.db"}
    assert oct(home.keystore.stat().st_mode & 0o777) == "0o600"
    assert oct(home.config_file.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(KeystoreError):
        await Partner.open(tmp_path / "home", "wrong passphrase")
    again = await Partner.open(tmp_path / "home", "correct horse")
    assert (again.key_id, again.fingerprint, again.acting_user) == (key_id, fp, "anna")
    assert again.networks.trusted() == ["net-a"]
    assert len(fp.split()) == 8
    await again.close()


async def test_home_refuses_to_replace_a_trust_anchor(tmp_path: Path) -> None:
    partner = await Partner.create(tmp_path / "home", "correct horse", name="Wijkteam",
                                   server="http://127.0.0.1:8470", acting_user="anna",
                                   kdf=KdfParams.INTERACTIVE)
    partner.trust("net-a", partner.fingerprint)
    partner.trust("net-a", partner.fingerprint.replace(" ", ""))   # same anchor: fine
    with pytest.raises(UntrustedKeyError):
        partner.trust("net-a", "0" * 40)
    with pytest.raises(MalformedError):
        await Partner.create(tmp_path / "home", "correct horse", name="Again",
                             server="http://127.0.0.1:8470", acting_user="anna",
                             kdf=KdfParams.INTERACTIVE)
    await partner.close()
