"""keys/chain.py + keys/certify.py: fingerprint -> genesis -> rotations -> membership
(docs/protocol.md §4.6).  One test per rule or attack."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schakel.keys.certify import (
    issue_membership, issue_policy, make_genesis, new_network_id, revoke_membership,
)
from schakel.keys.chain import (
    VerifiedGenesis, follow_policies, policy_at, verify_genesis, verify_membership,
    verify_network_policy, verify_revocation,
)
from schakel.keys.fingerprint import Fingerprint, fingerprint
from schakel.keys.partner import PartnerKeys
from schakel.keys.rotation import rotate
from schakel.protocol import signing
from schakel.protocol.crypto import BoxSecretKey, Signer, sha256
from schakel.protocol.errors import (
    ContextMismatchError, MalformedError, SignatureError, UntrustedKeyError,
)
from schakel.protocol.objects.network import default_policy

CREATED = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
ROTATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FROM = datetime(2026, 1, 10, tzinfo=UTC)
UNTIL = datetime(2026, 12, 31, tzinfo=UTC)
NOW = datetime(2026, 2, 1, tzinfo=UTC)

COORDINATOR = PartnerKeys.generate()
COORDINATOR_2 = PartnerKeys.generate()
MEMBER = PartnerKeys.generate()
ATTACKER = PartnerKeys.generate()
NETWORK = new_network_id()
ANCHOR = fingerprint(COORDINATOR.public.sign)
SERVER_LOG = Signer.generate().verify_key
SERVER_GATE = BoxSecretKey.generate().public_key


def genesis_envelope(coordinator: PartnerKeys = COORDINATOR, *, kind: str = "oggz",
                     network: str = NETWORK) -> dict[str, Any]:
    return make_genesis(coordinator, network=network, name="Netwerk Noord", kind=kind,
                        created=CREATED, server_log=SERVER_LOG, server_gate=SERVER_GATE,
                        covenant=sha256(b"convenant"), policy=default_policy(kind).to_json())


def genesis(kind: str = "oggz", rotations: tuple[dict[str, Any], ...] = ()) -> VerifiedGenesis:
    return verify_genesis(genesis_envelope(kind=kind), ANCHOR, rotations)


def membership(coordinator: PartnerKeys = COORDINATOR, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(network=NETWORK, kind="oggz", member=MEMBER.public,
                                name="Buurtteam Noord", ring="core", party="formal",
                                roles=["professional-secrecy"], serial=2, valid_from=FROM,
                                valid_until=UNTIL)
    args.update(overrides)
    return issue_membership(coordinator, **args)


def resigned(envelope: dict[str, Any], signer: Signer, **changes: Any) -> dict[str, Any]:
    """``envelope``'s signed part with ``changes`` (None deletes), freshly signed."""
    signed = copy.deepcopy(envelope["signed"])
    for key, value in changes.items():
        if value is None:
            del signed[key]
        else:
            signed[key] = value
    return signing.sign(signed["type"], signed, signer)


def revocation(serial: int = 2, at: datetime = NOW, member: str | None = None,
               coordinator: PartnerKeys = COORDINATOR, network: str = NETWORK) -> dict[str, Any]:
    return revoke_membership(coordinator, network=network, member=member or MEMBER.key_id,
                             serial=serial, at=at, reason="left the network")


# --------------------------------------------------------------------------- genesis


def test_genesis_chains_to_anchor() -> None:
    g = genesis()
    assert g.network == NETWORK and g.kind == "oggz" and g.created == CREATED
    assert g.coordinator == COORDINATOR.public == g.genesis_coordinator
    assert g.server_log == SERVER_LOG and g.server_gate == SERVER_GATE
    assert g.covenant == sha256(b"convenant") and g.policy == default_policy("oggz")
    assert g.anchor == ANCHOR


def test_genesis_signed_by_other_key_is_untrusted() -> None:
    with pytest.raises(UntrustedKeyError, match="fingerprint"):
        verify_genesis(genesis_envelope(ATTACKER), ANCHOR)


