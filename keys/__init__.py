"""Key management for Schakel partners and coordinators (docs/protocol.md §4).

* :mod:`schakel.keys.partner`     -- :class:`PartnerKeys` (signer + box key), :class:`PublicKeys`
* :mod:`schakel.keys.keystore`    -- the encrypted keystore file ``schakel-keystore/v1``
* :mod:`schakel.keys.passphrase`  -- :func:`passphrase_from` (environment or prompt)
* :mod:`schakel.keys.fingerprint` -- human fingerprints compared at the covenant ceremony
* :mod:`schakel.keys.bundle`      -- the self-signed ``key-bundle``
* :mod:`schakel.keys.rotation`    -- ``key-rotation`` (signed by old and new key)
* :mod:`schakel.keys.chain`       -- fingerprint -> genesis -> rotations -> membership verification
* :mod:`schakel.keys.certify`     -- the coordinator's builders for genesis, membership, revocation

This package never imports ``nacl``; all primitives come from :mod:`schakel.protocol.crypto`.
"""

from schakel.keys.bundle import KeyBundle, make_key_bundle, verify_key_bundle
from schakel.keys.certify import (
    issue_membership, issue_policy, make_genesis, new_network_id, revoke_membership,
)
from schakel.keys.chain import (
    CoordinatorKey,
    Member,
    Revocation,
    VerifiedGenesis,
    VerifiedPolicy,
    follow_policies,
    verify_genesis,
    verify_membership,
    verify_revocation,
)
from schakel.keys.fingerprint import Fingerprint, fingerprint
from schakel.keys.keystore import (
    KdfParams,
    KeystoreInfo,
    KeystoreKey,
    decrypt_keystore,
    derive_keystore_key,
    encrypt_keystore,
    load_keystore,
    parse_keystore_info,
    read_keystore_info,
    save_keystore,
    unlock_keystore_key,
)
from schakel.keys.partner import PartnerKeys, PublicKeys
from schakel.keys.passphrase import passphrase_from
from schakel.keys.rotation import Rotation, rotate, verify_rotation, verify_rotation_record

__all__ = [
    "PartnerKeys", "PublicKeys",
    "KdfParams", "KeystoreInfo", "KeystoreKey", "encrypt_keystore", "decrypt_keystore",
    "derive_keystore_key", "parse_keystore_info", "save_keystore", "load_keystore",
    "read_keystore_info", "unlock_keystore_key", "passphrase_from",
    "Fingerprint", "fingerprint",
    "KeyBundle", "make_key_bundle", "verify_key_bundle",
    "Rotation", "rotate", "verify_rotation", "verify_rotation_record",
    "CoordinatorKey", "VerifiedGenesis", "VerifiedPolicy", "Member", "Revocation",
    "verify_genesis", "verify_membership", "verify_revocation", "follow_policies",
    "new_network_id", "make_genesis", "issue_membership", "issue_policy", "revoke_membership",
]
