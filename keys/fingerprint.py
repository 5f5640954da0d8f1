"""Human fingerprints of signing keys, compared aloud at the covenant ceremony, and of
a server's pair of public keys, compared when a network is founded (docs/protocol.md §4.3).

Derivation::

    digest = BLAKE2b-320(key="schakel/v1/fingerprint", data=raw 32-byte Ed25519 public key)
    group_i = int.from_bytes(digest[5*i : 5*i+5], "big") mod 100000     (i = 0..7)
    text    = the eight groups as 5-digit zero-padded decimals, joined by single spaces

A server's fingerprint is the same digits over both of its keys at once::

    digest = BLAKE2b-320(key="schakel/v1/server-fingerprint",
                         data=raw 32-byte log key (Ed25519) || raw 32-byte gate key (X25519))

One text for the pair, because the coordinator writes both keys into the genesis: a
fingerprint of one key alone would let whoever answers ``GET /v1/server`` keep that key and
swap the other.

Eight groups of five digits are 40 decimal digits, about 132.9 bits; the bias of
``2**40 mod 100000`` is below 2**-23 per group.  This follows Signal's safety
numbers (5-byte chunks, mod 100000) and is keyed for domain separation from
every other BLAKE2b use (key ids, blind indexes).
"""

from __future__ import annotations

import re

from schakel.protocol.crypto import BoxPublicKey, VerifyKey, constant_time_equal, keyed_hash
from schakel.protocol.errors import MalformedError, UntrustedKeyError

#: BLAKE2b key separating fingerprints from every other keyed hash.
FINGERPRINT_DOMAIN = b"schakel/v1/fingerprint"
#: BLAKE2b key of a server's fingerprint (its log and gate key together).
SERVER_FINGERPRINT_DOMAIN = b"schakel/v1/server-fingerprint"
GROUPS = 8
GROUP_DIGITS = 5
GROUP_BYTES = 5
DIGITS = GROUPS * GROUP_DIGITS  # 40
#: Longest text :meth:`Fingerprint.parse` looks at (digits plus generous separators).
MAX_TEXT_CHARS = 256

_DIGITS = re.compile(r"[0-9]{%d}" % DIGITS)
_SEPARATORS = re.compile(r"[\s\-]+")


class Fingerprint:
    """A 40-digit fingerprint of an Ed25519 signing key.

    ``str(fp)`` is the grouped form ``"12345 67890 ..."``; :meth:`parse` reads it
    back with any whitespace or dash grouping.  Equality is constant time.
    Immutable.
    """

    __slots__ = ("_digits",)
    _digits: str

    def __init__(self, digits: str) -> None:
        if not isinstance(digits, str) or not _DIGITS.fullmatch(digits):
            raise MalformedError(f"a fingerprint is exactly {DIGITS} decimal digits")
        object.__setattr__(self, "_digits", digits)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Fingerprint is immutable")

    @classmethod
    def of(cls, verify_key: VerifyKey | BoxPublicKey) -> "Fingerprint":
        """The fingerprint of ``verify_key`` (same as :func:`fingerprint`).  A server's
        X25519 gate key is read aloud too, so a :class:`BoxPublicKey` is accepted: the
        derivation is over the raw 32 bytes either way (protocol.md §4.3)."""
        if not isinstance(verify_key, (VerifyKey, BoxPublicKey)):
            raise MalformedError("a fingerprint is taken of an Ed25519 or X25519 public key")
        return cls._of_digest(keyed_hash(FINGERPRINT_DOMAIN, verify_key.raw,
                                         size=GROUPS * GROUP_BYTES))

    @classmethod
    def of_server(cls, log: VerifyKey, gate: BoxPublicKey) -> "Fingerprint":
        """The fingerprint of a server: its log key and gate key together, in that order
        (protocol.md §4.3).  ``schakel server init`` prints it; the coordinator's client
        requires it before it writes the two keys into a genesis."""
        if not isinstance(log, VerifyKey) or not isinstance(gate, BoxPublicKey):
            raise MalformedError("a server fingerprint is taken of its Ed25519 log key and "
                                 "its X25519 gate key")
        return cls._of_digest(keyed_hash(SERVER_FINGERPRINT_DOMAIN, log.raw + gate.raw,
                                         size=GROUPS * GROUP_BYTES))

    @classmethod
    def _of_digest(cls, digest: bytes) -> "Fingerprint":
        groups = (int.from_bytes(digest[i:i + GROUP_BYTES], "big") % 10**GROUP_DIGITS
                  for i in range(0, len(digest), GROUP_BYTES))
        return cls("".join(f"{g:0{GROUP_DIGITS}d}" for g in groups))

    @classmethod
    def parse(cls, text: object) -> "Fingerprint":
        """Read a fingerprint typed or pasted by a person.

        Accepts ASCII digits separated by any whitespace and/or dashes
        (``"12345 67890 ..."``, ``"12345-67890-..."``, no separators at all);
        anything else, or a digit count other than 40, is a :class:`MalformedError`.
        """
        if not isinstance(text, str):
            raise MalformedError("fingerprint: expected text")
        if len(text) > MAX_TEXT_CHARS:
            raise MalformedError("fingerprint: text too long")
        digits = _SEPARATORS.sub("", text)
        if not _DIGITS.fullmatch(digits):
            raise MalformedError(f"fingerprint: expected {DIGITS} digits 0-9 in groups "
                                 f"separated by spaces or dashes")
        return cls(digits)

    @property
    def digits(self) -> str:
        """The 40 digits without separators."""
        return self._digits

    @property
    def groups(self) -> tuple[str, ...]:
        """The eight 5-digit groups, in reading order."""
        return tuple(self._digits[i:i + GROUP_DIGITS] for i in range(0, DIGITS, GROUP_DIGITS))

    def matches(self, verify_key: VerifyKey) -> None:
        """Return None if ``verify_key`` has this fingerprint, else raise
        :class:`UntrustedKeyError`.  Constant-time comparison."""
        if not self == Fingerprint.of(verify_key):
            raise UntrustedKeyError(
                f"key {verify_key.key_id} does not have the expected fingerprint",
                details={"key_id": verify_key.key_id})

    def matches_server(self, log: VerifyKey, gate: BoxPublicKey) -> None:
        """Return None if this is the fingerprint of the server holding ``log`` and
        ``gate``, else raise :class:`UntrustedKeyError`.  Constant-time comparison."""
        if not self == Fingerprint.of_server(log, gate):
            raise UntrustedKeyError(
                f"the server's log key {log.key_id} and gate key {gate.key_id} do not have "
                f"the expected server fingerprint",
                details={"log_key_id": log.key_id, "gate_key_id": gate.key_id})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fingerprint):
            return NotImplemented
        return constant_time_equal(self._digits.encode("ascii"), other._digits.encode("ascii"))

    def __hash__(self) -> int:
        return hash(self._digits)

    def __str__(self) -> str:
        return " ".join(self.groups)

    def __repr__(self) -> str:
        return f"Fingerprint({str(self)!r})"


def fingerprint(verify_key: VerifyKey) -> Fingerprint:
    """The human fingerprint of an Ed25519 signing key."""
    return Fingerprint.of(verify_key)


__all__ = ["Fingerprint", "fingerprint", "FINGERPRINT_DOMAIN", "SERVER_FINGERPRINT_DOMAIN"]
