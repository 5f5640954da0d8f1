"""keys/keystore.py and keys/passphrase.py (docs/protocol.md §4.2).

Tests use Argon2id INTERACTIVE (about 70 ms per derivation) and share one
encrypted document where they can.
"""

from __future__ import annotations

import json
import os
import stat
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schakel.keys.fingerprint import fingerprint
from schakel.keys.keystore import (
    FORMAT,
    KdfParams,
    decrypt_keystore,
    encrypt_keystore,
    load_keystore,
    parse_keystore_info,
    read_keystore_info,
    save_keystore,
)
from schakel.keys.partner import PartnerKeys
from schakel.keys.passphrase import passphrase_from
from schakel.protocol.errors import KeystoreError

PASS = "correct horse battery staple"
FAST = KdfParams.INTERACTIVE


@pytest.fixture(scope="module")
def keys() -> PartnerKeys:
    return PartnerKeys.generate()


@pytest.fixture(scope="module")
def document(keys: PartnerKeys) -> bytes:
    return encrypt_keystore(keys, PASS, name="Buurtteam Noord", kdf=FAST)


def _edit(document: bytes, change: Any) -> bytes:
    doc = json.loads(document)
    change(doc)
    return json.dumps(doc).encode()


# --------------------------------------------------------------------------- round trips


def test_keystore_file_round_trip(tmp_path: Path, keys: PartnerKeys) -> None:
    path = tmp_path / "partner.keystore"
    info = save_keystore(path, keys, PASS, name="Buurtteam Noord", kdf=FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_keystore(path, PASS)
    assert loaded.public == keys.public
    assert loaded.signer.sign(b"m") == keys.signer.sign(b"m")
    sealed = keys.public.box.seal(b"hello")
    assert loaded.box_secret.unseal(sealed) == b"hello"
    assert info == read_keystore_info(path)
    assert [p.name for p in tmp_path.iterdir()] == ["partner.keystore"]  # no temp files left


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=8, max_size=40).filter(
           lambda s: len(unicodedata.normalize("NFC", s)) >= 8),
       st.text(min_size=1, max_size=60).filter(str.isprintable))
def test_keystore_round_trip_property(passphrase: str, name: str) -> None:
    keys = PartnerKeys.generate()
    data = encrypt_keystore(keys, passphrase, name=name, kdf=FAST)
    assert decrypt_keystore(data, passphrase).public == keys.public
    assert parse_keystore_info(data).name == name


def test_header_readable_without_passphrase(document: bytes, keys: PartnerKeys) -> None:
    info = parse_keystore_info(document)
    assert info.name == "Buurtteam Noord"
    assert info.key_id == keys.key_id
    assert info.public == keys.public
    assert info.kdf == FAST
    assert info.fingerprint == fingerprint(keys.public.sign)


def test_default_kdf_is_moderate() -> None:
    assert KdfParams.MODERATE == KdfParams(3, 256 * 1024 * 1024)
    assert KdfParams.INTERACTIVE == KdfParams(2, 64 * 1024 * 1024)


def test_passphrase_is_nfc_normalised(keys: PartnerKeys) -> None:
    composed = unicodedata.normalize("NFC", "wachtwoord-é-ü-ö")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    data = encrypt_keystore(keys, composed, name="x", kdf=FAST)
    assert decrypt_keystore(data, decomposed).public == keys.public


# --------------------------------------------------------------------------- attacks, damage


def test_wrong_passphrase_leaves_file_untouched(tmp_path: Path, keys: PartnerKeys) -> None:
    path = tmp_path / "k.keystore"
    save_keystore(path, keys, PASS, name="n", kdf=FAST)
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(KeystoreError, match="wrong passphrase or damaged keystore"):
        load_keystore(path, "not the passphrase")
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("field,value", [("opslimit", 1), ("memlimit", 8 * 1024 * 1024)])
def test_keystore_downgraded_kdf_refused(document: bytes, field: str, value: int) -> None:
    def downgrade(doc: dict[str, Any]) -> None:
        doc["kdf"][field] = value
    with pytest.raises(KeystoreError, match="below the minimum"):
        decrypt_keystore(_edit(document, downgrade), PASS)
    with pytest.raises(KeystoreError, match="below the minimum"):
        parse_keystore_info(_edit(document, downgrade))


def test_keystore_downgrade_refused_on_write(keys: PartnerKeys) -> None:
    with pytest.raises(KeystoreError, match="below the minimum"):
        encrypt_keystore(keys, PASS, name="n", kdf=KdfParams(1, 8 * 1024 * 1024))


@pytest.mark.parametrize("field,value", [("opslimit", 1000), ("memlimit", 1 << 32),
                                         ("opslimit", 3.0), ("memlimit", True)])
def test_keystore_excessive_or_non_integer_kdf_refused(document: bytes, field: str,
                                                       value: object) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["kdf"][field] = value
    with pytest.raises(KeystoreError):
        decrypt_keystore(_edit(document, change), PASS)


def test_keystore_swapped_public_part_detected(document: bytes) -> None:
    other = PartnerKeys.generate().public

    def swap(doc: dict[str, Any]) -> None:
        doc["public"] = other.to_json()
        doc["key_id"] = other.key_id
    swapped = _edit(document, swap)
    assert parse_keystore_info(swapped).public == other  # the header alone cannot tell
    with pytest.raises(KeystoreError, match="header was altered"):
        decrypt_keystore(swapped, PASS)


