"""The only module that imports ``nacl`` (libsodium through PyNaCl).

Everything else in Schakel uses the role-named types and functions here, so the
set of primitives is small and auditable (design §3, docs/protocol.md §2):

* Ed25519 detached signatures          -> :class:`Signer`, :class:`VerifyKey`
* X25519 sealed boxes (crypto_box_seal) -> :class:`BoxSecretKey`, :class:`BoxPublicKey`
* XChaCha20-Poly1305-IETF AEAD          -> :func:`aead_encrypt`, :func:`aead_decrypt`
* keyed BLAKE2b                         -> :func:`keyed_hash`, :func:`key_id`
* Argon2id                              -> :func:`argon2id`
* XSalsa20-Poly1305 secretbox           -> :func:`secretbox_encrypt`, :func:`secretbox_decrypt`
* SHA-256 (Merkle tree, Content-Digest) -> :func:`sha256`

Failures are mapped to :mod:`schakel.protocol.errors`; no libsodium exception leaks.
Secret material is never part of a ``repr``.  Python cannot wipe memory: see
docs/known-limitations.md.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, TypeVar

import nacl.bindings as _b
import nacl.exceptions
import nacl.hash
import nacl.public
import nacl.pwhash
import nacl.secret
import nacl.signing
import nacl.utils

from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import DecryptionError, MalformedError, SignatureError

KEY_BYTES = 32
SIGNATURE_BYTES = 64
AEAD_NONCE_BYTES = _b.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
AEAD_TAG_BYTES = _b.crypto_aead_xchacha20poly1305_ietf_ABYTES  # 16
SEAL_OVERHEAD = _b.crypto_box_SEALBYTES  # 48
SECRETBOX_NONCE_BYTES = nacl.secret.SecretBox.NONCE_SIZE  # 24
ARGON2ID_SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES  # 16
ARGON2ID_OPSLIMIT_INTERACTIVE = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
ARGON2ID_MEMLIMIT_INTERACTIVE = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
ARGON2ID_OPSLIMIT_MODERATE = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
ARGON2ID_MEMLIMIT_MODERATE = nacl.pwhash.argon2id.MEMLIMIT_MODERATE

#: BLAKE2b key that domain-separates key identifiers from every other hash.
_KEY_ID_DOMAIN = b"schakel/v1/key-id"


def _require_bytes(value: object, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise MalformedError(f"{what}: expected bytes, got {type(value).__name__}",
                             details={"field": what})
    if length is not None and len(value) != length:
        raise MalformedError(f"{what}: expected {length} bytes, got {len(value)}",
                             details={"field": what})
    return bytes(value)


def random_bytes(size: int) -> bytes:
    """Cryptographically secure random bytes from libsodium."""
    return nacl.utils.random(size)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two secrets without leaking where they differ."""
    return hmac.compare_digest(a, b)


def sha256(data: bytes) -> bytes:
    """SHA-256 (FIPS 180-4); used for the RFC 6962 tree and RFC 9530 digests."""
    return hashlib.sha256(data).digest()


def keyed_hash(key: bytes, data: bytes, *, size: int = 32) -> bytes:
    """Keyed BLAKE2b (RFC 7693) with a 1..64-byte key."""
    key = _require_bytes(key, "hash key")
    if not 1 <= len(key) <= nacl.hash.BLAKE2B_KEYBYTES_MAX:
        raise MalformedError("hash key must be 1..64 bytes")
    return nacl.hash.blake2b(_require_bytes(data, "data"), digest_size=size, key=key,
                             encoder=nacl.encoding.RawEncoder)


def key_id(public_key: bytes) -> str:
    """The identifier of a public key on the wire: unpadded base64url of
    BLAKE2b-256(key="schakel/v1/key-id", data=raw public key) — docs/protocol.md §2.1."""
    return _key_id(_require_bytes(public_key, "public key", KEY_BYTES))


@lru_cache(maxsize=4096)
def _key_id(public_key: bytes) -> str:
    # Remembered: a server resolves and compares the same few thousand keys' ids on every
    # request (a pure function of 32 public bytes; nothing secret is kept).
    return b64e(keyed_hash(_KEY_ID_DOMAIN, public_key))


# --------------------------------------------------------------------------- signatures


_P = TypeVar("_P", bound="_PublicKey")


@dataclass(frozen=True, slots=True)
class _PublicKey:
    """32 raw bytes of a public key, with its wire form and key id."""

    raw: bytes
    KIND: ClassVar[str] = "public key"

    def __post_init__(self) -> None:
        _require_bytes(self.raw, self.KIND, KEY_BYTES)

    @classmethod
    def from_b64(cls: type[_P], text: object, what: str | None = None) -> _P:
        return cls(b64d(text, length=KEY_BYTES, what=what or cls.KIND))

    def b64(self) -> str:
        return b64e(self.raw)

    @property
    def key_id(self) -> str:
        return key_id(self.raw)


