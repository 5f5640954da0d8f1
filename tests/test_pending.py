"""Two-step verification (protocol/crypto.py ``SignatureCheck``/``Pending``): a value
whose signature checks are made elsewhere (the server's worker threads) is handed out
only after every check held, and refuses the same things one-step verification refuses.

The one-step functions (``signing.verify``, ``WireObject.from_envelope``,
``httpsig.verify_request``) are the two steps run at once, so every test of those covers
the composition; these tests pin what the split itself must never allow.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import httpsig, signing
from protocol.crypto import Pending, SignatureCheck, Signer, random_bytes
from protocol.encoding import b64e
from protocol.errors import DigestMismatchError, SignatureError
from protocol.objects.cases import Event
from tests.server_harness import FakeClock, Network, ServerKeys

SIGNER, OTHER = Signer.generate(), Signer.generate()


def envelope(signers: list[Signer]) -> dict[str, Any]:
    env = signing.sign("covenant-acceptance-test", {"type": "covenant-acceptance-test", "n": 1},
                       signers[0])
    for s in signers[1:]:
        env = signing.add_signature(env, s)
    return env


def test_a_pending_value_is_not_handed_out_before_its_checks_ran() -> None:
    pending = signing.pending(envelope([SIGNER]), "covenant-acceptance-test",
                              [SIGNER.verify_key])
    with pytest.raises(RuntimeError, match="not been made"):
        pending.result()
    assert pending.run()["n"] == 1
    assert pending.result()["n"] == 1                 # once held, it stays held


def test_a_check_that_failed_keeps_the_value_locked() -> None:
    env = envelope([SIGNER])
    env["signed"]["n"] = 2                            # changed after signing
    pending = signing.pending(env, "covenant-acceptance-test", [SIGNER.verify_key])
    with pytest.raises(SignatureError):
        pending.run()
    with pytest.raises(RuntimeError):
        pending.result()


def test_then_keeps_the_checks_of_the_value_it_builds_on() -> None:
    pending = signing.pending(envelope([SIGNER]), "covenant-acceptance-test",
                              [SIGNER.verify_key])
    doubled = pending.then(lambda signed: signed["n"] * 2)
    assert doubled.checks is pending.checks
    with pytest.raises(RuntimeError):
        doubled.result()
    assert doubled.run() == 2


def test_the_threshold_is_counted_only_after_the_checks_held() -> None:
    """As in one-step verification: a forged co-signature is reported as such, not as a
    missing signature; too few counted signatures are refused after the checks."""
    keys = [SIGNER.verify_key, OTHER.verify_key]
    forged = envelope([SIGNER, OTHER])
    forged["signatures"][1]["sig"] = b64e(bytes(64))
    with pytest.raises(SignatureError, match="does not verify"):
        signing.pending(forged, "covenant-acceptance-test", keys, threshold=2).run()
    one = signing.pending(envelope([SIGNER]), "covenant-acceptance-test", keys, threshold=2)
    assert len(one.checks) == 1
    with pytest.raises(SignatureError, match="needs 2 valid signature"):
        one.run()


def test_checks_made_on_another_thread_release_the_value() -> None:
    pending = signing.pending(envelope([SIGNER]), "covenant-acceptance-test",
                              [SIGNER.verify_key])
    worker = threading.Thread(target=lambda: [c.run() for c in pending.checks])
    worker.start()
    worker.join()
    assert pending.result()["n"] == 1


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=200), st.integers(min_value=0, max_value=63),
       st.integers(min_value=1, max_value=255))
def test_a_check_holds_exactly_when_the_signature_verifies(message: bytes, where: int,
                                                            flip: int) -> None:
    signature = SIGNER.sign(message)
    good = SignatureCheck(SIGNER.verify_key, message, signature)
    good.run()
    assert good.held
    tampered = bytearray(signature)
    tampered[where] ^= flip
    bad = SignatureCheck(SIGNER.verify_key, message, bytes(tampered))
    with pytest.raises(SignatureError):
        bad.run()
    assert not bad.held


def test_a_request_is_not_verified_before_its_signature_check_ran() -> None:
    """``prepare_request`` checks the form, window and key now; the digest and the
    acting user only once the Ed25519 check held, in verify_request's order."""
    url = "http://schakel.test/v1/networks/n/members"
    body = b'{"x":1}'
    signed = httpsig.sign_request("POST", url, [("Content-Type", "application/json")], body,
                                  SIGNER, created=1_800_000_000, nonce=b64e(random_bytes(16)),
                                  acting_user="user-1")
    headers = [("Content-Type", "application/json"), *signed.items()]

    def prepare(body: bytes) -> Pending[httpsig.VerifiedRequest]:
        return httpsig.prepare_request("POST", url, headers, body, now=1_800_000_000,
                                       resolve_key=lambda keyid: SIGNER.verify_key)

    pending = prepare(body)
    with pytest.raises(RuntimeError):
        pending.result()
    assert pending.run().acting_user == "user-1"
    # A body swapped after signing: the signature holds (it covers the digest header),
    # and the digest is what refuses it, after the check.
    swapped = prepare(b'{"x":2}')
    [check] = swapped.checks
    check.run()
    with pytest.raises(DigestMismatchError):
        swapped.result()


def test_an_event_is_built_only_after_its_author_signature_held() -> None:
    from server.serverkeys import ServerKeys as ServerKeyPair
    net = Network(ServerKeys.from_json(ServerKeyPair.generate().fingerprints()), FakeClock())
    author = net.actor("author", ring="core")
    net.members[author.label] = author
    net.commit_epoch(net.distribution())
    _, state = net.new_case(author, recipients=[author])
    event = net.event(state, author)
    pending = Event.prepare_envelope(event, [author.signer.verify_key])
    assert len(pending.checks) == 1
    with pytest.raises(RuntimeError):
        pending.result()
    assert pending.run().author == author.key_id