def test_genesis_with_forged_coordinator_signature_refused() -> None:
    forged = resigned(genesis_envelope(), ATTACKER.signer)  # names the real key, attacker signs
    with pytest.raises(SignatureError):
        verify_genesis(forged, ANCHOR)


def test_genesis_signature_by_coordinator_over_other_content_refused() -> None:
    env = genesis_envelope()
    env["signed"]["name"] = "Ander netwerk"
    with pytest.raises(SignatureError):
        verify_genesis(env, ANCHOR)


def test_genesis_unknown_field_refused() -> None:
    env = resigned(genesis_envelope(), COORDINATOR.signer, extra="x")
    with pytest.raises(MalformedError, match="unknown field"):
        verify_genesis(env, ANCHOR)


def test_genesis_missing_field_refused() -> None:
    env = resigned(genesis_envelope(), COORDINATOR.signer, covenant=None)
    with pytest.raises(MalformedError, match="missing field"):
        verify_genesis(env, ANCHOR)


def test_genesis_unknown_kind_refused() -> None:
    env = resigned(genesis_envelope(), COORDINATOR.signer, kind="wijk")
    with pytest.raises(MalformedError, match="kind"):
        verify_genesis(env, ANCHOR)


def test_genesis_policy_is_checked() -> None:
    """verify_genesis builds the policy (protocol.md §4.6.2): a client gets the policy rules."""
    bad = default_policy("oggz").to_json()
    bad["retention"]["anonymous_days"] = 1  # shorter than identity_days
    env = resigned(genesis_envelope(), COORDINATOR.signer, policy=bad)
    with pytest.raises(MalformedError, match="anonymous_days"):
        verify_genesis(env, ANCHOR)
    env = resigned(genesis_envelope(), COORDINATOR.signer, policy={"version": 1})
    with pytest.raises(MalformedError, match="policy"):
        verify_genesis(env, ANCHOR)
    # bemoeizorg only in oggz networks: an oggz policy in a neighbourhood genesis
    env = resigned(genesis_envelope(kind="neighbourhood"), COORDINATOR.signer,
                   policy=default_policy("oggz").to_json())
    with pytest.raises(MalformedError, match="bemoeizorg"):
        verify_genesis(env, ANCHOR)
    with pytest.raises(MalformedError, match="bemoeizorg"):
        make_genesis(COORDINATOR, network=NETWORK, name="n", kind="neighbourhood",
                     created=CREATED, server_log=SERVER_LOG, server_gate=SERVER_GATE,
                     covenant=sha256(b"c"), policy=default_policy("oggz"))


def test_other_object_type_is_not_a_genesis() -> None:
    with pytest.raises(SignatureError, match="expected a 'network-genesis' object"):
        verify_genesis(membership(), ANCHOR)


def test_genesis_anchor_must_be_a_fingerprint() -> None:
    with pytest.raises(MalformedError):
        verify_genesis(genesis_envelope(), str(ANCHOR))  # type: ignore[arg-type]


def test_genesis_accepts_anchor_typed_by_a_person() -> None:
    typed = Fingerprint.parse("-".join(ANCHOR.groups))
    assert verify_genesis(genesis_envelope(), typed).network == NETWORK


# --------------------------------------------------------------------------- rotations


def test_genesis_follows_coordinator_rotation() -> None:
    _, rot = rotate(COORDINATOR, at=ROTATED, reason="scheduled", new=COORDINATOR_2)
    g = genesis(rotations=(rot,))
    assert g.genesis_coordinator == COORDINATOR.public
    assert g.coordinator == COORDINATOR_2.public
    assert [link.until for link in g.coordinator_keys] == [ROTATED, None]


def test_coordinator_rotation_chain_of_two_links() -> None:
    third, later = PartnerKeys.generate(), ROTATED + timedelta(days=30)
    _, r1 = rotate(COORDINATOR, at=ROTATED, reason="scheduled", new=COORDINATOR_2)
    _, r2 = rotate(COORDINATOR_2, at=later, reason="staff change", new=third)
    assert genesis(rotations=(r1, r2)).coordinator == third.public