@dataclass(frozen=True, slots=True)
class VerifyKey(_PublicKey):
    """An Ed25519 public key.  ``verify`` returns None or raises :class:`SignatureError`."""

    KIND: ClassVar[str] = "Ed25519 public key"

    def verify(self, message: bytes, signature: bytes) -> None:
        message = _require_bytes(message, "message")
        if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_BYTES:
            raise SignatureError("signature must be 64 bytes")
        try:
            # What nacl.signing.VerifyKey(raw).verify does, without building the key object
            # on every call (raw is 32 bytes, checked when this key was made).
            _b.crypto_sign_open(bytes(signature) + message, self.raw)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
            raise SignatureError("signature does not verify") from None


class Signer:
    """An Ed25519 signing key.  ``keys/`` hands these out, never raw private keys."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        self._key = nacl.signing.SigningKey(_require_bytes(seed, "Ed25519 seed", KEY_BYTES))

    @classmethod
    def generate(cls) -> "Signer":
        return cls(random_bytes(KEY_BYTES))

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(bytes(self._key.verify_key))

    @property
    def key_id(self) -> str:
        return self.verify_key.key_id

    def sign(self, message: bytes) -> bytes:
        """A detached 64-byte Ed25519 signature over ``message``."""
        return self._key.sign(_require_bytes(message, "message")).signature

    def export_seed(self) -> bytes:
        """The 32-byte seed, for the encrypted keystore only (keys/keystore.py)."""
        return bytes(self._key)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id})"


# --------------------------------------------------------------------------- sealed boxes


@dataclass(frozen=True, slots=True)
class BoxPublicKey(_PublicKey):
    """An X25519 public key; anyone may ``seal`` to it (crypto_box_seal)."""

    KIND: ClassVar[str] = "X25519 public key"

    def seal(self, plaintext: bytes) -> bytes:
        """Anonymous public-key encryption: ephemeral X25519 + XSalsa20-Poly1305."""
        return nacl.public.SealedBox(nacl.public.PublicKey(self.raw)).encrypt(
            _require_bytes(plaintext, "plaintext"))


class BoxSecretKey:
    """An X25519 private key; opens sealed boxes addressed to its public key."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = nacl.public.PrivateKey(_require_bytes(secret, "X25519 secret key", KEY_BYTES))

    @classmethod
    def generate(cls) -> "BoxSecretKey":
        return cls(random_bytes(KEY_BYTES))

    @property
    def public_key(self) -> BoxPublicKey:
        return BoxPublicKey(bytes(self._key.public_key))

    def unseal(self, ciphertext: bytes) -> bytes:
        ciphertext = _require_bytes(ciphertext, "sealed box")
        if len(ciphertext) < SEAL_OVERHEAD:
            raise DecryptionError("cannot decrypt")
        try:
            return nacl.public.SealedBox(self._key).decrypt(ciphertext)
        except (nacl.exceptions.CryptoError, ValueError):
            raise DecryptionError("cannot decrypt") from None

    def export_secret(self) -> bytes:
        """The 32-byte secret, for the encrypted keystore only (keys/keystore.py)."""
        return bytes(self._key)

    def __repr__(self) -> str:
        return f"BoxSecretKey(public_key_id={self.public_key.key_id})"


# --------------------------------------------------------------------------- symmetric keys

_K = TypeVar("_K", bound="SymmetricKey")


