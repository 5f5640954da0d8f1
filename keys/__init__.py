"""Key management for Schakel partners and coordinators (docs/protocol.md §4).

* :mod:`keys.partner`     -- :class:`PartnerKeys` (signer + box key), :class:`PublicKeys`
* :mod:`keys.keystore`    -- the encrypted keystore file ``schakel-keystore/v1``
* :mod:`keys.passphrase`  -- :func:`passphrase_from` (environment or prompt)
* :mod:`keys.fingerprint` -- human fingerprints compared at the covenant ceremony
* :mod:`keys.bundle`      -- the self-signed ``key-bundle``
* :mod:`keys.rotation`    -- ``key-rotation`` (signed by old and new key)
* :mod:`keys.chain`       -- fingerprint -> genesis -> rotations -> membership verification
* :mod:`keys.certify`     -- the coordinator's builders for genesis, membership, revocation

This package never imports ``nacl``; all primitives come from :mod:`protocol.crypto`.
"""

from keys.bundle import KeyBundle, make_key_bundle, verify_key_bundle
from keys.certify import issue_membership, make_genesis, new_network_id, revoke_membership
from keys.chain import (
    CoordinatorKey,
    Member,
    Revocation,
    VerifiedGenesis,
    verify_genesis,
    verify_membership,
    verify_revocation,
)
from keys.fingerprint import Fingerprint, fingerprint
from keys.keystore import (
    KdfParams,
    KeystoreInfo,
    decrypt_keystore,
    encrypt_keystore,
    load_keystore,
    parse_keystore_info,
    read_keystore_info,
    save_keystore,
)
from keys.partner import PartnerKeys, PublicKeys
from keys.passphrase import passphrase_from
from keys.rotation import Rotation, rotate, verify_rotation, verify_rotation_record

__all__ = [
    "PartnerKeys", "PublicKeys",
    "KdfParams", "KeystoreInfo", "encrypt_keystore", "decrypt_keystore", "parse_keystore_info",
    "save_keystore", "load_keystore", "read_keystore_info", "passphrase_from",
    "Fingerprint", "fingerprint",
    "KeyBundle", "make_key_bundle", "verify_key_bundle",
    "Rotation", "rotate", "verify_rotation", "verify_rotation_record",
    "CoordinatorKey", "VerifiedGenesis", "Member", "Revocation",
    "verify_genesis", "verify_membership", "verify_revocation",
    "new_network_id", "make_genesis", "issue_membership", "revoke_membership",
]