def test_rotations_out_of_order_refused() -> None:
    third = PartnerKeys.generate()
    _, r1 = rotate(COORDINATOR, at=ROTATED, reason="scheduled", new=COORDINATOR_2)
    _, r2 = rotate(COORDINATOR_2, at=ROTATED + timedelta(days=1), reason="x", new=third)
    with pytest.raises(UntrustedKeyError, match="rotation #1"):
        genesis(rotations=(r2, r1))


def test_rotation_of_a_key_outside_the_chain_refused() -> None:
    _, rot = rotate(ATTACKER, at=ROTATED, reason="takeover", new=PartnerKeys.generate())
    with pytest.raises(UntrustedKeyError, match="not the expected key"):
        genesis(rotations=(rot,))


def test_rotation_dated_before_genesis_refused() -> None:
    _, rot = rotate(COORDINATOR, at=CREATED - timedelta(days=1), reason="x", new=COORDINATOR_2)
    with pytest.raises(UntrustedKeyError, match="not after the previous link"):
        genesis(rotations=(rot,))


def test_rotation_dated_before_previous_rotation_refused() -> None:
    third = PartnerKeys.generate()
    _, r1 = rotate(COORDINATOR, at=ROTATED, reason="scheduled", new=COORDINATOR_2)
    _, r2 = rotate(COORDINATOR_2, at=ROTATED, reason="same second", new=third)
    with pytest.raises(UntrustedKeyError, match="rotation #2"):
        genesis(rotations=(r1, r2))


def test_rotation_back_to_a_retired_coordinator_key_refused() -> None:
    _, r1 = rotate(COORDINATOR, at=ROTATED, reason="scheduled", new=COORDINATOR_2)
    _, r2 = rotate(COORDINATOR_2, at=ROTATED + timedelta(days=1), reason="back",
                   new=COORDINATOR)
    with pytest.raises(UntrustedKeyError, match="earlier coordinator key"):
        genesis(rotations=(r1, r2))


def test_coordinator_rotation_not_signed_by_new_key_refused() -> None:
    _, rot = rotate(COORDINATOR, at=ROTATED, reason="scheduled", new=COORDINATOR_2)
    rot["signatures"] = rot["signatures"][:1]
    with pytest.raises(SignatureError, match="rotation #1.*new key"):
        genesis(rotations=(rot,))


# --------------------------------------------------------------------------- membership


def test_valid_membership_is_accepted() -> None:
    m = verify_membership(membership(), genesis(), now=NOW)
    assert m.network == NETWORK and m.member == MEMBER.key_id == m.key_id
    assert m.public == MEMBER.public and m.name == "Buurtteam Noord"
    assert (m.ring, m.party, m.roles, m.serial) == ("core", "formal",
                                                     frozenset({"professional-secrecy"}), 2)
    assert (m.valid_from, m.valid_until) == (FROM, UNTIL)
    assert m.issuer == COORDINATOR.key_id and m.has_role("professional-secrecy")


def test_membership_for_other_network_refused() -> None:
    other = new_network_id()
    env = membership(network=other)
    with pytest.raises(UntrustedKeyError, match="network"):
        verify_membership(env, genesis(), now=NOW)


def test_expired_membership_refused() -> None:
    with pytest.raises(UntrustedKeyError, match="expired"):
        verify_membership(membership(), genesis(), now=UNTIL + timedelta(seconds=1))


def test_membership_valid_until_is_exclusive() -> None:
    with pytest.raises(UntrustedKeyError, match="expired"):
        verify_membership(membership(), genesis(), now=UNTIL)
    assert verify_membership(membership(), genesis(), now=FROM).serial == 2


def test_membership_not_yet_valid_refused() -> None:
    with pytest.raises(UntrustedKeyError, match="not valid before"):
        verify_membership(membership(), genesis(), now=FROM - timedelta(seconds=1))


