"""keys/bundle.py: the self-signed key-bundle of the covenant ceremony (docs/protocol.md §4.4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schakel.keys.bundle import make_key_bundle, verify_key_bundle
from schakel.keys.fingerprint import fingerprint
from schakel.keys.partner import PartnerKeys
from schakel.protocol import signing
from schakel.protocol.errors import MalformedError, SignatureError, UntrustedKeyError

CREATED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KEYS = PartnerKeys.generate()
OTHER = PartnerKeys.generate()


def test_key_bundle_round_trip() -> None:
    bundle = verify_key_bundle(make_key_bundle(KEYS, name="Kerk Noord", created=CREATED))
    assert bundle.public == KEYS.public and bundle.key_id == KEYS.key_id
    assert bundle.name == "Kerk Noord" and bundle.created == CREATED
    assert bundle.fingerprint == fingerprint(KEYS.public.sign)


def test_key_bundle_with_expected_fingerprint_accepted() -> None:
    env = make_key_bundle(KEYS, name="Kerk Noord", created=CREATED)
    assert verify_key_bundle(env, expected=fingerprint(KEYS.public.sign)).key_id == KEYS.key_id


def test_key_bundle_of_other_key_than_read_aloud_refused() -> None:
    env = make_key_bundle(OTHER, name="Kerk Noord", created=CREATED)
    with pytest.raises(UntrustedKeyError):
        verify_key_bundle(env, expected=fingerprint(KEYS.public.sign))


def test_key_bundle_signed_by_other_key_refused() -> None:
    signed = make_key_bundle(KEYS, name="Kerk Noord", created=CREATED)["signed"]
    with pytest.raises(SignatureError):
        verify_key_bundle(signing.sign("key-bundle", signed, OTHER.signer))


def test_key_bundle_swapped_box_key_refused() -> None:
    env = make_key_bundle(KEYS, name="Kerk Noord", created=CREATED)
    env["signed"]["box"] = OTHER.public.box.b64()
    with pytest.raises(SignatureError):
        verify_key_bundle(env)


def test_key_bundle_unknown_field_refused() -> None:
    signed = {**make_key_bundle(KEYS, name="n", created=CREATED)["signed"], "roles": ["x"]}
    with pytest.raises(MalformedError, match="unknown field"):
        verify_key_bundle(signing.sign("key-bundle", signed, KEYS.signer))


def test_other_object_type_is_not_a_key_bundle() -> None:
    signed = {**make_key_bundle(KEYS, name="n", created=CREATED)["signed"], "type": "membership"}
    with pytest.raises(SignatureError, match="key-bundle"):
        verify_key_bundle(signing.sign("membership", signed, KEYS.signer))
