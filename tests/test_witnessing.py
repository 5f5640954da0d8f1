"""A network's checkpoints and the witness quorum a client requires (protocol/witnessing.py;
docs/protocol.md §17.5), and the policy's ``witnesses`` part (§N.2).  Pure: real keys, no
server."""

from __future__ import annotations

from typing import Any

import pytest

from schakel.protocol.crypto import Signer
from schakel.protocol.errors import MalformedError, SignatureError
from schakel.protocol.note import (
    COSIGNATURE_V1, ED25519, Checkpoint, Note, NoteVerifier, cosign, parse_note, sign_note,
)
from schakel.protocol.objects.network import Policy, WitnessSettings, default_policy
from schakel.protocol.witnessing import (
    AUDIT, MAX_FUTURE, NotWitnessedError, origin, sign_checkpoint, verify_network_checkpoint,
)

NETWORK = "K9vg8_HnWdHNOkBOOC_pBQ"
NOW = 1_796_660_000
LOG = Signer(b"\x01" * 32)
WITNESSES = [Signer(bytes([i]) * 32) for i in (2, 3, 4)]
NAMES = [f"witness-{i}.example/getuige" for i in (1, 2, 3)]


def vkey(i: int) -> str:
    return NoteVerifier(NAMES[i], COSIGNATURE_V1, WITNESSES[i].verify_key).vkey()


def settings(quorum: int = 2, max_age_hours: int = 24, count: int = 3) -> WitnessSettings:
    return WitnessSettings.from_json({
        "quorum": quorum, "max_age_hours": max_age_hours,
        "witnesses": [{"vkey": vkey(i), "url": f"https://w{i}.example/getuige"}
                      for i in range(count)]})


def checkpoint(size: int = 7, root: bytes = b"\x09" * 32) -> Note:
    return sign_checkpoint(AUDIT, NETWORK, size, root, LOG)


def cosigned(note: Note, *which: int, at: int = NOW) -> str:
    return note.with_signatures(cosign(note.text, NAMES[i], WITNESSES[i], at)
                                for i in which).format()


def verify(text: str, witnesses: WitnessSettings | None = None, now: int = NOW) -> Any:
    return verify_network_checkpoint(text, log=AUDIT, network=NETWORK, log_key=LOG.verify_key,
                                     witnesses=witnesses, now=now)


def test_a_checkpoint_is_the_tree_heads_size_and_root_under_the_networks_origin() -> None:
    note = checkpoint(42, b"\x07" * 32)
    assert note.text == f"schakel/audit/{NETWORK}\n42\n{'BwcH' * 10}Bwc=\n"
    assert note.signatures[0].name == origin(AUDIT, NETWORK)
    got = verify(note.format())
    assert (got.size, got.root, got.cosigned) == (42, b"\x07" * 32, {})


def test_no_checkpoint_text_starts_like_a_signed_protocol_object() -> None:
    """The log key also signs ``schakel/v1/<type>`` + JSON (§2.2): a checkpoint's text starts
    with its origin, ``schakel/audit/``, so no note is a protocol message."""
    assert not checkpoint().text.startswith("schakel/v1/")


def test_the_quorum_of_fresh_cosignatures_is_accepted() -> None:
    got = verify(cosigned(checkpoint(), 0, 2), settings(quorum=2))
    assert got.cosigned == {NAMES[0]: NOW, NAMES[2]: NOW}


def test_fewer_cosignatures_than_the_quorum_is_not_witnessed() -> None:
    with pytest.raises(NotWitnessedError) as caught:
        verify(cosigned(checkpoint(), 1), settings(quorum=2))
    assert caught.value.details == {"cosigned": 1, "quorum": 2, "size": 7}


def test_a_witness_counts_once_however_many_lines_it_has() -> None:
    note = checkpoint()
    lines = [cosign(note.text, NAMES[0], WITNESSES[0], NOW - k) for k in range(3)]
    with pytest.raises(NotWitnessedError):
        verify(note.with_signatures(lines).format(), settings(quorum=2))


def test_a_cosignature_older_than_max_age_is_not_counted() -> None:
    """A server that keeps serving an old checkpoint (from before a fork or a revocation)
    can do so only until its cosignatures are ``max_age_hours`` old: witnesses cosign only
    the newest size they saw, so the old one gets no fresh cosignature."""
    text = cosigned(checkpoint(), 0, 1, at=NOW - 24 * 3600 - 1)
    with pytest.raises(NotWitnessedError):
        verify(text, settings(quorum=2, max_age_hours=24))
    assert verify(text, settings(quorum=2, max_age_hours=25)).size == 7


def test_a_cosignature_from_the_future_is_not_counted() -> None:
    text = cosigned(checkpoint(), 0, 1, at=NOW + MAX_FUTURE + 1)
    with pytest.raises(NotWitnessedError):
        verify(text, settings(quorum=2))
    assert verify(text, settings(quorum=2), now=NOW + 2).size == 7


