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

The names below are imported from their modules on first use (PEP 562): a command that
only reads a keystore does not load the coordinator's certificates and chains.
``fingerprint`` is imported now, being also the name of its module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from schakel.keys.fingerprint import Fingerprint, fingerprint

if TYPE_CHECKING:
    from schakel.keys.bundle import KeyBundle, make_key_bundle, verify_key_bundle
    from schakel.keys.certify import (
        issue_membership, issue_policy, make_genesis, new_network_id, revoke_membership,
    )
    from schakel.keys.chain import (
        CoordinatorKey, Member, Revocation, VerifiedGenesis, VerifiedPolicy, follow_policies,
        verify_genesis, verify_membership, verify_revocation,
    )
    from schakel.keys.keystore import (
        KdfParams, KeystoreInfo, KeystoreKey, decrypt_keystore, derive_keystore_key,
        encrypt_keystore, load_keystore, parse_keystore_info, read_keystore_info, save_keystore,
        unlock_keystore_key,
    )
    from schakel.keys.partner import PartnerKeys, PublicKeys
    from schakel.keys.passphrase import passphrase_from
    from schakel.keys.rotation import Rotation, rotate, verify_rotation, verify_rotation_record

#: Each public name imported on first use, and the module that defines it.
_WHERE = {
    **dict.fromkeys(("KeyBundle", "make_key_bundle", "verify_key_bundle"), "bundle"),
    **dict.fromkeys(("issue_membership", "issue_policy", "make_genesis", "new_network_id",
                     "revoke_membership"), "certify"),
    **dict.fromkeys(("CoordinatorKey", "Member", "Revocation", "VerifiedGenesis",
                     "VerifiedPolicy", "follow_policies", "verify_genesis", "verify_membership",
                     "verify_revocation"), "chain"),
    **dict.fromkeys(("KdfParams", "KeystoreInfo", "KeystoreKey", "decrypt_keystore",
                     "derive_keystore_key", "encrypt_keystore", "load_keystore",
                     "parse_keystore_info", "read_keystore_info", "save_keystore",
                     "unlock_keystore_key"), "keystore"),
    **dict.fromkeys(("PartnerKeys", "PublicKeys"), "partner"),
    "passphrase_from": "passphrase",
    **dict.fromkeys(("Rotation", "rotate", "verify_rotation", "verify_rotation_record"),
                    "rotation"),
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
