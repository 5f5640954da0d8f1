"""Signed notes, checkpoints and cosignatures of the C2SP transparency-log specifications
(docs/protocol.md §17).

- **Signed note** (c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank line, and
  one or more lines ``— <key name> base64(key hash || signature)``.  A key is known by its
  name *and* its 4-byte key hash, ``SHA-256(name || 0x0A || type || public key)[:4]``;
  signatures of unknown keys are ignored, a known key's signature that fails rejects the
  note.  Ed25519 note signatures (type ``0x01``) sign the note text itself.
- **Checkpoint** (c2sp.org/tlog-checkpoint): a note text of at least three lines, the log's
  origin, the tree size in decimal and the base64 root hash, then optional extension lines.
- **Cosignature** (c2sp.org/tlog-cosignature, Ed25519 type ``0x04``): a witness's timestamped
  signature over ``"cosignature/v1\\ntime <t>\\n" || checkpoint text``, carried as a note
  signature line whose bytes are ``key hash || uint64 timestamp || signature``.

Base64 here is the standard alphabet with padding (RFC 4648 §4), as the specifications say,
not the base64url of the rest of the protocol; decoding accepts only the canonical form.
Pure: no I/O and no clock (callers pass times in).  Failures raise
:class:`~schakel.protocol.errors.MalformedError` (a text that is not a note, checkpoint or
key) or :class:`~schakel.protocol.errors.SignatureError` (nothing verifies, or a known key's
signature does not).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schakel.protocol.crypto import SIGNATURE_BYTES, Signer, VerifyKey
from schakel.protocol.errors import MalformedError, SignatureError
from schakel.protocol.merkle import HASH_SIZE

#: Signature type of an Ed25519 note signature (c2sp.org/signed-note).
ED25519 = 0x01
#: Signature type of a timestamped Ed25519 cosignature (c2sp.org/tlog-cosignature).
COSIGNATURE_V1 = 0x04
#: The most bytes a note may have; the specification's minimum of 16 signatures fits easily.
MAX_NOTE_BYTES = 16 * 1024
#: The most signature lines a note may carry (the specification asks for at least 16).
MAX_SIGNATURES = 32
#: The longest key name or origin accepted.
MAX_NAME = 255
#: The largest cosignature timestamp (c2sp.org/tlog-cosignature: at most 2^63 - 1).
MAX_TIMESTAMP = (1 << 63) - 1

_DASH = "\u2014"
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_COSIGNATURE_HEADER = b"cosignature/v1\n"


def b64_std(data: bytes) -> str:
    """Standard, padded base64 (RFC 4648 §4)."""
    return base64.b64encode(bytes(data)).decode("ascii")


def b64_std_decode(text: str, what: str, *, length: int | None = None) -> bytes:
    """Decode standard padded base64, refusing every form but the canonical one."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise MalformedError(f"{what}: not base64", details={"field": what}) from None
    if b64_std(data) != text:
        raise MalformedError(f"{what}: not canonical base64", details={"field": what})
    if length is not None and len(data) != length:
        raise MalformedError(f"{what}: expected {length} bytes, got {len(data)}",
                             details={"field": what})
    return data


def _is_space(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Zs"


def check_name(name: object, what: str = "key name") -> str:
    """A key name or origin: 1..255 characters, no Unicode space, no ``+``, no control."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise MalformedError(f"{what}: expected 1..{MAX_NAME} characters", details={"field": what})
    if any(_is_space(ch) or ch == "+" or ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        raise MalformedError(f"{what}: no spaces, plus signs or control characters",
                             details={"field": what})
    return name


def key_hash(name: str, sig_type: int, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || type || public key)[:4]``, the key hash (key ID) that names a
    note signer together with its name (c2sp.org/signed-note, tlog-cosignature)."""
    check_name(name)
    if not 0 <= sig_type <= 0xFF:
        raise MalformedError("signature type: expected one byte")
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type])
                          + bytes(public_key)).digest()[:4]


# --------------------------------------------------------------------------- notes

@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the signer's name, its 4-byte key hash, and the signature bytes
    that follow the key hash (for a cosignature, the timestamp and the signature)."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH} {self.name} {b64_std(self.key_hash + self.signature)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note text (ending in a newline) and its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def format(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_signatures(self, more: Iterable[NoteSignature]) -> "Note":
        """The note with ``more`` signature lines after its own (a line already present,
        byte for byte, is not repeated)."""
        lines = list(self.signatures)
        for sig in more:
            if sig not in lines:
                lines.append(sig)
        if len(lines) > MAX_SIGNATURES:
            raise MalformedError(f"a note carries at most {MAX_SIGNATURES} signatures")
        return Note(self.text, tuple(lines))


def _check_text(text: str, what: str) -> None:
    for ch in text:
        if (ord(ch) < 0x20 and ch != "\n") or ch == "\x7f":
            raise MalformedError(f"{what}: control characters other than newline",
                                 details={"field": what})


