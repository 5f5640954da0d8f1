"""keys/rotation.py: key-rotation signed by the old and the new key (docs/protocol.md §4.5)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from schakel.keys.partner import PartnerKeys
from schakel.keys.rotation import rotate, verify_rotation, verify_rotation_record
from schakel.protocol import signing
from schakel.protocol.errors import MalformedError, SignatureError, UntrustedKeyError

AT = datetime(2026, 3, 1, 12, 0, 30, 999, tzinfo=UTC)
OLD = PartnerKeys.generate()
NEW = PartnerKeys.generate()
OTHER = PartnerKeys.generate()


def rotation() -> dict[str, Any]:
    return rotate(OLD, at=AT, reason="scheduled", new=NEW)[1]


def test_rotation_verifies_and_names_new_keys() -> None:
    new, env = rotate(OLD, at=AT, reason="scheduled")
    assert verify_rotation(env, OLD.public.sign) == new.public
    record = verify_rotation_record(env, OLD.public.sign)
    assert record.old == OLD.key_id and record.reason == "scheduled"
    assert record.at == AT.replace(microsecond=0)
    assert env["signed"]["at"] == "2026-03-01T12:00:30Z"
    assert signing.signers_of(env) == [OLD.key_id, new.key_id]


def test_rotation_not_signed_by_new_key_refused() -> None:
    env = rotation()
    env["signatures"] = env["signatures"][:1]
    with pytest.raises(SignatureError, match="new key"):
        verify_rotation(env, OLD.public.sign)


def test_rotation_not_signed_by_old_key_refused() -> None:
    env = signing.sign("key-rotation", rotation()["signed"], NEW.signer)
    with pytest.raises(SignatureError, match="old key"):
        verify_rotation(env, OLD.public.sign)


def test_rotation_with_forged_old_signature_refused() -> None:
    env = rotation()
    forged = signing.sign("key-rotation", {**env["signed"], "reason": "other"}, OLD.signer)
    env["signatures"][0] = forged["signatures"][0]  # valid signature, other content
    with pytest.raises(SignatureError):
        verify_rotation(env, OLD.public.sign)


def test_rotation_with_extra_signature_refused() -> None:
    env = signing.add_signature(rotation(), OTHER.signer)
    with pytest.raises(SignatureError, match="exactly"):
        verify_rotation(env, OLD.public.sign)


def test_rotation_of_another_key_refused() -> None:
    with pytest.raises(UntrustedKeyError, match="not the expected key"):
        verify_rotation(rotation(), OTHER.public.sign)


def test_rotation_to_claimed_key_without_possession_refused() -> None:
    signed = copy.deepcopy(rotation()["signed"])
    signed["new"] = OTHER.public.to_json()  # someone else's key, not held
    env = signing.add_signature(signing.sign("key-rotation", signed, OLD.signer), NEW.signer)
    with pytest.raises(SignatureError, match="new key"):
        verify_rotation(env, OLD.public.sign)


def test_rotation_to_same_key_refused() -> None:
    with pytest.raises(MalformedError):
        rotate(OLD, at=AT, reason="noop", new=OLD)
    signed = {**rotation()["signed"], "new": OLD.public.to_json()}
    env = signing.sign("key-rotation", signed, OLD.signer)
    with pytest.raises(UntrustedKeyError, match="does not change"):
        verify_rotation(env, OLD.public.sign)


def test_rotation_tampered_box_key_refused() -> None:
    env = rotation()
    env["signed"]["new"]["box"] = OTHER.public.box.b64()
    with pytest.raises(SignatureError):
        verify_rotation(env, OLD.public.sign)


@pytest.mark.parametrize("changes", [{"reason": ""}, {"reason": "a\x85b"}, {"at": "yesterday"},
                                     {"old": "x"},
                                     {"new": {"sign": "x"}}, {"extra": True}])
def test_malformed_rotation_refused(changes: dict[str, Any]) -> None:
    signed = {**rotation()["signed"], **changes}
    env = signing.add_signature(signing.sign("key-rotation", signed, OLD.signer), NEW.signer)
    with pytest.raises(MalformedError):
        verify_rotation(env, OLD.public.sign)


def test_rotation_requires_aware_time() -> None:
    with pytest.raises(MalformedError, match="timezone-aware"):
        rotate(OLD, at=datetime(2026, 3, 1), reason="scheduled")
