"""Context-bound encryption: AEAD contexts, sealed and gated envelopes, blind
indexes (design §3, docs/protocol.md §5).

Every ciphertext names what it is *for*, so the server cannot move it:

* AEAD ciphertexts carry associated data
  ``"schakel/v1/aead" || canonical_json({network, case, layer, class, version, object})``.
  An event encrypted for case A, or for event 1, does not open as case B or event 2.
* Sealed envelopes (``crypto_box_seal``) carry a canonical JSON payload that
  names its type, network, case, recipient (and class and version where they
  apply); the opener compares them with what it expected before it believes
  the key inside.
* Gated envelopes wrap a class key twice: ``seal(gate_pk, {context, inner:
  seal(member_pk, {context, key})})``.  The server can remove only the outer
  seal (and only after the audit entry is written); the member can open only
  the inner one.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from schakel.protocol import schema
from schakel.protocol.canonical import canonical_json, parse_json
from schakel.protocol.crypto import (
    KEY_BYTES, BoxPublicKey, BoxSecretKey, CaseKey, ClassKey, EpochKey, MatchKey,
    SymmetricKey, aead_decrypt, aead_encrypt, argon2id, keyed_hash,
)
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import ContextMismatchError, DecryptionError, MalformedError

AEAD_DOMAIN = b"schakel/v1/aead"
Layer = Literal["anonymous", "identity", "case-key"]
_LAYERS = ("anonymous", "identity", "case-key")
#: Upper bound on a sealed payload's plaintext (keys and a little context).
MAX_SEALED_PAYLOAD = 4096
#: A bemoeizorg justification is UTF-8 text of at most this many bytes before sealing.
JUSTIFICATION_MAX_BYTES = 12000
#: Upper bound on a sealed justification payload (context + text): its sealed box fits
#: the 16384 base64url characters of bemoeizorg-invocation.json (12288 bytes - 48).
MAX_JUSTIFICATION_PAYLOAD = 12240


@dataclass(frozen=True, kw_only=True, slots=True)
class AeadContext:
    """What one AEAD ciphertext is bound to (docs/protocol.md §3.2).

    ``layer`` says which key hierarchy it belongs to; ``version`` is the case-key
    version (anonymous layer, case-key wrap) or the identity version (identity
    layer); ``object`` is the event id for anonymous events, ``epoch-<n>`` for a
    wrapped case key and empty for identity records (one per class and version).
    """

    network: str
    case: str
    layer: Layer
    cls: str = ""
    version: int
    object: str = ""

    def __post_init__(self) -> None:
        for name in ("network", "case", "cls", "object"):
            if not isinstance(getattr(self, name), str) or len(getattr(self, name)) > 64:
                raise MalformedError(f"AEAD context: {name} must be a string of at most 64 chars")
        if self.layer not in _LAYERS:
            raise MalformedError(f"AEAD context: unknown layer {self.layer!r}")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise MalformedError("AEAD context: version must be a positive integer")
        if (self.layer == "identity") != bool(self.cls):
            raise MalformedError("AEAD context: class is required for, and only for, the identity layer")

    def associated_data(self) -> bytes:
        return AEAD_DOMAIN + canonical_json({
            "network": self.network, "case": self.case, "layer": self.layer,
            "class": self.cls, "version": self.version, "object": self.object})


def encrypt(key: SymmetricKey, plaintext: bytes, context: AeadContext,
            *, nonce: bytes | None = None) -> bytes:
    """AEAD-encrypt ``plaintext`` bound to ``context``."""
    return aead_encrypt(key, plaintext, context.associated_data(), nonce=nonce)


def decrypt(key: SymmetricKey, blob: bytes, context: AeadContext) -> bytes:
    """Open a ciphertext made for exactly ``context``; anything else is DecryptionError."""
    return aead_decrypt(key, blob, context.associated_data())


def encrypt_json(key: SymmetricKey, value: Any, context: AeadContext,
                 *, nonce: bytes | None = None) -> str:
    """Encrypt the canonical JSON of ``value``; returns base64url for the wire."""
    return b64e(encrypt(key, canonical_json(value), context, nonce=nonce))


def decrypt_json(key: SymmetricKey, text: str, context: AeadContext, *,
                 max_bytes: int = 1 << 16) -> Any:
    blob = b64d(text, max_length=max_bytes + 64, what="ciphertext")
    return parse_json(decrypt(key, blob, context), max_bytes=max_bytes)


# --------------------------------------------------------------------------- case keys


def case_key_context(network: str, case: str, *, epoch: int, version: int) -> AeadContext:
    return AeadContext(network=network, case=case, layer="case-key", version=version,
                       object=f"epoch-{epoch}")


def wrap_case_key(epoch_key: EpochKey, case_key: CaseKey, *, network: str, case: str,
                  epoch: int, version: int, nonce: bytes | None = None) -> str:
    """The case header's ``wrapped_case_key``: the case key under the epoch key."""
    ctx = case_key_context(network, case, epoch=epoch, version=version)
    return b64e(encrypt(epoch_key, case_key.export(), ctx, nonce=nonce))


