"""Generator for protocol/vectors/keys.json: known-answer vectors for ``keys/``.

Every secret is derived from a label, ``SHA-256("schakel test vector/" + label)``,
and Ed25519 signatures are deterministic, so rebuilding gives identical bytes;
``tests/test_keys_vectors.py`` fails if the file and the code disagree.
Regenerate after an intentional change with::

    python -m tests.vectors_keys --write
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schakel.protocol.crypto import BoxSecretKey, Signer, sha256
from schakel.protocol.encoding import b64e
from schakel.protocol.signing import signing_input

from schakel.keys.bundle import make_key_bundle
from schakel.keys.certify import issue_membership, make_genesis, revoke_membership
from schakel.keys.fingerprint import Fingerprint
from schakel.keys.keystore import KdfParams, encrypt_keystore
from schakel.keys.partner import PartnerKeys
from schakel.keys.rotation import rotate

PATH = Path(__file__).resolve().parent.parent / "protocol" / "vectors" / "keys.json"
KEYSTORE_PASSPHRASE = "correct horse battery staple"


#: The default oggz policy written out literally (docs/protocol.md §5 N.2), so the genesis
#: vector does not silently follow a change to ``default_policy``; verify_genesis builds
#: it with the policy class, so it must stay a valid policy.
POLICY: dict[str, Any] = {
    "classes": {
        "name": {"fields": ["given_names", "family_name"]},
        "address": {"fields": ["street", "house_number", "postcode", "city"]},
        "contact": {"fields": ["phone", "email"]},
        "official": {"fields": ["bsn", "date_of_birth"]},
        "care": {"fields": ["gp", "carers", "contacts"]},
    },
    "informal_classes": ["name", "address", "contact"],
    "restricted": {"official": "professional-secrecy"},
    "bemoeizorg": {"enabled": True, "grounds": ["severe-self-neglect", "housing-pollution",
                                                "danger-to-self", "danger-to-others", "nuisance"],
                   "four_eyes": True, "max_per_user_per_day": 3, "access_hours": 72},
    "anonymous_signals": True,
    "intake_rate_per_hour": 60,
    "retention": {"identity_days": 365, "anonymous_days": 730, "audit_days": 1826},
    "formal_action_reason": True,
    "blind_index": {"opslimit": 3, "memlimit": 67108864, "token_bytes": 4},
}


def secret(label: str) -> bytes:
    """The 32-byte test secret named ``label``."""
    return sha256(f"schakel test vector/{label}".encode())


def partner(label: str) -> PartnerKeys:
    """Test keys named ``label`` (``<label>/sign`` and ``<label>/box`` secrets)."""
    return PartnerKeys.from_secrets(secret(f"{label}/sign"), secret(f"{label}/box"))


def _t(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _key_entry(label: str) -> dict[str, str]:
    keys = partner(label)
    return {
        "label": label,
        "sign_seed": b64e(secret(f"{label}/sign")),
        "box_secret": b64e(secret(f"{label}/box")),
        "sign": keys.public.sign.b64(),
        "box": keys.public.box.b64(),
        "key_id": keys.key_id,
        "fingerprint": str(Fingerprint.of(keys.public.sign)),
    }


def build() -> dict[str, Any]:
    """All vectors as one JSON-ready dict."""
    coordinator = partner("coordinator")
    coordinator2 = partner("coordinator-2")
    member = partner("partner")
    server_log = Signer(secret("server/log")).verify_key
    server_gate = BoxSecretKey(secret("server/gate")).public_key
    network = b64e(secret("network")[:16])

    bundle = make_key_bundle(member, name="Buurtteam Noord", created=_t("2026-01-05T09:00:00Z"))
    genesis = make_genesis(
        coordinator, network=network, name="Signaleringsnetwerk Noord", kind="oggz",
        created=_t("2026-01-02T10:00:00Z"), server_log=server_log, server_gate=server_gate,
        covenant=sha256(b"Convenant Signaleringsnetwerk Noord (test vector)"), policy=POLICY)
    _, coordinator_rotation = rotate(coordinator, at=_t("2026-03-01T12:00:00Z"),
                                     reason="scheduled rotation", new=coordinator2)
    membership = issue_membership(
        coordinator2, network=network, kind="oggz", member=member.public,
        name="Buurtteam Noord", ring="core", party="formal",
        roles=["professional-secrecy", "bemoeizorg"], serial=1,
        valid_from=_t("2026-03-02T00:00:00Z"), valid_until=_t("2027-03-02T00:00:00Z"))
    revocation = revoke_membership(coordinator2, network=network, member=member.key_id,
                                   serial=1, at=_t("2026-06-01T08:00:00Z"),
                                   reason="left the network")
    keystore = encrypt_keystore(member, KEYSTORE_PASSPHRASE, name="Buurtteam Noord",
                                kdf=KdfParams.INTERACTIVE, salt=secret("keystore/salt")[:16],
                                nonce=secret("keystore/nonce")[:24])
    return {
        "description": "Schakel keys/ known-answer vectors (docs/protocol.md §4). Secrets are "
                       "SHA-256('schakel test vector/' + label); regenerate with "
                       "`python -m tests.vectors_keys --write`.",
        "keys": [_key_entry(label) for label in ("coordinator", "coordinator-2", "partner")],
        "key_bundle": {
            "keys": "partner",
            "signing_input": b64e(signing_input("key-bundle", bundle["signed"])),
            "envelope": bundle,
        },
        "genesis": {
            "anchor": str(Fingerprint.of(coordinator.public.sign)),
            "server_fingerprint": str(Fingerprint.of_server(server_log, server_gate)),
            "envelope": genesis,
        },
        "coordinator_rotation": {"old": "coordinator", "new": "coordinator-2",
                                 "envelope": coordinator_rotation},
        "membership": {
            "now": "2026-04-01T00:00:00Z",
            "signed_by": "coordinator-2",
            "envelope": membership,
        },
        "revocation": {
            "revoked_at_or_after": "2026-06-01T08:00:00Z",
            "envelope": revocation,
        },
        "keystore": {
            "keys": "partner",
            "passphrase": KEYSTORE_PASSPHRASE,
            "document": json.loads(keystore),
        },
    }


def render() -> str:
    """The exact text of protocol/vectors/keys.json."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {PATH}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        PATH.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