def parse_signature_line(line: str) -> NoteSignature:
    """One ``— <name> <base64>`` line without its newline."""
    if not line.startswith(_DASH + " "):
        raise MalformedError("a note signature line starts with an em dash and a space")
    name, sep, sig = line[2:].partition(" ")
    if not sep:
        raise MalformedError("a note signature line has a key name and a signature")
    check_name(name)
    raw = b64_std_decode(sig, "note signature")
    if len(raw) < 5:
        raise MalformedError("a note signature holds a 4-byte key hash and a signature")
    return NoteSignature(name, raw[:4], raw[4:])


def parse_note(data: bytes | str) -> Note:
    """Parse a signed note (at most :data:`MAX_NOTE_BYTES`, valid UTF-8, no control
    characters but newlines); the text is separated from the signatures by its last blank
    line.  Nothing is verified here."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedError("a note is UTF-8") from None
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedError("a note is text")
    if len(data) > MAX_NOTE_BYTES:
        raise MalformedError(f"a note is at most {MAX_NOTE_BYTES} bytes")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError("a note is UTF-8") from None
    _check_text(text, "note")
    if not text.endswith("\n"):
        raise MalformedError("a note ends in a newline")
    split = text.rfind("\n\n")
    if split < 0:
        raise MalformedError("a note has a blank line between its text and its signatures")
    body, sigs = text[:split + 1], text[split + 2:]
    lines = sigs[:-1].split("\n") if sigs else []
    if not lines:
        raise MalformedError("a note has at least one signature")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError(f"a note carries at most {MAX_SIGNATURES} signatures")
    return Note(body, tuple(parse_signature_line(line) for line in lines))


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A key a verifier trusts: its name, signature type and Ed25519 public key.  Ed25519
    (:data:`ED25519`) signs the note text; a cosigner (:data:`COSIGNATURE_V1`) signs
    ``cosignature/v1``, a time line and the text."""

    name: str
    sig_type: int
    key: VerifyKey

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.sig_type not in (ED25519, COSIGNATURE_V1):
            raise MalformedError("only Ed25519 note signatures and v1 cosignatures are known")

    @property
    def key_hash(self) -> bytes:
        return key_hash(self.name, self.sig_type, self.key.raw)

    def matches(self, sig: NoteSignature) -> bool:
        return sig.name == self.name and sig.key_hash == self.key_hash

    def verify(self, text: str, sig: NoteSignature) -> int | None:
        """Verify ``sig`` (a line of this key) over ``text``: None for a note signature, the
        timestamp for a cosignature.  ``SignatureError`` if it does not verify."""
        message = text.encode("utf-8")
        if self.sig_type == ED25519:
            self.key.verify(message, sig.signature)
            return None
        if len(sig.signature) != 8 + SIGNATURE_BYTES:
            raise SignatureError("a cosignature is an 8-byte time and a 64-byte signature")
        timestamp = int.from_bytes(sig.signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise SignatureError("a cosignature's time is above 2^63 - 1")
        self.key.verify(cosigned_message(text, timestamp), sig.signature[8:])
        return timestamp

    def vkey(self) -> str:
        """The verifier key string ``<name>+<hex key hash>+base64(type || key)``."""
        return f"{self.name}+{self.key_hash.hex()}+{b64_std(bytes([self.sig_type]) + self.key.raw)}"


def parse_vkey(text: object) -> NoteVerifier:
    """Parse a verifier key ``<name>+<hex key hash>+base64(type || public key)``; the key hash
    must be the one the name, type and key give."""
    if not isinstance(text, str) or len(text) > MAX_NAME + 80:
        raise MalformedError("a verifier key is a short string")
    # The name has no "+", but the base64 key may (golang.org/x/mod's "TEST+7997405c+AQcC+…").
    parts = text.split("+", 2)
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise MalformedError("a verifier key is <name>+<8 hex digits>+<base64 key>")
    name, hex_hash, b64 = parts
    raw = b64_std_decode(b64, "verifier key", length=33)
    verifier = NoteVerifier(name, raw[0], VerifyKey(raw[1:]))
    if verifier.key_hash.hex() != hex_hash:
        raise MalformedError("the verifier key's key hash does not match its name and key")
    return verifier


def verify_note(note: Note, verifiers: Iterable[NoteVerifier]) -> dict[str, int | None]:
    """Check ``note`` against the known ``verifiers``: every line of a known key (name and
    key hash) must verify (``SignatureError`` otherwise), lines of unknown keys are ignored,
    and at least one known key must have signed.  Returns ``{name: timestamp or None}`` of
    the keys whose signatures verified."""
    known = list(verifiers)
    verified: dict[str, int | None] = {}
    for sig in note.signatures:
        for verifier in known:
            if verifier.matches(sig):
                try:
                    verified[verifier.name] = verifier.verify(note.text, sig)
                except SignatureError:
                    raise SignatureError(f"the signature of {verifier.name} does not verify",
                                         details={"signer": verifier.name}) from None
    if not verified:
        raise SignatureError("no known key signed the note")
    return verified


def sign_note(text: str, name: str, signer: Signer) -> NoteSignature:
    """An Ed25519 note signature by ``signer`` under the key name ``name``."""
    _check_text(text, "note text")
    if not text.endswith("\n"):
        raise MalformedError("a note text ends in a newline")
    return NoteSignature(name, key_hash(name, ED25519, signer.verify_key.raw),
                         signer.sign(text.encode("utf-8")))


# --------------------------------------------------------------------------- checkpoints

@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The note text of a transparency log's tree head: origin, size, root hash, and
    extension lines (none in what Schakel signs)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or \
                not 0 <= self.size <= (1 << 64) - 1:
            raise MalformedError("checkpoint size: expected 0..2^64-1")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise MalformedError("checkpoint root: expected a 32-byte hash")
        for line in self.extensions:
            if not line or "\n" in line:
                raise MalformedError("checkpoint extension lines are non-empty single lines")
            _check_text(line, "checkpoint extension")

    def text(self) -> str:
        lines = [self.origin, str(self.size), b64_std(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint's note text (c2sp.org/tlog-checkpoint)."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedError("a checkpoint is text ending in a newline")
    _check_text(text, "checkpoint")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines):
        raise MalformedError("a checkpoint has at least three non-empty lines")
    origin, size, root, *extensions = lines
    if not _DECIMAL.fullmatch(size):
        raise MalformedError("checkpoint size: a decimal without leading zeroes",
                             details={"field": "size"})
    return Checkpoint(origin, int(size), b64_std_decode(root, "checkpoint root",
                                                        length=HASH_SIZE), tuple(extensions))


# --------------------------------------------------------------------------- cosignatures

def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a v1 Ed25519 cosignature signs: ``cosignature/v1``, ``time <t>`` and the
    checkpoint's note text."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or \
            not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedError("cosignature time: expected 0..2^63-1")
    return _COSIGNATURE_HEADER + f"time {timestamp}\n".encode("ascii") + text.encode("utf-8")


def cosign(text: str, name: str, signer: Signer, timestamp: int) -> NoteSignature:
    """A v1 cosignature by the witness ``signer`` (named ``name``) on the checkpoint note
    text ``text`` at POSIX time ``timestamp``."""
    parse_checkpoint(text)
    signature = signer.sign(cosigned_message(text, timestamp))
    return NoteSignature(name, key_hash(name, COSIGNATURE_V1, signer.verify_key.raw),
                         timestamp.to_bytes(8, "big") + signature)


@dataclass(frozen=True, slots=True)
class Witnessed:
    """A checkpoint whose log signature verified and the witnesses whose cosignatures did,
    with each cosignature's time."""

    checkpoint: Checkpoint
    cosigned: Mapping[str, int]


def verify_checkpoint(note: Note, log: NoteVerifier, witnesses: Iterable[NoteVerifier], *,
                      quorum: int) -> Witnessed:
    """Verify a cosigned checkpoint: signed by the log's key (``SignatureError``), its text a
    checkpoint whose origin is the log key's name (``MalformedError``), and cosigned by at
    least ``quorum`` of ``witnesses`` (``SignatureError`` naming how many did).  Lines of
    other keys are ignored; a known key's line that does not verify is a ``SignatureError``."""
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != log.name:
        raise MalformedError("the checkpoint's origin is not the log's", details={"field": "origin"})
    if log.sig_type != ED25519:
        raise MalformedError("a log signs its checkpoints with an Ed25519 note signature")
    cosigners = [w for w in witnesses if w.sig_type == COSIGNATURE_V1]
    verified = verify_note(note, [log, *cosigners])
    if log.name not in verified:
        raise SignatureError("the checkpoint is not signed by the log's key")
    cosigned = {name: t for name, t in verified.items() if name != log.name and t is not None}
    if len(cosigned) < quorum:
        raise SignatureError(f"{len(cosigned)} of the {quorum} witness cosignatures needed",
                             details={"cosigned": len(cosigned), "quorum": quorum})
    return Witnessed(checkpoint, cosigned)


__all__ = ["COSIGNATURE_V1", "ED25519", "MAX_NOTE_BYTES", "MAX_SIGNATURES", "Checkpoint", "Note",
           "NoteSignature", "NoteVerifier", "Witnessed", "b64_std", "b64_std_decode",
           "check_name", "cosign", "cosigned_message", "key_hash", "parse_checkpoint",
           "parse_note", "parse_signature_line", "parse_vkey", "sign_note", "verify_checkpoint",
           "verify_note"]