def unwrap_case_key(epoch_key: EpochKey, wrapped: str, *, network: str, case: str,
                    epoch: int, version: int) -> CaseKey:
    ctx = case_key_context(network, case, epoch=epoch, version=version)
    return CaseKey(decrypt(epoch_key, b64d(wrapped, max_length=128, what="wrapped_case_key"), ctx))


def event_context(network: str, case: str, event: str, *, version: int) -> AeadContext:
    return AeadContext(network=network, case=case, layer="anonymous", version=version, object=event)


def identity_context(network: str, case: str, cls: str, *, version: int) -> AeadContext:
    return AeadContext(network=network, case=case, layer="identity", cls=cls, version=version)


# --------------------------------------------------------------------------- sealed payloads


def seal_json(recipient: BoxPublicKey, payload_type: str, fields: Mapping[str, Any], *,
              max_bytes: int = MAX_SEALED_PAYLOAD) -> str:
    """Seal ``{"type": payload_type, **fields}`` to ``recipient``; base64url for the wire."""
    payload = {"type": payload_type, **fields}
    data = canonical_json(payload)
    if len(data) > max_bytes:
        raise MalformedError("sealed payload too large")
    return b64e(recipient.seal(data))


def open_json(secret: BoxSecretKey, sealed: str, payload_type: str,
              expect: Mapping[str, Any], *, max_bytes: int = MAX_SEALED_PAYLOAD) -> dict[str, Any]:
    """Open a sealed payload and check it is the ``payload_type`` it should be and
    that every field in ``expect`` has exactly the expected value.

    A payload that does not open raises :class:`DecryptionError`; one that opens
    but is not a JSON object with a ``type`` raises :class:`MalformedError`; one
    made for another type or context raises :class:`ContextMismatchError`.
    """
    blob = b64d(sealed, max_length=max_bytes + 64, what="sealed")
    plain = parse_json(secret.unseal(blob), max_bytes=max_bytes)
    if not isinstance(plain, dict) or not isinstance(plain.get("type"), str):
        raise MalformedError("sealed payload is not a JSON object with a type")
    if plain["type"] != payload_type:
        raise ContextMismatchError(f"sealed payload is not a {payload_type}")
    for name, value in expect.items():
        if plain.get(name) != value:
            raise ContextMismatchError(f"sealed {payload_type} was made for another {name}",
                                       details={"field": name})
    return plain


def _key_from(plain: Mapping[str, Any], kind: type[SymmetricKey], field: str = "key") -> Any:
    return kind(b64d(plain.get(field), length=KEY_BYTES, what=field))


def seal_case_key(recipient: BoxPublicKey, case_key: CaseKey, *, network: str, case: str,
                  version: int, recipient_id: str) -> str:
    """A case key for a shell partner the case is shared with (design §4.6)."""
    return seal_json(recipient, "case-key", {"network": network, "case": case, "version": version,
                                             "recipient": recipient_id, "key": b64e(case_key.export())})


def open_case_key(secret: BoxSecretKey, sealed: str, *, network: str, case: str, version: int,
                  recipient_id: str) -> CaseKey:
    plain = open_json(secret, sealed, "case-key", {"network": network, "case": case,
                                                   "version": version, "recipient": recipient_id})
    key: CaseKey = _key_from(plain, CaseKey)
    return key


