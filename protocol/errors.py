"""The protocol's error tree (docs/protocol.md §9).

Every failure the protocol core can detect is a :class:`ProtocolError`.  Each
subclass names one kind of attack or mistake, carries a stable wire ``code`` and
an HTTP status *hint* that ``server/`` maps in one middleware; protocol code
never raises web exceptions.  Messages say what was wrong and where, never the
secret or the plaintext involved.
"""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """Base class: something the protocol refuses.  ``code`` is stable on the wire."""

    code = "protocol_error"
    status_hint = 400

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_wire(self) -> dict[str, Any]:
        """The JSON error shape of design §6: ``{"error": {code, message, details}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class MalformedError(ProtocolError):
    """Input that does not parse or does not fit its schema: wrong type, missing or
    unknown field, oversized value, invalid base64, wrong key length, bad JSON."""

    code = "malformed"
    status_hint = 400


class SignatureError(ProtocolError):
    """A signature that does not verify, is missing, or is made by the wrong key."""

    code = "bad_signature"
    status_hint = 401


class DecryptionError(ProtocolError):
    """An AEAD ciphertext or sealed box that does not open.  Deliberately says
    nothing about *why* (wrong key, wrong context, tampered): all decryption
    failures look the same from outside."""

    code = "decryption_failed"
    status_hint = 400


class ContextMismatchError(ProtocolError):
    """A ciphertext or envelope that opened but belongs to another case, network,
    layer, class, version or recipient than the one the caller expected."""

    code = "context_mismatch"
    status_hint = 400


class ProofError(ProtocolError):
    """A Merkle inclusion or consistency proof that does not verify."""

    code = "bad_proof"
    status_hint = 400


class DigestMismatchError(ProtocolError):
    """An HTTP ``Content-Digest`` that does not match the body (RFC 9530)."""

    code = "digest_mismatch"
    status_hint = 400


class StaleRequestError(ProtocolError):
    """A signed request whose ``created`` lies outside the allowed clock skew."""

    code = "stale_request"
    status_hint = 401


class ReplayError(ProtocolError):
    """A signed request whose nonce was seen before."""

    code = "replayed_request"
    status_hint = 401


class UntrustedKeyError(ProtocolError):
    """A key that does not chain to the configured coordinator fingerprint, or a
    membership certificate that is expired, revoked or issued for another network."""

    code = "untrusted_key"
    status_hint = 403


class PolicyViolation(ProtocolError):
    """An operation the network's policy forbids (identity on a consult, identifying
    data in the anonymous layer, ...).  Release decisions themselves are *values*
    (``schakel.protocol.policy.decide``); this is raised where the caller tried anyway."""

    code = "policy_violation"
    status_hint = 403


class NodeStoreError(ProtocolError):
    """The node store behind a ``schakel.protocol.merkle.MerkleLog`` lacks a node it must
    hold, or returned something that is not a hash: the store and the log size
    disagree.  A server fault, never caused by a client's input."""

    code = "internal_error"
    status_hint = 500


class KeystoreError(ProtocolError):
    """A keystore that cannot be opened: wrong passphrase or damaged file."""

    code = "keystore_error"
    status_hint = 400


__all__ = [
    "ProtocolError",
    "MalformedError",
    "SignatureError",
    "DecryptionError",
    "ContextMismatchError",
    "ProofError",
    "DigestMismatchError",
    "StaleRequestError",
    "ReplayError",
    "UntrustedKeyError",
    "PolicyViolation",
    "NodeStoreError",
    "KeystoreError",
]
