"""Subset cases in the protocol objects: the audience of a case header, its sealed case
keys, widening replacements and subset rekeys (docs/protocol.md §C.1 "Audience", §C.11;
ADR 0031)."""

from __future__ import annotations

from typing import Any

import pytest

from schakel.protocol import envelopes
from schakel.protocol.crypto import BoxSecretKey, CaseKey, EpochKey, Signer
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ContextMismatchError, DecryptionError, MalformedError
from schakel.protocol.objects.cases import (
    AudienceKey, CaseHeader, CaseRekey, added_members, check_replacement,
)

OWNER, COORD, ALLY, OUTSIDER = (Signer(bytes(range(i, i + 32))) for i in range(4))
BOX = {s.key_id: BoxSecretKey(bytes(range(10 + i, 42 + i)))
       for i, s in enumerate((OWNER, COORD, ALLY, OUTSIDER))}
NETWORK = b64e(b"N" * 16)
CASE = b64e(b"C" * 16)
T0 = "2026-11-28T22:00:00Z"
KEYS = {1: CaseKey(bytes(32)), 2: CaseKey(bytes([2]) * 32)}


def sealed(member: str, version: int) -> dict[str, Any]:
    return {"member": member, "version": version,
            "sealed": envelopes.seal_case_key(BOX[member].public_key, KEYS[version],
                                              network=NETWORK, case=CASE, version=version,
                                              recipient_id=member)}


def subset_header(members: tuple[Signer, ...] = (OWNER, COORD), *,
                  extra: tuple[dict[str, Any], ...] = (), **over: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "type": "case-header", "network": NETWORK, "case": CASE, "owner": OWNER.key_id,
        "acting_user": "mw-0042", "kind": "case", "created": T0, "epoch": 1,
        "case_key_version": 1, "identity_version": 1,
        "audience": [m.key_id for m in members],
        "audience_keys": [sealed(m.key_id, 1) for m in members] + list(extra),
    }
    value.update(over)
    return value


def test_subset_header_carries_no_epoch_wrap() -> None:
    """A subset case is never readable through the epoch key (ADR 0031)."""
    with pytest.raises(MalformedError, match="wrapped_case_key"):
        CaseHeader.from_json(subset_header(wrapped_case_key=b64e(b"w" * 72)))


def test_subset_header_names_its_owner() -> None:
    with pytest.raises(MalformedError, match="audience"):
        CaseHeader.from_json(subset_header((COORD, ALLY)))


def test_subset_header_seals_to_every_member_and_only_to_members() -> None:
    value = subset_header()
    value["audience_keys"] = value["audience_keys"][:1]
    with pytest.raises(MalformedError, match="audience_keys"):
        CaseHeader.from_json(value)
    with pytest.raises(MalformedError, match="outside the audience"):
        CaseHeader.from_json(subset_header(extra=(sealed(OUTSIDER.key_id, 1),)))


def test_whole_core_header_has_no_audience_keys() -> None:
    value = subset_header()
    value.pop("audience")
    value["wrapped_case_key"] = b64e(b"w" * 72)
    with pytest.raises(MalformedError, match="audience_keys"):
        CaseHeader.from_json(value)


def test_audience_key_opens_only_for_its_member() -> None:
    header = CaseHeader.from_json(subset_header((OWNER, COORD, ALLY)))
    key = header.keys_for(ALLY.key_id)[0].open(BOX[ALLY.key_id], network=NETWORK, case=CASE)
    assert key.export() == KEYS[1].export()
    assert header.reads(ALLY.key_id) and not header.reads(OUTSIDER.key_id)
    assert header.keys_for(OUTSIDER.key_id) == ()
    # An outsider's box key opens none of the sealed keys; a key moved to another member's
    # entry names another recipient.
    for entry in header.audience_keys or ():
        with pytest.raises(DecryptionError):
            entry.open(BOX[OUTSIDER.key_id], network=NETWORK, case=CASE)
    moved = AudienceKey(member=COORD.key_id, version=1,
                        sealed=header.keys_for(ALLY.key_id)[0].sealed)
    with pytest.raises(DecryptionError):
        moved.open(BOX[COORD.key_id], network=NETWORK, case=CASE)
    relabelled = AudienceKey(member=ALLY.key_id, version=2,
                             sealed=header.keys_for(ALLY.key_id)[0].sealed)
    with pytest.raises(ContextMismatchError):
        relabelled.open(BOX[ALLY.key_id], network=NETWORK, case=CASE)