def test_membership_naive_now_refused() -> None:
    with pytest.raises(MalformedError, match="timezone-aware"):
        verify_membership(membership(), genesis(), now=datetime(2026, 2, 1))


def test_membership_signed_by_other_key_refused() -> None:
    forged = resigned(membership(), ATTACKER.signer)
    with pytest.raises(SignatureError, match="not signed by a coordinator key"):
        verify_membership(forged, genesis(), now=NOW)


def test_membership_roles_added_after_signing_refused() -> None:
    env = membership(kind="oggz")
    env["signed"]["roles"] = ["bemoeizorg", "professional-secrecy"]
    with pytest.raises(SignatureError):
        verify_membership(env, genesis(), now=NOW)


def test_membership_swapped_box_key_refused() -> None:
    env = membership()
    env["signed"]["box"] = ATTACKER.public.box.b64()
    with pytest.raises(SignatureError):
        verify_membership(env, genesis(), now=NOW)


def test_membership_member_not_key_id_of_sign_refused() -> None:
    env = resigned(membership(), COORDINATOR.signer, member=ATTACKER.key_id)
    with pytest.raises(UntrustedKeyError, match="key id"):
        verify_membership(env, genesis(), now=NOW)


@pytest.mark.parametrize("changes", [
    {"roles": ["superuser"]}, {"roles": ["auditor", "auditor"]}, {"roles": "auditor"},
    {"ring": "middle"}, {"party": "volunteer"}, {"serial": 0}, {"serial": True},
    {"serial": "2"}, {"name": ""}, {"name": "a\nb"}, {"name": "a\u2028b"}, {"name": "a\u200fb"},
    {"valid_from": "2026-01-10T00:00:00+01:00"},
    {"valid_from": "2026-02-30T00:00:00Z"}, {"valid_until": "2026-12-31T00:00:00.5Z"},
    {"sign": "AAAA"}, {"network": "short"}, {"extra": 1}, {"box": None},
])
def test_malformed_membership_refused(changes: dict[str, Any]) -> None:
    env = resigned(membership(), COORDINATOR.signer, **changes)
    with pytest.raises(MalformedError):
        verify_membership(env, genesis(), now=NOW)


def test_membership_valid_until_before_valid_from_refused() -> None:
    env = resigned(membership(), COORDINATOR.signer, valid_until="2026-01-01T00:00:00Z")
    with pytest.raises(MalformedError, match="after valid_from"):
        verify_membership(env, genesis(), now=NOW)


def test_membership_longer_than_maximum_validity_refused() -> None:
    env = resigned(membership(), COORDINATOR.signer, valid_until="2028-01-01T00:00:00Z")
    with pytest.raises(UntrustedKeyError, match="400 days"):
        verify_membership(env, genesis(), now=NOW)
    with pytest.raises(UntrustedKeyError, match="400 days"):
        membership(valid_until=FROM + timedelta(days=401))


def test_bemoeizorg_role_outside_oggz_network_refused() -> None:
    env = resigned(membership(), COORDINATOR.signer, roles=["bemoeizorg"])
    with pytest.raises(UntrustedKeyError, match="bemoeizorg"):
        verify_membership(env, genesis(kind="neighbourhood"), now=NOW)
    assert verify_membership(env, genesis(kind="oggz"), now=NOW).has_role("bemoeizorg")


def test_professional_secrecy_for_informal_party_refused() -> None:
    env = resigned(membership(), COORDINATOR.signer, party="informal")
    with pytest.raises(UntrustedKeyError, match="informal"):
        verify_membership(env, genesis(), now=NOW)


def test_coordinator_role_in_shell_refused() -> None:
    env = resigned(membership(), COORDINATOR.signer, ring="shell", roles=["coordinator"])
    with pytest.raises(UntrustedKeyError, match="core"):
        verify_membership(env, genesis(), now=NOW)