def test_keystore_renamed_header_detected(document: bytes) -> None:
    def rename(doc: dict[str, Any]) -> None:
        doc["name"] = "Someone Else"
    with pytest.raises(KeystoreError, match="header was altered"):
        decrypt_keystore(_edit(document, rename), PASS)


def test_keystore_key_id_not_matching_public_key_refused(document: bytes) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["key_id"] = PartnerKeys.generate().key_id
    with pytest.raises(KeystoreError, match="key_id"):
        parse_keystore_info(_edit(document, change))


def test_keystore_tampered_ciphertext_refused(document: bytes) -> None:
    def flip(doc: dict[str, Any]) -> None:
        box = doc["secret"]["box"]
        doc["secret"]["box"] = box[:40] + ("A" if box[40] != "A" else "B") + box[41:]
    with pytest.raises(KeystoreError, match="wrong passphrase or damaged keystore"):
        decrypt_keystore(_edit(document, flip), PASS)


def test_keystore_wrong_format_tag_refused(document: bytes) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["format"] = "schakel-keystore/v0"
    with pytest.raises(KeystoreError, match="format tag"):
        decrypt_keystore(_edit(document, change), PASS)


@pytest.mark.parametrize("data", [b"", b"{", b"not json", b"[]", b"null", b"\xff\xfe",
                                  b'{"format": "schakel-keystore/v1", "format": "x"}'])
def test_keystore_damaged_json_refused(data: bytes) -> None:
    with pytest.raises(KeystoreError):
        decrypt_keystore(data, PASS)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_keystore_truncated_file_refused(document: bytes, fraction: float) -> None:
    with pytest.raises(KeystoreError):
        decrypt_keystore(document[:int(len(document) * fraction)], PASS)


@pytest.mark.parametrize("path", [("name",), ("key_id",), ("public",), ("kdf",), ("secret",),
                                  ("public", "box"), ("kdf", "salt"), ("kdf", "alg"),
                                  ("secret", "box"), ("secret", "alg")])
def test_keystore_missing_field_refused_without_key_error(document: bytes,
                                                          path: tuple[str, ...]) -> None:
    def drop(doc: dict[str, Any]) -> None:
        target = doc
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    with pytest.raises(KeystoreError, match="missing field"):
        decrypt_keystore(_edit(document, drop), PASS)


def test_keystore_unknown_field_refused(document: bytes) -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["comment"] = "hi"
    with pytest.raises(KeystoreError, match="unknown field"):
        parse_keystore_info(_edit(document, add))


def test_keystore_truncated_box_refused(document: bytes) -> None:
    def cut(doc: dict[str, Any]) -> None:
        doc["secret"]["box"] = doc["secret"]["box"][:20]
    with pytest.raises(KeystoreError, match="truncated"):
        decrypt_keystore(_edit(document, cut), PASS)


def test_missing_keystore_file_refused(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="no keystore"):
        load_keystore(tmp_path / "absent", PASS)


def test_refuses_to_overwrite_existing_keystore(tmp_path: Path, keys: PartnerKeys) -> None:
    path = tmp_path / "k.keystore"
    path.write_bytes(b"precious")
    with pytest.raises(KeystoreError, match="already exists"):
        save_keystore(path, keys, PASS, name="n", kdf=FAST)
    assert path.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["k.keystore"]
    save_keystore(path, keys, PASS, name="n", kdf=FAST, overwrite=True)
    assert read_keystore_info(path).key_id == keys.key_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_short_passphrase_refused(keys: PartnerKeys) -> None:
    with pytest.raises(KeystoreError, match="at least 8"):
        encrypt_keystore(keys, "short", name="n", kdf=FAST)


def test_document_carries_format_tag_and_no_secrets(document: bytes, keys: PartnerKeys) -> None:
    from schakel.protocol.encoding import b64e
    doc = json.loads(document)
    assert doc["format"] == FORMAT
    assert doc["kdf"]["alg"] == "argon2id13"
    assert b64e(keys.signer.export_seed()) not in document.decode()
    assert b64e(keys.box_secret.export_secret()) not in document.decode()


# --------------------------------------------------------------------------- passphrase_from


def test_passphrase_from_environment() -> None:
    def never(prompt: str) -> str:
        raise AssertionError("must not prompt")
    assert passphrase_from(environ={"SCHAKEL_PASSPHRASE": "s3cret!!"}, ask=never) == "s3cret!!"
    assert passphrase_from("MY_VAR", environ={"MY_VAR": "other"}, ask=never) == "other"


def test_passphrase_from_prompt_when_environment_unset() -> None:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "typed pass"
    assert passphrase_from(environ={}, prompt="Wachtwoord: ", ask=ask) == "typed pass"
    assert asked == ["Wachtwoord: "]


def test_passphrase_confirmation_mismatch_refused() -> None:
    answers = iter(["one passphrase", "another one"])
    with pytest.raises(KeystoreError, match="do not match"):
        passphrase_from(environ={}, confirm=True, ask=lambda _: next(answers))


def test_passphrase_missing_without_prompt_refused() -> None:
    with pytest.raises(KeystoreError, match="SCHAKEL_PASSPHRASE"):
        passphrase_from(environ={}, prompt=None)


def test_empty_passphrase_refused() -> None:
    with pytest.raises(KeystoreError, match="empty"):
        passphrase_from(environ={"SCHAKEL_PASSPHRASE": ""}, ask=lambda _: "")


def test_umask_does_not_widen_mode(tmp_path: Path, keys: PartnerKeys) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "k"
        save_keystore(path, keys, PASS, name="n", kdf=FAST)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
