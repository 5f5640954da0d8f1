"""The encrypted keystore file ``schakel-keystore/v1`` (docs/protocol.md §4.2).

A keystore is one JSON document::

    {
      "format": "schakel-keystore/v1",
      "name": "Buurtteam Noord",
      "key_id": "<key id of public.sign>",
      "public": {"sign": "<b64url>", "box": "<b64url>"},
      "kdf": {"alg": "argon2id13", "opslimit": 3, "memlimit": 268435456, "salt": "<16 bytes>"},
      "secret": {"alg": "xsalsa20poly1305", "box": "<b64url(nonce || tag || ciphertext)>"}
    }

Everything but ``secret`` is the *header*, readable without the passphrase
(``schakel keys show``).  The secretbox key is Argon2id(passphrase, salt,
opslimit, memlimit); the box holds the canonical JSON of::

    {"header": b64url(BLAKE2b-256(key="schakel/v1/keystore-header", canonical_json(header))),
     "sign_seed": "<32 bytes>", "box_secret": "<32 bytes>"}

After decryption the header hash is compared (constant time) and the public
keys are recomputed from the seeds, so a header whose public keys, name or KDF
parameters were swapped is detected.  KDF parameters below libsodium's
INTERACTIVE level are refused before any work is done (no downgrade), and so
are parameters above SENSITIVE (no memory exhaustion by a planted file).

The secretbox key itself, with the salt it belongs to, is a :class:`KeystoreKey`
(:func:`unlock_keystore_key`): it opens that keystore again without Argon2id, which is
what the key agent keeps for a session (``keys/agent.py``, ADR 0023).

The document's shape is ``protocol/schemas/keystore.json`` (its ``$defs/payload``
is the encrypted payload); this module adds the KDF bounds and the cryptography.

The byte-level functions (:func:`encrypt_keystore`, :func:`decrypt_keystore`,
:func:`parse_keystore_info`) are pure; :func:`save_keystore`,
:func:`load_keystore` and :func:`read_keystore_info` add the file I/O: atomic
writes (temporary file in the same directory, fsync, rename), mode 0600, and
no overwrite unless asked.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from schakel.protocol import schema
from schakel.protocol.canonical import canonical_json, parse_json
from schakel.protocol.crypto import (
    ARGON2ID_MEMLIMIT_INTERACTIVE,
    ARGON2ID_MEMLIMIT_MODERATE,
    ARGON2ID_OPSLIMIT_INTERACTIVE,
    ARGON2ID_OPSLIMIT_MODERATE,
    ARGON2ID_SALT_BYTES,
    KEY_BYTES,
    SECRETBOX_NONCE_BYTES,
    argon2id,
    constant_time_equal,
    keyed_hash,
    random_bytes,
    secretbox_decrypt,
    secretbox_encrypt,
)
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import DecryptionError, KeystoreError, MalformedError

from schakel.keys.fingerprint import Fingerprint
from schakel.keys.partner import PartnerKeys, PublicKeys

FORMAT = "schakel-keystore/v1"
KDF_ALG = "argon2id13"
SECRET_ALG = "xsalsa20poly1305"
#: BLAKE2b key for the header hash sealed inside the secretbox.
HEADER_DOMAIN = b"schakel/v1/keystore-header"
#: A keystore file is small; anything larger is not one.
MAX_FILE_BYTES = 64 * 1024
#: Shortest passphrase :func:`encrypt_keystore` accepts (characters, after NFC).
MIN_PASSPHRASE_CHARS = 8
#: Upper bounds on KDF parameters read from a file: libsodium's SENSITIVE level.
MAX_OPSLIMIT = 16
MAX_MEMLIMIT = 1 << 30  # 1 GiB

#: secretbox overhead: 24-byte nonce + 16-byte Poly1305 tag.
_BOX_OVERHEAD = SECRETBOX_NONCE_BYTES + 16


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost parameters of a keystore.

    ``KdfParams.MODERATE`` (opslimit 3, memlimit 256 MiB) is the default for new
    keystores; ``KdfParams.INTERACTIVE`` (2, 64 MiB) is the minimum accepted,
    on write and on read.
    """

    opslimit: int
    memlimit: int

    INTERACTIVE: ClassVar["KdfParams"]
    MODERATE: ClassVar["KdfParams"]

    def check(self) -> None:
        """Raise :class:`KeystoreError` unless INTERACTIVE <= params <= SENSITIVE."""
        for name, value, low, high in (
                ("opslimit", self.opslimit, ARGON2ID_OPSLIMIT_INTERACTIVE, MAX_OPSLIMIT),
                ("memlimit", self.memlimit, ARGON2ID_MEMLIMIT_INTERACTIVE, MAX_MEMLIMIT)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise KeystoreError(f"keystore KDF {name} must be an integer")
            if value < low:
                raise KeystoreError(
                    f"keystore KDF {name} {value} is below the minimum {low} "
                    f"(Argon2id INTERACTIVE); refusing a weakened keystore",
                    details={"field": f"kdf.{name}"})
            if value > high:
                raise KeystoreError(f"keystore KDF {name} {value} exceeds the maximum {high}",
                                    details={"field": f"kdf.{name}"})


KdfParams.INTERACTIVE = KdfParams(ARGON2ID_OPSLIMIT_INTERACTIVE, ARGON2ID_MEMLIMIT_INTERACTIVE)
KdfParams.MODERATE = KdfParams(ARGON2ID_OPSLIMIT_MODERATE, ARGON2ID_MEMLIMIT_MODERATE)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeystoreInfo:
    """The cleartext header of a keystore: what ``schakel keys show`` prints.

    Unauthenticated until the keystore is unlocked; do not trust it for anything
    but display.
    """

    name: str
    key_id: str
    public: PublicKeys
    kdf: KdfParams
    salt: bytes

    @property
    def fingerprint(self) -> Fingerprint:
        """The fingerprint of the (claimed) signing key."""
        return Fingerprint.of(self.public.sign)


@dataclass(frozen=True, slots=True, eq=False)
class KeystoreKey:
    """The secretbox key that Argon2id derived from one keystore's passphrase and salt.

    It opens that keystore (and no other: ``salt`` names which) without running
    Argon2id again, which is what the key agent keeps for a session (ADR 0023).
    It is as secret as the keys it opens; its ``repr`` never shows it.
    """

    salt: bytes
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.salt) != ARGON2ID_SALT_BYTES or len(self.secret) != KEY_BYTES:
            raise KeystoreError("a keystore key is a 16-byte salt and a 32-byte key")


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    # Text is NFC-normalised so the same passphrase typed on another system
    # (composed vs decomposed accents) derives the same key.
    if isinstance(passphrase, str):
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    if isinstance(passphrase, (bytes, bytearray)):
        return bytes(passphrase)
    raise KeystoreError("passphrase must be text")