def test_builder_refuses_what_verifier_refuses() -> None:
    with pytest.raises(UntrustedKeyError):
        membership(kind="neighbourhood", roles=["bemoeizorg"])
    with pytest.raises(MalformedError):
        membership(roles=["root"])
    with pytest.raises(MalformedError):
        membership(valid_until=FROM)


# --------------------------------------------------------------------------- which coordinator key


def test_membership_signed_by_current_key_after_rotation_accepted() -> None:
    _, rot = rotate(COORDINATOR, at=ROTATED, reason="scheduled", new=COORDINATOR_2)
    env = membership(COORDINATOR_2, valid_from=ROTATED + timedelta(days=1))
    m = verify_membership(env, genesis(rotations=(rot,)), now=ROTATED + timedelta(days=2))
    assert m.issuer == COORDINATOR_2.key_id


def test_membership_signed_by_retired_key_before_its_retirement_accepted() -> None:
    _, rot = rotate(COORDINATOR, at=ROTATED, reason="scheduled", new=COORDINATOR_2)
    m = verify_membership(membership(), genesis(rotations=(rot,)), now=ROTATED + timedelta(days=2))
    assert m.issuer == COORDINATOR.key_id


def test_membership_signed_by_retired_key_after_its_retirement_refused() -> None:
    _, rot = rotate(COORDINATOR, at=ROTATED, reason="compromised", new=COORDINATOR_2)
    env = membership(COORDINATOR, valid_from=ROTATED)
    with pytest.raises(UntrustedKeyError, match="retired"):
        verify_membership(env, genesis(rotations=(rot,)), now=ROTATED + timedelta(days=1))


def test_membership_signed_by_unchained_rotated_key_refused() -> None:
    env = membership(COORDINATOR_2)  # the client was not given the rotation
    with pytest.raises(SignatureError, match="not signed by a coordinator key"):
        verify_membership(env, genesis(), now=NOW)


# --------------------------------------------------------------------------- revocation


def test_revoked_membership_refused() -> None:
    with pytest.raises(UntrustedKeyError, match="revoked"):
        verify_membership(membership(), genesis(), now=NOW, revocations=[revocation(serial=2)])


def test_revocation_with_higher_serial_revokes_membership() -> None:
    with pytest.raises(UntrustedKeyError, match="revoked"):
        verify_membership(membership(), genesis(), now=NOW, revocations=[revocation(serial=5)])


def test_revocation_with_lower_serial_does_not_revoke_newer_membership() -> None:
    m = verify_membership(membership(), genesis(), now=NOW, revocations=[revocation(serial=1)])
    assert m.serial == 2


def test_revocation_not_yet_in_effect_does_not_revoke() -> None:
    rev = revocation(at=NOW + timedelta(days=1))
    assert verify_membership(membership(), genesis(), now=NOW, revocations=[rev]).serial == 2
    with pytest.raises(UntrustedKeyError, match="revoked"):
        verify_membership(membership(), genesis(), now=NOW + timedelta(days=1), revocations=[rev])


def test_revocation_of_other_member_does_not_revoke() -> None:
    rev = revocation(member=ATTACKER.key_id)
    assert verify_membership(membership(), genesis(), now=NOW, revocations=[rev]).serial == 2


def test_forged_revocation_refused() -> None:
    forged = resigned(revocation(), ATTACKER.signer)
    with pytest.raises(SignatureError):
        verify_membership(membership(), genesis(), now=NOW, revocations=[forged])


def test_revocation_for_other_network_refused() -> None:
    rev = revocation(network=new_network_id())
    with pytest.raises(UntrustedKeyError, match="network"):
        verify_revocation(rev, genesis())


def test_revocation_verifies() -> None:
    r = verify_revocation(revocation(), genesis())
    assert (r.member, r.serial, r.at, r.issuer) == (MEMBER.key_id, 2, NOW, COORDINATOR.key_id)


# --------------------------------------------------------------------------- policy updates
# protocol.md §N.3: a network's policy changes after it starts by a network-policy signed by
# the coordinator; the highest version is in force.