def seal_epoch_keys(recipient: BoxPublicKey, epoch_key: EpochKey, match_key: MatchKey, *,
                    network: str, epoch: int, recipient_id: str) -> str:
    """The sealed entry of an ``epoch-key-distribution`` for one core member: an
    ``epoch-key-payload`` (schema ``epoch-key-payload.json``, checked before sealing)."""
    fields = {"network": network, "epoch": epoch, "recipient": recipient_id,
              "epoch_key": b64e(epoch_key.export()), "match_key": b64e(match_key.export())}
    schema.validate("epoch-key-payload", {"type": "epoch-key-payload", **fields})
    return seal_json(recipient, "epoch-key-payload", fields)


def open_epoch_keys(secret: BoxSecretKey, sealed: str, *, network: str, epoch: int,
                    recipient_id: str) -> tuple[EpochKey, MatchKey]:
    """The keys of a sealed ``epoch-key-payload`` made for this network, epoch and
    recipient; the payload must fit ``epoch-key-payload.json`` (MalformedError)."""
    plain = open_json(secret, sealed, "epoch-key-payload",
                      {"network": network, "epoch": epoch, "recipient": recipient_id})
    schema.validate("epoch-key-payload", plain)
    return _key_from(plain, EpochKey, "epoch_key"), _key_from(plain, MatchKey, "match_key")


def seal_justification(recipient: BoxPublicKey, text: str, *, network: str, invocation: str,
                       case: str, auditor: str) -> str:
    """A bemoeizorg justification (UTF-8, 1..12000 bytes) sealed to one auditor, bound
    to its network, invocation, case and auditor (design §4.5)."""
    size = len(text.encode("utf-8")) if isinstance(text, str) else 0
    if not 1 <= size <= JUSTIFICATION_MAX_BYTES:
        raise MalformedError(f"justification must be 1..{JUSTIFICATION_MAX_BYTES} bytes of text",
                             details={"field": "justification"})
    fields = {"network": network, "invocation": invocation, "case": case, "auditor": auditor,
              "text": text}
    return seal_json(recipient, "bemoeizorg-justification", fields,
                     max_bytes=MAX_JUSTIFICATION_PAYLOAD)


def open_justification(secret: BoxSecretKey, sealed: str, *, network: str, invocation: str,
                       case: str, auditor: str) -> str:
    """The text of a sealed justification made for exactly this context."""
    plain = open_json(secret, sealed, "bemoeizorg-justification",
                      {"network": network, "invocation": invocation, "case": case,
                       "auditor": auditor}, max_bytes=MAX_JUSTIFICATION_PAYLOAD)
    text = plain.get("text")
    if not isinstance(text, str) or set(plain) != {"type", "network", "invocation", "case",
                                                   "auditor", "text"}:
        raise MalformedError("sealed justification is malformed")
    return text


#: The purpose text an audit entry carries sealed (a consent's purpose, a grant's or a
#: share's reason): 1..500 characters, as the longest of them (protocol.md §A.1).
PURPOSE_MAX_CHARS = 500


def seal_purpose(recipient: BoxPublicKey, text: str, *, network: str, index: int,
                 action: str, reader: str) -> str:
    """The purpose of an audited act sealed to one reader (an auditor or the coordinator),
    bound to the entry's network, index and action and to the reader."""
    if not isinstance(text, str) or not 1 <= len(text) <= PURPOSE_MAX_CHARS:
        raise MalformedError(f"purpose must be 1..{PURPOSE_MAX_CHARS} characters",
                             details={"field": "purpose"})
    return seal_json(recipient, "audit-purpose", {"network": network, "index": index,
                                                  "action": action, "reader": reader,
                                                  "text": text})


def open_purpose(secret: BoxSecretKey, sealed: str, *, network: str, index: int, action: str,
                 reader: str) -> str:
    """The text of a sealed purpose made for exactly this entry and reader."""
    plain = open_json(secret, sealed, "audit-purpose", {"network": network, "index": index,
                                                        "action": action, "reader": reader})
    text = plain.get("text")
    if not isinstance(text, str) or set(plain) != {"type", "network", "index", "action",
                                                   "reader", "text"}:
        raise MalformedError("sealed purpose is malformed")
    return text


