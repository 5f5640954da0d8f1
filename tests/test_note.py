"""protocol/note.py (docs/protocol.md §17.1–§17.3): signed notes, checkpoints and Ed25519 v1
cosignatures.

Three kinds of tests: the known answers of protocol/vectors/note.json (from the C2SP
specifications, golang.org/x/mod's sumdb/note and transparency-dev/formats; each vector
names its repository, path and commit); an independent check of the formats written here
with only hashlib, base64 and nacl; one test per rule; and hypothesis properties of the
parsers."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schakel.protocol.crypto import Signer
from schakel.protocol.errors import MalformedError, SignatureError
from schakel.protocol.note import (
    COSIGNATURE_V1,
    ED25519,
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Checkpoint,
    Note,
    NoteSignature,
    NoteVerifier,
    cosign,
    cosigned_message,
    key_hash,
    parse_checkpoint,
    parse_note,
    parse_signature_line,
    parse_vkey,
    sign_note,
    verify_checkpoint,
    verify_note,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "protocol" / "vectors" / "note.json")
    .read_text(encoding="utf-8"))

ORIGIN = "schakel/audit/netwerk-noord"
ROOT = hashlib.sha256(b"a root").digest()
TEXT = Checkpoint(ORIGIN, 7, ROOT).text()
SEED_LOG, SEED_W1, SEED_W2 = bytes(range(32)), bytes([7] * 32), bytes([9] * 32)


# --- an independent implementation: hashlib, base64 and nacl only --------------------------

def ref_key_hash(name: str, sig_type: int, public_key: bytes) -> bytes:
    # c2sp.org/signed-note: SHA-256(key name || 0x0A || signature type || public key)[:4]
    return hashlib.sha256(name.encode() + b"\x0a" + bytes([sig_type]) + public_key).digest()[:4]


def ref_line(name: str, payload: bytes) -> str:
    # an em dash (U+2014), a space, the key name, a space, standard padded base64, a newline
    return "\u2014 " + name + " " + base64.b64encode(payload).decode() + "\n"


def ref_sign_note(text: str, name: str, seed: bytes) -> str:
    key = nacl.signing.SigningKey(seed)
    kh = ref_key_hash(name, 0x01, bytes(key.verify_key))
    return ref_line(name, kh + key.sign(text.encode()).signature)


def ref_cosign(text: str, name: str, seed: bytes, timestamp: int) -> str:
    # c2sp.org/tlog-cosignature: sign "cosignature/v1\ntime <t>\n" || checkpoint text; the line
    # carries key hash || 8-byte big-endian timestamp || signature
    key = nacl.signing.SigningKey(seed)
    message = b"cosignature/v1\n" + b"time " + str(timestamp).encode() + b"\n" + text.encode()
    kh = ref_key_hash(name, 0x04, bytes(key.verify_key))
    return ref_line(name, kh + timestamp.to_bytes(8, "big") + key.sign(message).signature)


def ref_verify_cosignature(text: str, line: str, name: str, public_key: bytes) -> int:
    assert line.startswith("\u2014 " + name + " ") and line.endswith("\n")
    raw = base64.b64decode(line[len(name) + 3:-1], validate=True)
    assert len(raw) == 4 + 8 + 64
    assert raw[:4] == ref_key_hash(name, 0x04, public_key)
    timestamp = int.from_bytes(raw[4:12], "big")
    message = b"cosignature/v1\ntime %d\n" % timestamp + text.encode()
    nacl.signing.VerifyKey(public_key).verify(message, raw[12:])
    return timestamp


def signer(seed: bytes) -> Signer:
    return Signer(seed)


def log_verifier() -> NoteVerifier:
    return NoteVerifier(ORIGIN, ED25519, signer(SEED_LOG).verify_key)


def witness(name: str, seed: bytes) -> NoteVerifier:
    return NoteVerifier(name, COSIGNATURE_V1, signer(seed).verify_key)


def signed_checkpoint(text: str = TEXT) -> Note:
    return Note(text, (sign_note(text, ORIGIN, signer(SEED_LOG)),))


# --- known answers ---------------------------------------------------------------------------

@pytest.mark.parametrize("vector", VECTORS["notes"], ids=lambda v: v["name"])
def test_known_notes_verify(vector: dict[str, Any]) -> None:
    note = parse_note(vector["note"])
    assert note.text == vector["text"]
    verified = verify_note(note, [parse_vkey(k) for k in vector["vkeys"]])
    assert sorted(verified) == sorted(vector["verified"])


@pytest.mark.parametrize("vector", VECTORS["unverified_notes"], ids=lambda v: v["name"])
def test_known_unverifiable_notes_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(SignatureError):
        verify_note(parse_note(vector["note"]), [parse_vkey(k) for k in vector["vkeys"]])


@pytest.mark.parametrize("vector", VECTORS["signing"], ids=lambda v: v["name"])
def test_known_signature_is_reproduced(vector: dict[str, Any]) -> None:
    # golang.org/x/mod's private key: PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed)
    raw = base64.b64decode(vector["skey"].split("+", 4)[4])
    assert raw[0] == ED25519
    sig = sign_note(vector["text"], vector["key_name"], Signer(raw[1:]))
    assert sig.line() == vector["line"]
    assert ref_sign_note(vector["text"], vector["key_name"], raw[1:]) == vector["line"]


@pytest.mark.parametrize("vector", VECTORS["malformed_notes"], ids=lambda v: v["name"])
def test_known_malformed_notes_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(MalformedError):
        parse_note(vector["note"])


def test_a_note_that_is_not_utf8_is_malformed() -> None:
    [vector] = VECTORS["malformed_note_bytes_hex"]
    with pytest.raises(MalformedError):
        parse_note(bytes.fromhex(vector["hex"]))


@pytest.mark.parametrize("vector", VECTORS["vkeys"], ids=lambda v: v["vkey"][:20])
def test_known_vkeys_parse_with_their_key_hash(vector: dict[str, Any]) -> None:
    verifier = parse_vkey(vector["vkey"])
    assert (verifier.name, verifier.sig_type) == (vector["name"], vector["type"])
    assert verifier.key_hash.hex() == vector["key_hash"]
    assert verifier.vkey() == vector["vkey"]
    raw = base64.b64decode(vector["vkey"].split("+", 2)[2])
    assert ref_key_hash(vector["name"], raw[0], raw[1:]).hex() == vector["key_hash"]


@pytest.mark.parametrize("vector", VECTORS["bad_vkeys"], ids=lambda v: v["name"])
def test_known_bad_vkeys_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(MalformedError):
        parse_vkey(vector["vkey"])


def test_the_specifications_checkpoint_parses() -> None:
    [vector] = VECTORS["checkpoints"]
    cp = parse_checkpoint(vector["text"])
    assert (cp.origin, cp.size, cp.root.hex()) == (vector["origin"], vector["size"],
                                                   vector["root_hex"])
    assert cp.text() == vector["text"]


def test_the_specifications_cosignature_has_the_v1_layout() -> None:
    spec = VECTORS["cosignatures"][0]
    sig = parse_signature_line(spec["line"])
    assert (sig.name, sig.key_hash.hex()) == (spec["name"], spec["key_hash"])
    assert len(sig.signature) == 8 + 64
    assert int.from_bytes(sig.signature[:8], "big") == spec["timestamp"]
    assert cosigned_message(spec["checkpoint"], spec["timestamp"]) == spec["message"].encode()
    other = VECTORS["cosignatures"][1]
    raw = base64.b64decode(other["signature_b64"])
    assert raw[:4].hex() == other["key_hash"]
    assert int.from_bytes(raw[4:12], "big") == other["timestamp"]


# --- independent verification ------------------------------------------------------------

def test_key_hash_is_sha256_of_name_newline_type_key() -> None:
    key = signer(SEED_W1).verify_key.raw
    for sig_type in (ED25519, COSIGNATURE_V1):
        assert key_hash("w.example/1", sig_type, key) == ref_key_hash("w.example/1", sig_type, key)
    assert key_hash("w.example/1", ED25519, key) != key_hash("w.example/1", COSIGNATURE_V1, key)


def test_a_note_signature_line_is_dash_space_name_space_base64() -> None:
    line = sign_note(TEXT, ORIGIN, signer(SEED_LOG)).line()
    assert line == ref_sign_note(TEXT, ORIGIN, SEED_LOG)


def test_a_cosignature_made_by_note_py_verifies_independently() -> None:
    line = cosign(TEXT, "w.example/1", signer(SEED_W1), 1_790_000_000).line()
    public = signer(SEED_W1).verify_key.raw
    assert ref_verify_cosignature(TEXT, line, "w.example/1", public) == 1_790_000_000
    assert line == ref_cosign(TEXT, "w.example/1", SEED_W1, 1_790_000_000)   # Ed25519 is deterministic


def test_an_independent_cosignature_verifies_with_note_py() -> None:
    line = ref_cosign(TEXT, "w.example/1", SEED_W1, 1_700_000_123)
    note = parse_note(signed_checkpoint().format() + line)
    witnessed = verify_checkpoint(note, log_verifier(), [witness("w.example/1", SEED_W1)],
                                  quorum=1)
    assert witnessed.cosigned == {"w.example/1": 1_700_000_123}


def test_the_cosigned_message_is_header_time_line_and_text() -> None:
    assert cosigned_message(TEXT, 42) == b"cosignature/v1\ntime 42\n" + TEXT.encode()


# --- one test per rule ----------------------------------------------------------------------

def test_unknown_keys_are_ignored() -> None:
    note = signed_checkpoint().with_signatures(
        [sign_note(TEXT, "stranger.example", Signer.generate())])
    assert verify_note(parse_note(note.format()), [log_verifier()]) == {ORIGIN: None}


def test_a_known_keys_bad_signature_rejects_the_note() -> None:
    good = signed_checkpoint().signatures[0]
    bad = NoteSignature(good.name, good.key_hash, good.signature[:-1] + bytes([good.signature[-1] ^ 1]))
    with pytest.raises(SignatureError):
        verify_note(Note(TEXT, (good, bad)), [log_verifier()])


def test_no_known_signature_rejects_the_note() -> None:
    with pytest.raises(SignatureError):
        verify_note(signed_checkpoint(), [witness("w.example/1", SEED_W1)])


def test_a_name_match_with_another_key_hash_is_ignored() -> None:
    other = NoteVerifier(ORIGIN, ED25519, Signer.generate().verify_key)
    with pytest.raises(SignatureError, match="no known key"):
        verify_note(signed_checkpoint(), [other])


@pytest.mark.parametrize("ch", ["\x00", "\x01", "\r", "\t", "\x1b", "\x7f"])
def test_control_characters_are_malformed(ch: str) -> None:
    with pytest.raises(MalformedError):
        parse_note(f"a{ch}b\n\n" + signed_checkpoint().signatures[0].line())


def test_a_missing_blank_line_is_malformed() -> None:
    with pytest.raises(MalformedError):
        parse_note(TEXT + signed_checkpoint().signatures[0].line())


def test_no_signatures_is_malformed() -> None:
    with pytest.raises(MalformedError):
        parse_note(TEXT + "\n")


def test_too_many_signatures_are_malformed() -> None:
    line = signed_checkpoint().signatures[0].line()
    assert len(parse_note(TEXT + "\n" + line * MAX_SIGNATURES).signatures) == MAX_SIGNATURES
    with pytest.raises(MalformedError):
        parse_note(TEXT + "\n" + line * (MAX_SIGNATURES + 1))


def test_an_oversize_note_is_malformed() -> None:
    line = signed_checkpoint().signatures[0].line()
    padding = "x" * (MAX_NOTE_BYTES - len(line.encode()) - 2)
    assert parse_note(padding + "\n\n" + line).text == padding + "\n"
    with pytest.raises(MalformedError):
        parse_note(padding + "xx\n\n" + line)


@pytest.mark.parametrize("mangle", [
    lambda b: b.rstrip("="),                      # missing padding
    lambda b: b[:-3] + chr(ord(b[-3]) + 1) + b[-2:] if b.endswith("=") else b + "=",
    lambda b: b.replace("+", "-").replace("/", "_") if ("+" in b or "/" in b) else b + "-",
    lambda b: b + "\u00a0",
], ids=["unpadded", "padding-bits", "base64url", "trailing-space"])
def test_non_canonical_base64_is_malformed(mangle: Any) -> None:
    sig = cosign(TEXT, "w.example/1", signer(SEED_W1), 1)      # 76 bytes: "==" padding
    b64 = sig.line().split(" ")[2][:-1]
    assert b64.endswith("=")
    with pytest.raises(MalformedError):
        parse_signature_line(f"\u2014 w.example/1 {mangle(b64)}")


@pytest.mark.parametrize("size", ["07", "00", "+7", "-0", "7 ", "0x7", "18446744073709551616"])
def test_leading_zeroes_and_other_sizes_are_malformed(size: str) -> None:
    with pytest.raises(MalformedError):
        parse_checkpoint(f"{ORIGIN}\n{size}\n{base64.b64encode(ROOT).decode()}\n")


def test_empty_lines_in_a_checkpoint_are_malformed() -> None:
    root = base64.b64encode(ROOT).decode()
    for text in (f"{ORIGIN}\n\n7\n{root}\n", f"{ORIGIN}\n7\n{root}\n\next\n",
                 f"{ORIGIN}\n7\n{root}\next\n\n"):
        with pytest.raises(MalformedError):
            parse_checkpoint(text)
    assert parse_checkpoint(f"{ORIGIN}\n7\n{root}\next\n").extensions == ("ext",)


def test_a_31_byte_root_is_malformed() -> None:
    with pytest.raises(MalformedError):
        parse_checkpoint(f"{ORIGIN}\n7\n{base64.b64encode(ROOT[:31]).decode()}\n")
    with pytest.raises(MalformedError):
        Checkpoint(ORIGIN, 7, ROOT[:31])


@pytest.mark.parametrize("origin", ["schakel/audit/a b", "schakel/audit/a+b", "a\u00a0b",
                                    "a\u2003b", ""])
def test_an_origin_with_a_space_or_plus_is_malformed(origin: str) -> None:
    with pytest.raises(MalformedError):
        parse_checkpoint(f"{origin}\n7\n{base64.b64encode(ROOT).decode()}\n")
    if origin:
        with pytest.raises(MalformedError):
            parse_vkey(f"{origin}+00000000+AQ" + "A" * 42)


def test_a_timestamp_above_2_63_minus_1_is_refused() -> None:
    with pytest.raises(MalformedError):
        cosigned_message(TEXT, 1 << 63)
    w = witness("w.example/1", SEED_W1)
    key = nacl.signing.SigningKey(SEED_W1)
    huge = (1 << 63).to_bytes(8, "big")
    sig = NoteSignature(w.name, w.key_hash, huge + key.sign(
        b"cosignature/v1\ntime %d\n" % (1 << 63) + TEXT.encode()).signature)
    with pytest.raises(SignatureError):
        w.verify(TEXT, sig)
    top = (1 << 63) - 1
    ok = cosign(TEXT, w.name, signer(SEED_W1), top)
    assert w.verify(TEXT, ok) == top


def test_quorum_counts_a_witness_once() -> None:
    w1 = witness("w1.example", SEED_W1)
    twice = signed_checkpoint().with_signatures([
        cosign(TEXT, w1.name, signer(SEED_W1), 100), cosign(TEXT, w1.name, signer(SEED_W1), 101)])
    assert len(twice.signatures) == 3
    assert len(verify_checkpoint(twice, log_verifier(), [w1], quorum=1).cosigned) == 1
    with pytest.raises(SignatureError):
        verify_checkpoint(twice, log_verifier(), [w1, w1], quorum=2)


def test_quorum_does_not_count_an_unknown_cosigner() -> None:
    w1, w2 = witness("w1.example", SEED_W1), witness("w2.example", SEED_W2)
    note = signed_checkpoint().with_signatures([
        cosign(TEXT, w1.name, signer(SEED_W1), 100),
        cosign(TEXT, "w3.example", Signer.generate(), 100)])
    assert verify_checkpoint(note, log_verifier(), [w1, w2], quorum=1).cosigned == {w1.name: 100}
    with pytest.raises(SignatureError):
        verify_checkpoint(note, log_verifier(), [w1, w2], quorum=2)


def test_a_cosignature_over_another_text_is_not_counted_but_fails() -> None:
    w1, w2 = witness("w1.example", SEED_W1), witness("w2.example", SEED_W2)
    other = Checkpoint(ORIGIN, 8, ROOT).text()
    note = signed_checkpoint().with_signatures([
        cosign(TEXT, w1.name, signer(SEED_W1), 100),
        cosign(other, w2.name, signer(SEED_W2), 100)])
    with pytest.raises(SignatureError, match=w2.name):
        verify_checkpoint(note, log_verifier(), [w1, w2], quorum=1)


def test_a_log_key_used_as_a_cosigner_is_not_counted() -> None:
    # the same Ed25519 key as a note signer (type 0x01) and as a cosigner (0x04) has
    # different key hashes: a note signature is never taken for a cosignature
    as_witness = NoteVerifier(ORIGIN, ED25519, signer(SEED_W1).verify_key)
    note = signed_checkpoint().with_signatures([sign_note(TEXT, ORIGIN, signer(SEED_W1))])
    with pytest.raises(SignatureError):
        verify_checkpoint(note, log_verifier(), [as_witness], quorum=1)


def test_a_checkpoint_of_another_origin_is_malformed() -> None:
    text = Checkpoint("schakel/audit/elders", 7, ROOT).text()
    note = Note(text, (sign_note(text, ORIGIN, signer(SEED_LOG)),))
    with pytest.raises(MalformedError):
        verify_checkpoint(note, log_verifier(), [], quorum=0)


# --- properties -----------------------------------------------------------------------------

NAME_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x2FF,
                           blacklist_characters="+\x7f\x85\xa0")
NAMES = st.text(NAME_CHARS, min_size=1, max_size=40)
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f",
                           min_codepoint=0x20) | st.just("\n")


@st.composite
def notes(draw: st.DrawFn) -> Note:
    body = draw(st.text(TEXT_CHARS, max_size=200)) + "\n"
    sigs = draw(st.lists(st.builds(NoteSignature, NAMES, st.binary(min_size=4, max_size=4),
                                   st.binary(min_size=1, max_size=80)),
                         min_size=1, max_size=MAX_SIGNATURES))
    return Note(body, tuple(sigs))


@given(notes())
@settings(max_examples=200, deadline=None)
def test_parse_of_format_round_trips(note: Note) -> None:
    assert parse_note(note.format()) == note
    assert parse_note(note.format().encode("utf-8")) == note


@given(NAMES.filter(lambda n: "\n" not in n), st.integers(0, (1 << 64) - 1),
       st.binary(min_size=32, max_size=32),
       st.lists(st.text(TEXT_CHARS.filter(lambda c: c != "\n"), min_size=1, max_size=20),
                max_size=3))
@settings(max_examples=200, deadline=None)
def test_checkpoint_text_round_trips(origin: str, size: int, root: bytes,
                                     extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert parse_checkpoint(cp.text()) == cp


@given(st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")))
@settings(max_examples=300, deadline=None)
def test_parse_note_raises_only_malformed_error(data: bytes) -> None:
    for candidate in (data, data + "\n\n\u2014 a AAAAAA==\n".encode()):
        try:
            parse_note(candidate)
        except MalformedError:
            pass


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_parse_checkpoint_and_parse_vkey_raise_only_malformed_error(text: str) -> None:
    for fn, arg in ((parse_checkpoint, text), (parse_checkpoint, text + "\n"),
                    (parse_note, text), (parse_vkey, text), (parse_vkey, f"a+{text}"),
                    (parse_checkpoint, f"o\n{text}\nAAAA\n")):
        try:
            fn(arg)
        except MalformedError:
            pass


@given(st.binary(min_size=1, max_size=2000))
@settings(max_examples=200, deadline=None)
def test_a_mutated_signed_checkpoint_raises_only_protocol_errors(noise: bytes) -> None:
    data = bytearray(signed_checkpoint().with_signatures(
        [cosign(TEXT, "w1.example", signer(SEED_W1), 5)]).format().encode())
    for i, b in enumerate(noise[: len(noise) // 2 * 2: 2]):
        data[noise[2 * i + 1] * 7 % len(data)] = b
    try:
        note = parse_note(bytes(data))
        verify_checkpoint(note, log_verifier(), [witness("w1.example", SEED_W1)], quorum=1)
    except (MalformedError, SignatureError):
        pass