def policy_update(version: int = 2, issued: datetime = NOW, *, coordinator: PartnerKeys = COORDINATOR,
                  network: str = NETWORK, **changes: Any) -> dict[str, Any]:
    policy = default_policy("oggz").to_json()
    policy.update(changes)
    return issue_policy(coordinator, network=network, version=version, issued=issued, policy=policy)


def test_policy_update_signed_by_the_coordinator_is_in_force_from_its_date() -> None:
    g = genesis()
    update = policy_update(2, NOW, intake_rate_per_hour=7)
    policies = follow_policies(g, [update])
    assert [p.version for p in policies] == [1, 2] and policies[-1].policy.intake_rate_per_hour == 7
    assert policy_at(policies, NOW - timedelta(seconds=1)).version == 1
    assert policy_at(policies, NOW).version == 2
    assert verify_network_policy(update, g).issuer == COORDINATOR.key_id


def test_policy_update_not_signed_by_the_coordinator_is_refused() -> None:
    g = genesis()
    with pytest.raises(SignatureError):
        verify_network_policy(policy_update(coordinator=ATTACKER), g)
    forged = resigned(policy_update(), ATTACKER.signer)          # names nothing, attacker signs
    with pytest.raises(SignatureError):
        follow_policies(g, [forged])
    tampered = copy.deepcopy(policy_update())
    tampered["signed"]["intake_rate_per_hour"] = 9999            # changed after signing
    with pytest.raises((SignatureError, MalformedError)):
        verify_network_policy(tampered, g)


def test_policy_update_by_a_retired_coordinator_key_dated_after_retirement_is_refused() -> None:
    g = genesis(rotations=(rotate(COORDINATOR, new=COORDINATOR_2, at=ROTATED, reason="rotation")[1],))
    verify_network_policy(policy_update(issued=ROTATED + timedelta(days=1),
                                        coordinator=COORDINATOR_2), g)
    with pytest.raises(UntrustedKeyError):
        verify_network_policy(policy_update(issued=ROTATED + timedelta(days=1)), g)


def test_policy_update_of_another_network_is_refused() -> None:
    with pytest.raises(ContextMismatchError):
        verify_network_policy(policy_update(network=new_network_id()), genesis())


def test_policy_update_may_not_change_classes_or_blind_index() -> None:
    g = genesis()
    classes = {**default_policy("oggz").to_json()["classes"], "extra": {"fields": ["note"]}}
    with pytest.raises(MalformedError, match=r"policy\.classes"):
        verify_network_policy(policy_update(classes=classes), g)
    with pytest.raises(MalformedError, match=r"policy\.blind_index"):
        verify_network_policy(policy_update(blind_index={"opslimit": 1, "memlimit": 8192,
                                                         "token_bytes": 4}), g)


def test_policy_update_dated_before_the_genesis_or_an_earlier_version_is_refused() -> None:
    g = genesis()
    with pytest.raises(MalformedError, match="before the network's genesis"):
        verify_network_policy(policy_update(issued=CREATED - timedelta(seconds=1)), g)
    with pytest.raises(MalformedError, match="dated before version 2"):
        follow_policies(g, [policy_update(2, NOW), policy_update(3, NOW - timedelta(seconds=1))])
    same_second = follow_policies(g, [policy_update(2, CREATED), policy_update(3, CREATED)])
    assert policy_at(same_second, CREATED).version == 3
    with pytest.raises(MalformedError, match="two network-policy objects with version 2"):
        follow_policies(g, [policy_update(2, NOW), policy_update(2, NOW + timedelta(days=1))])


def test_an_older_policy_served_again_is_not_in_force_over_a_newer_one() -> None:
    g = genesis()
    newer, older = policy_update(3, NOW + timedelta(days=1)), policy_update(2, NOW)
    policies = follow_policies(g, [newer, older])                # order served does not matter
    assert policies[-1].version == 3