def _header(*, name: str, public: PublicKeys, kdf: KdfParams, salt: bytes) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "name": name,
        "key_id": public.key_id,
        "public": public.to_json(),
        "kdf": {"alg": KDF_ALG, "opslimit": kdf.opslimit, "memlimit": kdf.memlimit,
                "salt": b64e(salt)},
    }


def _header_hash(header: Mapping[str, Any]) -> str:
    return b64e(keyed_hash(HEADER_DOMAIN, canonical_json(dict(header))))


def encrypt_keystore(keys: PartnerKeys, passphrase: str | bytes, *, name: str,
                     kdf: KdfParams = KdfParams.MODERATE, salt: bytes | None = None,
                     nonce: bytes | None = None) -> bytes:
    """Serialise ``keys`` as an encrypted keystore document (UTF-8 JSON bytes).

    ``salt`` and ``nonce`` are random unless given (test vectors only).
    """
    if not isinstance(keys, PartnerKeys):
        raise TypeError("encrypt_keystore needs PartnerKeys")
    try:
        schema.validate_def("common", "printable_text", name)
    except MalformedError as exc:
        raise MalformedError(f"name: {exc.message}", details={"field": "name"}) from None
    kdf.check()
    secret = _passphrase_bytes(passphrase)
    chars = len(unicodedata.normalize("NFC", passphrase)) if isinstance(passphrase, str) \
        else len(secret)
    if chars < MIN_PASSPHRASE_CHARS:
        raise KeystoreError(f"passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
    salt = random_bytes(ARGON2ID_SALT_BYTES) if salt is None else salt
    header = _header(name=name, public=keys.public, kdf=kdf, salt=salt)
    payload = canonical_json({
        "header": _header_hash(header),
        "sign_seed": b64e(keys.signer.export_seed()),
        "box_secret": b64e(keys.box_secret.export_secret()),
    })
    box_key = argon2id(secret, salt, opslimit=kdf.opslimit, memlimit=kdf.memlimit)
    box = secretbox_encrypt(box_key, payload, nonce=nonce)
    document = {**header, "secret": {"alg": SECRET_ALG, "box": b64e(box)}}
    # Pretty-printed for people who open the file; key order as in the spec.
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _parse(data: bytes) -> tuple[KeystoreInfo, dict[str, Any], bytes]:
    """Validate a keystore document: (info, header dict, secretbox bytes)."""
    try:
        doc = parse_json(data, max_bytes=MAX_FILE_BYTES)
    except MalformedError as exc:
        raise KeystoreError(f"not a Schakel keystore (damaged or truncated JSON: {exc.message})"
                            ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else None
        raise KeystoreError(f"not a Schakel keystore: format tag must be {FORMAT!r}, got {got!r}",
                            details={"field": "format"})
    try:
        schema.validate("keystore", doc)
        public = PublicKeys.from_json(doc["public"])
        salt = b64d(doc["kdf"]["salt"], length=ARGON2ID_SALT_BYTES, what="kdf.salt")
        box = b64d(doc["secret"]["box"], max_length=MAX_FILE_BYTES, what="secret.box")
    except MalformedError as exc:
        raise KeystoreError(f"damaged keystore: {exc.message}", details=exc.details) from None
    name, claimed_id = doc["name"], doc["key_id"]
    kdf = KdfParams(doc["kdf"]["opslimit"], doc["kdf"]["memlimit"])
    kdf.check()
    if claimed_id != public.key_id:
        raise KeystoreError("damaged keystore: key_id does not match the public signing key",
                            details={"field": "key_id"})
    header = {k: v for k, v in doc.items() if k != "secret"}
    info = KeystoreInfo(name=name, key_id=claimed_id, public=public, kdf=kdf, salt=salt)
    return info, header, box


def parse_keystore_info(data: bytes) -> KeystoreInfo:
    """The cleartext header of a keystore document, validated; no passphrase needed."""
    return _parse(data)[0]


def decrypt_keystore(data: bytes, secret: str | bytes | KeystoreKey) -> PartnerKeys:
    """Unlock a keystore document with its passphrase (one Argon2id run) or with the
    :class:`KeystoreKey` an earlier unlock derived (no Argon2id).

    Raises :class:`KeystoreError` for a wrong passphrase or damaged ciphertext
    (one message: they cannot be told apart), for a key derived for another
    keystore, for a header that does not belong to the encrypted part, and for
    malformed or downgraded files.
    """
    info, header, box = _parse(data)
    if len(box) < _BOX_OVERHEAD:
        raise KeystoreError("damaged keystore: secret.box is truncated")
    key = secret if isinstance(secret, KeystoreKey) else _derive(info, secret)
    if not constant_time_equal(key.salt, info.salt):
        raise KeystoreError("this keystore key was derived for another keystore (its salt "
                            "differs: the keystore was replaced or its passphrase changed)")
    try:
        plaintext = secretbox_decrypt(key.secret, box)
    except DecryptionError:
        raise KeystoreError("wrong passphrase or damaged keystore") from None
    try:
        payload = parse_json(plaintext, max_bytes=MAX_FILE_BYTES)
        schema.validate_def("keystore", "payload", payload)
        sign_seed = b64d(payload["sign_seed"], length=KEY_BYTES, what="sign_seed")
        box_secret = b64d(payload["box_secret"], length=KEY_BYTES, what="box_secret")
        header_hash = b64d(payload["header"], length=KEY_BYTES, what="header")
    except MalformedError as exc:
        raise KeystoreError(f"damaged keystore: encrypted part is malformed ({exc.message})"
                            ) from None
    if not constant_time_equal(header_hash, b64d(_header_hash(header))):
        raise KeystoreError("keystore header was altered: its public keys, name or KDF "
                            "parameters do not belong to the encrypted keys")
    keys = PartnerKeys.from_secrets(sign_seed, box_secret)
    if keys.public != info.public:
        raise KeystoreError("keystore header was altered: public keys do not match the "
                            "encrypted keys")
    return keys


def _derive(info: KeystoreInfo, passphrase: str | bytes) -> KeystoreKey:
    """Argon2id(passphrase, salt): the one slow step of unlocking (256 MiB by default)."""
    return KeystoreKey(info.salt, argon2id(_passphrase_bytes(passphrase), info.salt,
                                           opslimit=info.kdf.opslimit,
                                           memlimit=info.kdf.memlimit))


def derive_keystore_key(data: bytes, passphrase: str | bytes) -> KeystoreKey:
    """The :class:`KeystoreKey` of a keystore document, checked: it must open the
    keystore (:class:`KeystoreError` for a wrong passphrase, as :func:`decrypt_keystore`)."""
    key = _derive(parse_keystore_info(data), passphrase)
    decrypt_keystore(data, key)
    return key


# --------------------------------------------------------------------------- files


def _read(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeystoreError(f"no keystore at {p}", details={"path": str(p)}) from None
    except IsADirectoryError:
        raise KeystoreError(f"{p} is a directory, not a keystore", details={"path": str(p)}
                            ) from None
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {p}: {exc.strerror}",
                            details={"path": str(p)}) from None
    if len(data) > MAX_FILE_BYTES:
        raise KeystoreError(f"{p} is too large to be a keystore", details={"path": str(p)})
    return data


def read_keystore_info(path: str | os.PathLike[str]) -> KeystoreInfo:
    """The cleartext header of the keystore at ``path`` (no passphrase)."""
    return parse_keystore_info(_read(path))


def load_keystore(path: str | os.PathLike[str], secret: str | bytes | KeystoreKey) -> PartnerKeys:
    """Unlock the keystore at ``path`` with its passphrase or a :class:`KeystoreKey`.
    Never writes to the file."""
    return decrypt_keystore(_read(path), secret)


def unlock_keystore_key(path: str | os.PathLike[str], passphrase: str | bytes) -> KeystoreKey:
    """The checked :class:`KeystoreKey` of the keystore at ``path`` (one Argon2id run)."""
    return derive_keystore_key(_read(path), passphrase)


def save_keystore(path: str | os.PathLike[str], keys: PartnerKeys, passphrase: str | bytes, *,
                  name: str, kdf: KdfParams = KdfParams.MODERATE,
                  overwrite: bool = False) -> KeystoreInfo:
    """Encrypt ``keys`` and write them to ``path`` atomically with mode 0600.

    The document is written to a temporary file in the same directory, flushed
    and fsynced, then linked (or, with ``overwrite=True``, renamed) into place,
    and the directory is fsynced.  Without ``overwrite`` an existing file at
    ``path`` is a :class:`KeystoreError` and is left untouched.
    """
    target = Path(path)
    data = encrypt_keystore(keys, passphrase, name=name, kdf=kdf)
    directory = target.parent if str(target.parent) else Path(".")
    if not overwrite and target.exists():
        raise KeystoreError(f"a keystore already exists at {target}; refusing to overwrite",
                            details={"path": str(target)})
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_new(tmp, target)
        _fsync_dir(directory)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return parse_keystore_info(data)


def _link_new(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` only if ``target`` does not exist."""
    try:
        os.link(tmp, target)  # atomic "create if absent"
    except FileExistsError:
        raise KeystoreError(f"a keystore already exists at {target}; refusing to overwrite",
                            details={"path": str(target)}) from None
    except OSError:
        # File system without hard links: check, then rename (a narrow race).
        if target.exists():
            raise KeystoreError(f"a keystore already exists at {target}; refusing to "
                                f"overwrite", details={"path": str(target)}) from None
        os.replace(tmp, target)
        return
    tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass  # some file systems cannot fsync a directory
    finally:
        os.close(dfd)


__all__ = [
    "FORMAT", "KdfParams", "KeystoreInfo", "KeystoreKey", "MIN_PASSPHRASE_CHARS",
    "encrypt_keystore", "decrypt_keystore", "derive_keystore_key", "parse_keystore_info",
    "save_keystore", "load_keystore", "read_keystore_info", "unlock_keystore_key",
]