def test_a_cosignature_of_another_checkpoint_is_a_bad_signature() -> None:
    """A real cosignature moved onto the checkpoint of another history (same size, another
    root) does not verify: a forged cosignature is refused, never merely uncounted."""
    real = checkpoint(7, b"\x01" * 32)
    line = cosign(real.text, NAMES[0], WITNESSES[0], NOW)
    fork = checkpoint(7, b"\x02" * 32).with_signatures([line])
    with pytest.raises(SignatureError):
        verify(fork.format(), settings(quorum=1))


def test_a_cosignature_by_an_unnamed_witness_is_ignored() -> None:
    stranger = Signer(b"\x05" * 32)
    note = checkpoint()
    text = note.with_signatures([cosign(note.text, "stranger.example/w", stranger, NOW)]).format()
    with pytest.raises(NotWitnessedError):
        verify(text, settings(quorum=1))


def test_a_checkpoint_not_signed_by_the_log_key_is_refused() -> None:
    other = Signer(b"\x06" * 32)
    note = sign_checkpoint(AUDIT, NETWORK, 7, b"\x09" * 32, other)
    with pytest.raises(SignatureError):
        verify(note.format())


def test_a_checkpoint_of_another_network_is_refused() -> None:
    note = sign_checkpoint(AUDIT, "Another_network_idxxxQ", 7, b"\x09" * 32, LOG)
    with pytest.raises((MalformedError, SignatureError)):
        verify(note.format())


def test_a_checkpoint_with_extension_lines_is_refused() -> None:
    text = Checkpoint(origin(AUDIT, NETWORK), 7, b"\x09" * 32, ("chain 3",)).text()
    note = Note(text, (sign_note(text, origin(AUDIT, NETWORK), LOG),))
    with pytest.raises(MalformedError):
        verify(note.format())


def test_the_log_signature_and_cosignatures_round_trip_through_the_note_format() -> None:
    text = cosigned(checkpoint(), 0, 1, 2)
    assert parse_note(text).format() == text
    assert verify(text, settings(quorum=3)).cosigned.keys() == set(NAMES)


# --------------------------------------------------------------------------- the policy


def policy_with(witnesses: dict[str, Any]) -> dict[str, Any]:
    policy = default_policy("neighbourhood").to_json()
    policy["witnesses"] = witnesses
    return policy


def test_a_policy_names_its_witnesses_and_quorum() -> None:
    policy = Policy.from_json(policy_with(settings().to_json()))
    assert policy.witnesses is not None and policy.witnesses.quorum == 2
    assert [v.name for v in policy.witnesses.verifiers] == NAMES
    assert Policy.from_json(policy.to_json()) == policy


def test_a_policy_without_witnesses_keeps_its_canonical_form() -> None:
    policy = default_policy("neighbourhood")
    assert policy.witnesses is None and "witnesses" not in policy.to_json()


@pytest.mark.parametrize("change, why", [
    (lambda w: {**w, "quorum": 4}, "a quorum above the witnesses named"),
    (lambda w: {**w, "witnesses": []}, "no witness at all"),
    (lambda w: {**w, "witnesses": w["witnesses"] + w["witnesses"][:1]}, "a witness twice"),
    (lambda w: {**w, "witnesses": [{**w["witnesses"][0], "vkey": NoteVerifier(
        NAMES[0], ED25519, WITNESSES[0].verify_key).vkey()}]}, "a note key, not a cosigner"),
    (lambda w: {**w, "witnesses": [{**w["witnesses"][0],
                                    "vkey": w["witnesses"][0]["vkey"][:-2] + "AA"}]},
     "a key hash that is not its key's"),
    (lambda w: {**w, "max_age_hours": 0}, "no time to count a cosignature"),
    (lambda w: {**w, "witnesses": [{**w["witnesses"][0], "url": "ftp://w.example"}]},
     "a URL that is not http(s)"),
])
def test_a_policy_with_a_bad_witness_part_is_refused(change: Any, why: str) -> None:
    with pytest.raises(MalformedError):
        Policy.from_json(policy_with(change(settings().to_json())))


# --------------------------------------------------------------------------- shown to people


def test_a_missing_quorum_is_shown_in_the_console_as_what_it_means() -> None:
    """The console's audit screen explains ``not_witnessed`` (not a misbehaviour: the
    witnesses may be down) with what it means and what to do, in Dutch."""
    from schakel.cli.console.audit import NOT_WITNESSED, NOT_WITNESSED_TODO, failure
    from schakel.cli.i18n import _, use

    use("nl")
    try:
        error = NotWitnessedError("cosigned by 1 of the 2", details={"cosigned": 1, "quorum": 2})
        shown = failure(error)
        assert shown["meaning"] == _(NOT_WITNESSED) != NOT_WITNESSED
        assert shown["todo"] == _(NOT_WITNESSED_TODO) and "getuigen" in shown["todo"]
    finally:
        use(None)


def test_a_missing_quorum_exits_the_command_line_as_untrusted() -> None:
    from schakel.cli.main import EXIT_UNTRUSTED, exit_code

    assert exit_code(NotWitnessedError("cosigned by 0 of the 2")) == EXIT_UNTRUSTED