def test_widening_adds_members_and_keeps_every_key() -> None:
    first = subset_header()
    held = CaseHeader.from_json(first)
    wider = CaseHeader.from_json(subset_header((OWNER, COORD, ALLY)) | {
        "audience_keys": first["audience_keys"] + [sealed(ALLY.key_id, 1),
                                                   sealed(ALLY.key_id, 2)]})
    assert check_replacement(held, wider) == "audience"
    assert added_members(held, wider) == (ALLY.key_id,)


def test_replacement_only_widens() -> None:
    """A narrower (or equal) audience is no replacement: a server serving an older
    header again after a widening is caught."""
    held = CaseHeader.from_json(subset_header((OWNER, COORD, ALLY)))
    narrower = CaseHeader.from_json(subset_header())
    with pytest.raises(ContextMismatchError, match="only widens"):
        check_replacement(held, narrower)


def test_widening_keeps_held_keys_and_seals_only_to_added_members() -> None:
    first = subset_header()
    held = CaseHeader.from_json(first)
    swapped = subset_header((OWNER, COORD, ALLY))
    swapped["audience_keys"] = [sealed(OWNER.key_id, 1)] + first["audience_keys"][1:] + [
        sealed(ALLY.key_id, 1)]                                 # a fresh seal: another blob
    with pytest.raises(ContextMismatchError, match="drops or changes"):
        check_replacement(held, CaseHeader.from_json(swapped))
    extra = subset_header((OWNER, COORD, ALLY))
    extra["audience_keys"] = first["audience_keys"] + [
        sealed(ALLY.key_id, 1), sealed(OWNER.key_id, 2)]
    with pytest.raises(ContextMismatchError, match="does not add"):
        check_replacement(held, CaseHeader.from_json(extra))


def test_widening_changes_nothing_else() -> None:
    first = subset_header()
    held = CaseHeader.from_json(first)
    wider = subset_header((OWNER, COORD, ALLY))
    wider["audience_keys"] = first["audience_keys"] + [sealed(ALLY.key_id, 1)]
    wider["classes"] = ["name"]
    with pytest.raises(ContextMismatchError, match="classes"):
        check_replacement(held, CaseHeader.from_json(wider))


def test_whole_core_case_is_not_made_a_subset_case() -> None:
    """Adding an audience to a whole-core case would narrow it: no replacement does."""
    whole = subset_header()
    whole.pop("audience"), whole.pop("audience_keys")
    whole["wrapped_case_key"] = b64e(b"w" * 72)
    with pytest.raises(ContextMismatchError, match="audience"):
        check_replacement(CaseHeader.from_json(whole), CaseHeader.from_json(subset_header()))


def test_subset_rekey_seals_instead_of_wrapping() -> None:
    base = {"type": "case-rekey", "network": NETWORK, "case": CASE, "case_key_version": 2,
            "epoch": 2, "acting_user": "mw-1", "at": T0, "reason": "member removed"}
    rekey = CaseRekey.from_json(base | {"audience_keys": [sealed(OWNER.key_id, 2)]})
    assert rekey.recipients == {OWNER.key_id}
    assert rekey.key_for(OWNER.key_id) is not None and rekey.key_for(ALLY.key_id) is None
    with pytest.raises(DecryptionError):
        rekey.unwrap(EpochKey(bytes(32)))
    with pytest.raises(MalformedError, match="exactly one"):
        CaseRekey.from_json(base)
    with pytest.raises(MalformedError, match="exactly one"):
        CaseRekey.from_json(base | {"audience_keys": [sealed(OWNER.key_id, 2)],
                                    "wrapped_case_key": b64e(b"w" * 72)})
    with pytest.raises(MalformedError, match="case_key_version"):
        CaseRekey.from_json(base | {"audience_keys": [sealed(OWNER.key_id, 1)]})


def test_signed_subset_header_round_trips() -> None:
    envelope = CaseHeader.from_json(subset_header()).sign(OWNER)
    header = CaseHeader.from_envelope(envelope, [OWNER.verify_key])
    assert header.is_subset and header.audience == (OWNER.key_id, COORD.key_id)