# --------------------------------------------------------------------------- gated envelopes


@dataclass(frozen=True, kw_only=True, slots=True)
class GateContext:
    """Where a gated envelope belongs: one class key of one case version, for one member."""

    network: str
    case: str
    cls: str
    version: int
    recipient: str

    def fields(self) -> dict[str, Any]:
        return {"network": self.network, "case": self.case, "class": self.cls,
                "version": self.version, "recipient": self.recipient}


def make_gated(gate: BoxPublicKey, member: BoxPublicKey, class_key: ClassKey,
               context: GateContext) -> str:
    """``seal(gate_pk, {gate context, inner: seal(member_pk, {context, key})})``."""
    inner = seal_json(member, "class-key", {**context.fields(), "key": b64e(class_key.export())})
    return seal_json(gate, "gate", {**context.fields(), "inner": inner})


def open_gate(gate_secret: BoxSecretKey, blob: str, context: GateContext) -> str:
    """Server side of a release: remove the gate seal of an envelope stored under
    ``context`` and return the inner envelope for the member.  The server calls
    this only after the audit entry is written (docs/protocol.md §3.4)."""
    plain = open_json(gate_secret, blob, "gate", context.fields())
    inner = plain.get("inner")
    if not isinstance(inner, str):
        raise MalformedError("gated envelope without inner envelope")
    return inner


def open_class_key(member_secret: BoxSecretKey, inner: str, context: GateContext) -> ClassKey:
    """Member side: open the released inner envelope, checking its context."""
    plain = open_json(member_secret, inner, "class-key", context.fields())
    key: ClassKey = _key_from(plain, ClassKey)
    return key


# --------------------------------------------------------------------------- blind indexes

BlindKind = Literal["bsn", "name-dob"]


def normalise_bsn(bsn: str) -> str:
    """Digits only, left-padded to 9 (an 8-digit BSN lost its leading zero)."""
    digits = "".join(ch for ch in str(bsn) if ch.isdigit())
    if not 8 <= len(digits) <= 9:
        raise MalformedError("a BSN has 8 or 9 digits")
    return digits.zfill(9)


def normalise_name(family_name: str) -> str:
    """Case-folded ASCII letters of the family name, diacritics removed
    ("Dijkstra-Émile" -> "dijkstraemile"); prefixes (tussenvoegsels) are kept."""
    decomposed = unicodedata.normalize("NFKD", family_name)
    letters = "".join(ch for ch in decomposed.casefold() if "a" <= ch <= "z")
    if not letters:
        raise MalformedError("family name has no letters")
    return letters


def blind_index(match_key: MatchKey, kind: BlindKind, normalised: str, *, opslimit: int,
                memlimit: int, size: int) -> bytes:
    """A truncated blind-index token (design §4.8): Argon2id over ``kind:value``
    with a salt derived from the network match key.  Truncation to ``size`` bytes
    makes collisions possible on purpose: a match is a hint for the coordinator."""
    if kind not in ("bsn", "name-dob"):
        raise MalformedError(f"unknown blind-index kind {kind!r}")
    if not 4 <= size <= 16:
        raise MalformedError("blind-index tokens are 4..16 bytes")
    salt = keyed_hash(match_key.export(), b"schakel/v1/blind-index-salt/" + kind.encode(), size=16)
    return argon2id(f"{kind}:{normalised}".encode(), salt, opslimit=opslimit,
                    memlimit=memlimit)[:size]


__all__ = [
    "AEAD_DOMAIN", "AeadContext", "encrypt", "decrypt", "encrypt_json", "decrypt_json",
    "case_key_context", "wrap_case_key", "unwrap_case_key", "event_context", "identity_context",
    "seal_json", "open_json", "seal_case_key", "open_case_key", "seal_epoch_keys",
    "open_epoch_keys", "seal_justification", "open_justification", "JUSTIFICATION_MAX_BYTES",
    "PURPOSE_MAX_CHARS", "seal_purpose", "open_purpose",
    "GateContext", "make_gated", "open_gate", "open_class_key",
    "normalise_bsn", "normalise_name", "blind_index", "DecryptionError",
]