class SymmetricKey:
    """A 32-byte symmetric key.  Subclasses name its role, so a case key can
    never be passed where an epoch key is expected without a type error."""

    __slots__ = ("_raw",)
    role: ClassVar[str] = "symmetric"

    def __init__(self, raw: bytes) -> None:
        self._raw = _require_bytes(raw, f"{self.role} key", KEY_BYTES)

    @classmethod
    def generate(cls: type[_K]) -> _K:
        return cls(random_bytes(KEY_BYTES))

    def export(self) -> bytes:
        """The raw key, to be wrapped (sealed or AEAD-encrypted) and nothing else."""
        return self._raw

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self)
                and constant_time_equal(self._raw, other._raw))

    def __hash__(self) -> int:
        # Not key_id(): that one is memoised for public keys, and a secret must never be
        # kept as a cache key.
        return hash((type(self), keyed_hash(_KEY_ID_DOMAIN, self._raw, size=16)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>)"


class EpochKey(SymmetricKey):
    """Network epoch key: held by core members, wraps per-case anonymous keys."""

    role = "epoch"


class CaseKey(SymmetricKey):
    """Case anonymous key: encrypts a case's anonymous-layer events."""

    role = "case"


class ClassKey(SymmetricKey):
    """Identity class key: encrypts one disclosure class of one case."""

    role = "class"


class MatchKey(SymmetricKey):
    """Network match key: derives blind-index tokens for duplicate detection."""

    role = "match"


# --------------------------------------------------------------------------- AEAD


def aead_encrypt(key: SymmetricKey, plaintext: bytes, associated_data: bytes,
                 *, nonce: bytes | None = None) -> bytes:
    """XChaCha20-Poly1305-IETF; returns ``nonce || ciphertext || tag``.

    ``nonce`` is random unless given (test vectors only): 192-bit random nonces
    never repeat in practice.
    """
    if not isinstance(key, SymmetricKey):
        raise MalformedError("AEAD key must be a SymmetricKey")
    nonce = random_bytes(AEAD_NONCE_BYTES) if nonce is None else _require_bytes(
        nonce, "AEAD nonce", AEAD_NONCE_BYTES)
    ct = _b.crypto_aead_xchacha20poly1305_ietf_encrypt(
        _require_bytes(plaintext, "plaintext"), _require_bytes(associated_data, "associated data"),
        nonce, key.export())
    return nonce + ct


def aead_decrypt(key: SymmetricKey, blob: bytes, associated_data: bytes) -> bytes:
    """Open ``nonce || ciphertext || tag``; any failure is one :class:`DecryptionError`."""
    if not isinstance(key, SymmetricKey):
        raise MalformedError("AEAD key must be a SymmetricKey")
    blob = _require_bytes(blob, "ciphertext")
    associated_data = _require_bytes(associated_data, "associated data")
    if len(blob) < AEAD_NONCE_BYTES + AEAD_TAG_BYTES:
        raise DecryptionError("cannot decrypt")
    try:
        return _b.crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[AEAD_NONCE_BYTES:], associated_data, blob[:AEAD_NONCE_BYTES], key.export())
    except (nacl.exceptions.CryptoError, ValueError):
        raise DecryptionError("cannot decrypt") from None


# --------------------------------------------------------------------------- passwords


def argon2id(secret: bytes, salt: bytes, *, opslimit: int, memlimit: int,
             size: int = KEY_BYTES) -> bytes:
    """Argon2id (RFC 9106) key derivation through libsodium's crypto_pwhash."""
    secret = _require_bytes(secret, "passphrase")
    salt = _require_bytes(salt, "Argon2id salt", ARGON2ID_SALT_BYTES)
    if not (isinstance(opslimit, int) and isinstance(memlimit, int)):
        raise MalformedError("Argon2id limits must be integers")
    if not (nacl.pwhash.argon2id.OPSLIMIT_MIN <= opslimit <= nacl.pwhash.argon2id.OPSLIMIT_MAX):
        raise MalformedError("Argon2id opslimit out of range")
    if not (nacl.pwhash.argon2id.MEMLIMIT_MIN <= memlimit <= 1 << 32):
        raise MalformedError("Argon2id memlimit out of range")
    return nacl.pwhash.argon2id.kdf(size, secret, salt, opslimit=opslimit, memlimit=memlimit)


def secretbox_encrypt(key: bytes, plaintext: bytes, *, nonce: bytes | None = None) -> bytes:
    """XSalsa20-Poly1305 secretbox; returns ``nonce || ciphertext``."""
    box = nacl.secret.SecretBox(_require_bytes(key, "secretbox key", KEY_BYTES))
    nonce = random_bytes(SECRETBOX_NONCE_BYTES) if nonce is None else _require_bytes(
        nonce, "secretbox nonce", SECRETBOX_NONCE_BYTES)
    return bytes(box.encrypt(_require_bytes(plaintext, "plaintext"), nonce))


def secretbox_decrypt(key: bytes, blob: bytes) -> bytes:
    box = nacl.secret.SecretBox(_require_bytes(key, "secretbox key", KEY_BYTES))
    blob = _require_bytes(blob, "secretbox")
    if len(blob) < SECRETBOX_NONCE_BYTES + box.MACBYTES:
        raise DecryptionError("cannot decrypt")
    try:
        return box.decrypt(blob)
    except (nacl.exceptions.CryptoError, ValueError):
        raise DecryptionError("cannot decrypt") from None


__all__ = [
    "KEY_BYTES", "SIGNATURE_BYTES", "AEAD_NONCE_BYTES", "AEAD_TAG_BYTES", "SEAL_OVERHEAD",
    "random_bytes", "constant_time_equal", "sha256", "keyed_hash", "key_id",
    "VerifyKey", "Signer", "BoxPublicKey", "BoxSecretKey",
    "SymmetricKey", "EpochKey", "CaseKey", "ClassKey", "MatchKey",
    "aead_encrypt", "aead_decrypt", "argon2id", "secretbox_encrypt", "secretbox_decrypt",
]
