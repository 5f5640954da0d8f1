"""Case, event, identity-record, gated-envelope and signal objects
(docs/protocol.md §C.1–§C.8)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schakel.protocol.crypto import BoxSecretKey, Signer
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ContextMismatchError, MalformedError, SignatureError
from schakel.protocol.objects.base import SignedObject
from schakel.protocol.objects.cases import (
    BlindIndexToken,
    CaseHeader,
    CaseRekey,
    Event,
    GatedEnvelope,
    IdentityPurge,
    IdentityRecord,
    check_link,
    event_hash,
)
from schakel.protocol.objects.plaintext import IdentityName, IdentityOfficial, IdentityOther
from schakel.protocol.objects.signals import Signal, SignalContent, SignalFeedback, SignalStatus
from schakel.protocol.signing import add_signature

OWNER = Signer(bytes(range(32)))
OTHER = Signer(bytes(range(1, 33)))
COORD = Signer(bytes(range(2, 34)))
NETWORK = b64e(b"N" * 16)
CASE = b64e(b"C" * 16)
EVENT = b64e(b"E" * 16)
SIGNAL = b64e(b"S" * 16)
REPLY = b64e(BoxSecretKey(bytes(range(3, 35))).public_key.raw)
T0 = "2026-11-28T22:00:00Z"
SENTINEL = "SENTINELxSENTINELx"
# Canonical-alphabet but non-canonical base64url (trailing bits set), distinctive.
NONCANONICAL_B64 = "SENTINEL" * 8 + "AB"


def header_json(**over: Any) -> dict[str, Any]:
    value = {
        "type": "case-header", "network": NETWORK, "case": CASE, "owner": OWNER.key_id,
        "acting_user": "mw-0042", "kind": "case", "created": T0, "epoch": 1,
        "case_key_version": 1, "wrapped_case_key": b64e(b"w" * 72), "identity_version": 1,
        "classes": ["name", "address"],
    }
    value.update(over)
    return value


def event_json(**over: Any) -> dict[str, Any]:
    value = {
        "type": "event", "network": NETWORK, "case": CASE, "event": EVENT,
        "author": OWNER.key_id, "acting_user": "mw-0042", "seq": 1, "created": T0,
        "case_key_version": 1, "ciphertext": b64e(b"c" * 100),
    }
    value.update(over)
    return value


def record_json(**over: Any) -> dict[str, Any]:
    value = {"type": "identity-record", "network": NETWORK, "case": CASE, "class": "official",
             "version": 1, "ciphertext": b64e(b"i" * 80)}
    value.update(over)
    return value


def gated_json(**over: Any) -> dict[str, Any]:
    value = {"network": NETWORK, "case": CASE, "class": "name", "version": 2,
             "recipient": OTHER.key_id, "blob": b64e(b"g" * 300)}
    value.update(over)
    return value


def rekey_json(**over: Any) -> dict[str, Any]:
    value = {"type": "case-rekey", "network": NETWORK, "case": CASE, "case_key_version": 2,
             "epoch": 3, "wrapped_case_key": b64e(b"w" * 72), "acting_user": "regie-01",
             "at": T0, "reason": "member removed"}
    value.update(over)
    return value


def purge_json(**over: Any) -> dict[str, Any]:
    value = {"type": "identity-purge", "network": NETWORK, "case": CASE,
             "purge": b64e(b"p" * 16), "kind": "erasure", "identity_version": 1,
             "classes": ["address", "name"], "acting_user": "regie-01", "at": T0,
             "reason": "verzoek betrokkene, AVG art. 17"}
    value.update(over)
    return value


def signal_json(**over: Any) -> dict[str, Any]:
    value = {"type": "signal", "network": NETWORK, "signal": SIGNAL, "source": "shell",
             "created": T0, "sealed": b64e(b"s" * 400), "reply_key": REPLY,
             "acting_user": "vrijwilliger-7", "tokens": [{"kind": "bsn", "token": b64e(b"t" * 8)}]}
    value.update(over)
    return value


def content_json(**over: Any) -> dict[str, Any]:
    value = {"network": NETWORK, "signal": SIGNAL, "reply_key": REPLY,
             "signaller_kind": "volunteer-driver",
             "concern": "Mevrouw komt al weken niet naar buiten; de gordijnen blijven dicht.",
             "domains": ["loneliness", "self-care"], "urgency": "medium", "contact_back": True,
             "identity": {"name": {"given_names": "Johanna", "family_name": "de Vries"},
                          "address": {"street": "Dorpsstraat", "house_number": "12A",
                                      "postcode": "3511 AB", "city": "Utrecht"},
                          "official": {"bsn": "111222333", "date_of_birth": "1941-02-28"},
                          "buurt-extra": {"remark": "portiek links"}}}
    value.update(over)
    return value


def feedback_json(**over: Any) -> dict[str, Any]:
    value = {"type": "signal-feedback", "network": NETWORK, "signal": SIGNAL,
             "status": "taken-up", "at": T0, "message": b64e(b"m" * 120)}
    value.update(over)
    return value


def status_json(**over: Any) -> dict[str, Any]:
    value = {"signal": SIGNAL, "status": "taken-up", "updated": T0,
             "feedback": [SignalFeedback.from_json(feedback_json()).sign(COORD)]}
    value.update(over)
    return value


EXAMPLES = {
    "case-header": (CaseHeader, header_json),
    "blind-index-token": (BlindIndexToken, lambda **o: {"kind": "bsn", "token": b64e(b"t" * 8), **o}),
    "event": (Event, event_json),
    "identity-record": (IdentityRecord, record_json),
    "gated-envelope": (GatedEnvelope, gated_json),
    "case-rekey": (CaseRekey, rekey_json),
    "identity-purge": (IdentityPurge, purge_json),
    "signal": (Signal, signal_json),
    "signal-content": (SignalContent, content_json),
    "signal-feedback": (SignalFeedback, feedback_json),
    "signal-status": (SignalStatus, status_json),
}


def assert_malformed(fn: Any, field: str, bad: Any) -> MalformedError:
    """``fn`` raises MalformedError naming ``field`` and never echoing ``bad``."""
    with pytest.raises(MalformedError) as info:
        fn()
    exc = info.value
    text = str(exc) + " " + json.dumps(exc.details)
    assert field in text, text
    if isinstance(bad, str) and len(bad) >= 6:
        marker = bad[:40]
        assert marker not in str(exc) and marker not in json.dumps(exc.details)
    elif isinstance(bad, int) and not isinstance(bad, bool) and abs(bad) > 1000:
        assert str(bad) not in text
    return exc


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_valid_example_round_trips(name: str) -> None:
    cls, make = EXAMPLES[name]
    value = make()
    obj = cls.from_json(value)
    assert cls.from_json(obj.to_json()) == obj
    assert cls.from_json(json.loads(json.dumps(obj.to_json()))) == obj


def test_consult_round_trips_without_identity() -> None:
    value = header_json(kind="consult")
    for k in ("identity_version", "classes"):
        del value[k]
    obj = CaseHeader.from_json(value)
    assert obj.is_consult and obj.to_json() == value


def test_objects_built_with_lists_equal_parsed_ones() -> None:
    built = CaseHeader(network=NETWORK, case=CASE, owner=OWNER.key_id, acting_user="u",
                       kind="case", created=T0, epoch=1, case_key_version=1,
                       wrapped_case_key=b64e(b"w" * 72), identity_version=1,
                       classes=["name"])
    assert CaseHeader.from_json(built.to_json()) == built
    assert isinstance(built.classes, tuple)


def test_signal_content_identity_is_typed() -> None:
    content = SignalContent.from_json(content_json())
    assert content.identity is not None
    assert isinstance(content.identity["name"], IdentityName)
    assert isinstance(content.identity["official"], IdentityOfficial)
    assert isinstance(content.identity["buurt-extra"], IdentityOther)
    assert "Johanna" not in repr(content) and "Mevrouw" not in repr(content)


def test_objects_are_immutable() -> None:
    obj = CaseHeader.from_json(header_json())
    with pytest.raises(AttributeError):
        obj.kind = "consult"  # type: ignore[misc]
    status = SignalStatus.from_json(status_json())
    with pytest.raises(TypeError):
        status.feedback[0]["signed"] = {}  # type: ignore[index]


# --------------------------------------------------------------------------- malformed input

# (object, field, bad value); the bad value is set at the field (dotted path).
BAD: list[tuple[str, str, Any]] = [
    ("case-header", "network", "SENTINEL-not-an-id!!!!"),
    ("case-header", "case", "SENTINELxSENTINELxSENTINELx"),
    ("case-header", "owner", SENTINEL),
    ("case-header", "acting_user", "SENTINEL with spaces"),
    ("case-header", "acting_user", "SENTINEL" * 20),
    ("case-header", "kind", "SENTINEL-kind"),
    ("case-header", "created", "2026-11-28 22:00:00 SENTINEL"),
    ("case-header", "created", "2026-13-28T22:00:00Z"),
    ("case-header", "epoch", 0),
    ("case-header", "epoch", 31415926),
    ("case-header", "epoch", "SENTINEL-epoch"),
    ("case-header", "case_key_version", True),
    ("case-header", "wrapped_case_key", "SENTINEL!!" * 8),
    ("case-header", "wrapped_case_key", NONCANONICAL_B64),
    ("case-header", "wrapped_case_key", b64e(b"x" * 10)),
    ("case-header", "wrapped_case_key", "SENTINEL" * 60),
    ("case-header", "classes", ["SENTINEL-Upper"]),
    ("case-header", "classes", ["name", "name"]),
    ("case-header", "classes", []),
    ("blind-index-token", "token", b64e(b"abc")),
    ("blind-index-token", "token", "SENTINEL!"),
    ("event", "event", "SENTINEL-event-id-xxxxxx"),
    ("event", "author", 31415926),
    ("event", "seq", 0),
    ("event", "seq", "SENTINEL-seq"),
    ("event", "seq", 10 ** 12),
    ("event", "prev", "SENTINEL-prev"),
    ("event", "ciphertext", "SENTINEL" * 11000),
    ("event", "ciphertext", NONCANONICAL_B64),
    ("event", "ciphertext", "SENTINEL" * 8 + "A"),
    ("event", "status", "SENTINEL-referred"),
    ("event", "created", "SENTINEL"),
    ("identity-record", "class", "SENTINEL CLASS"),
    ("identity-record", "version", -31415926),
    ("identity-record", "ciphertext", "SENTINEL" * 2800),
    ("identity-record", "ciphertext", NONCANONICAL_B64),
    ("gated-envelope", "recipient", "SENTINEL-recipient"),
    ("gated-envelope", "blob", "SENTINEL" * 180),
    ("gated-envelope", "blob", b64e(b"g" * 50)),
    ("gated-envelope", "class", ["SENTINEL"]),
    ("case-rekey", "case_key_version", 1),
    ("case-rekey", "case_key_version", 31415926),
    ("case-rekey", "epoch", 0),
    ("case-rekey", "wrapped_case_key", NONCANONICAL_B64),
    ("case-rekey", "wrapped_case_key", b64e(b"x" * 10)),
    ("case-rekey", "wrapped_case_key", "SENTINEL" * 60),
    ("case-rekey", "reason", ""),
    ("case-rekey", "at", "SENTINEL-at"),
    ("identity-purge", "kind", "SENTINEL-kind"),
    ("identity-purge", "identity_version", 0),
    ("identity-purge", "classes", []),
    ("identity-purge", "reason", ""),
    ("identity-purge", "purge", "SENTINEL-purge"),
    ("signal", "source", "SENTINEL-source"),
    ("signal", "reply_key", "SENTINEL-reply-key"),
    ("signal", "reply_key", b64e(b"k" * 31)),
    ("signal", "sealed", "SENTINEL" * 5500),
    ("signal", "sealed", NONCANONICAL_B64),
    ("signal", "acting_user", ""),
    ("signal", "tokens.0.token", "SENTINEL=="),
    ("signal", "type", "SENTINEL-type"),
    ("signal-content", "network", "SENTINEL-net"),
    ("signal-content", "signaller_kind", "SENTINEL-kind"),
    ("signal-content", "concern", "SENTINEL" * 501),
    ("signal-content", "concern", ""),
    ("signal-content", "domains", ["SENTINEL-domain"]),
    ("signal-content", "domains", ["nuisance", "nuisance"]),
    ("signal-content", "urgency", "SENTINEL-urgent"),
    ("signal-content", "contact_back", "SENTINEL-yes"),
    ("signal-content", "identity", "SENTINEL-identity"),
    ("signal-content", "identity.name.family_name", 31415926),
    ("signal-content", "identity.address.postcode", "SENTINEL"),
    ("signal-content", "identity.official.bsn", "123456789"),
    ("signal-content", "identity.buurt-extra.remark", "SENTINEL" * 70),
    ("signal-content", "identity.NAME", {"given_names": "SENTINEL", "family_name": "x"}),
    ("signal-feedback", "status", "SENTINEL-status"),
    ("signal-feedback", "at", "SENTINEL-at"),
    ("signal-feedback", "message", "SENTINEL" * 1400),
    ("signal-feedback", "message", b64e(b"m" * 20)),
    ("signal-status", "status", "SENTINEL-status"),
    ("signal-status", "updated", "SENTINEL-updated"),
    ("signal-status", "feedback", [status_json()["feedback"][0]] * 51),
    ("signal-status", "feedback.0.signed.status", "SENTINEL-inner"),
    ("signal-status", "feedback.0.signatures", []),
]


def _set(value: dict[str, Any], path: str, bad: Any) -> dict[str, Any]:
    value = copy.deepcopy(value)
    parts = path.split(".")
    target: Any = value
    for p in parts[:-1]:
        target = target[int(p)] if isinstance(target, list) else target[p]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = bad
    else:
        target[last] = bad
    return value


def _field_name(path: str) -> str:
    # A bad *key* of the identity map is reported at the map, without the key.
    if path == "identity.NAME":
        return "identity"
    return [p for p in path.split(".") if not p.isdigit()][-1]


@pytest.mark.parametrize(("name", "path", "bad"), BAD, ids=[f"{n}:{p}:{i}" for i, (n, p, _) in enumerate(BAD)])
def test_malformed_field_is_refused_without_echo(name: str, path: str, bad: Any) -> None:
    cls, make = EXAMPLES[name]
    assert_malformed(lambda: cls.from_json(_set(make(), path, bad)), _field_name(path), bad)


OPTIONAL = {"case-header": {"classes"}, "signal": {"type", "tokens"},
            "signal-content": {"domains", "identity"}, "signal-feedback": {"message"}}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_missing_unknown_and_mistyped_fields(name: str) -> None:
    cls, make = EXAMPLES[name]
    valid = make()
    for key in valid:
        if key in OPTIONAL.get(name, ()):
            continue
        broken = dict(valid)
        del broken[key]
        assert_malformed(lambda: cls.from_json(broken), key, None)
        wrong = dict(valid, **{key: 31415926 if isinstance(valid[key], str) else SENTINEL})
        assert_malformed(lambda: cls.from_json(wrong), key, wrong[key])
    extra = dict(valid, zz_unknown=SENTINEL)
    assert_malformed(lambda: cls.from_json(extra), "zz_unknown", SENTINEL)
    assert_malformed(lambda: cls.from_json([valid]), "(root)", None)


def test_constructor_validates_too() -> None:
    with pytest.raises(MalformedError):
        GatedEnvelope(network=NETWORK, case=CASE, class_="name", version=1,
                      recipient=OTHER.key_id, blob="SENTINEL")


# --------------------------------------------------------------------------- semantic rules


def test_case_header_carries_no_blind_index_tokens() -> None:
    # ADR 0004: members sync headers and hold the match key; tokens in the header
    # would let any member test whether a person it knows is a case.
    value = header_json(tokens=[{"kind": "bsn", "token": b64e(b"t" * 4)}])
    assert_malformed(lambda: CaseHeader.from_json(value), "tokens", None)


@pytest.mark.parametrize("field", ["identity_version", "classes"])
def test_consult_with_identity_is_refused(field: str) -> None:
    value = header_json(kind="consult")
    for k in ("identity_version", "classes"):
        if k != field:
            del value[k]
    exc = assert_malformed(lambda: CaseHeader.from_json(value), field, None)
    assert "consult" in str(exc)


def test_case_without_identity_version_is_refused() -> None:
    value = header_json()
    del value["identity_version"]
    assert_malformed(lambda: CaseHeader.from_json(value), "identity_version", None)


def test_event_chain_rules() -> None:
    prev = b64e(b"p" * 32)
    assert_malformed(lambda: Event.from_json(event_json(seq=1, prev=prev)), "prev", prev)
    assert_malformed(lambda: Event.from_json(event_json(seq=2)), "prev", None)
    assert Event.from_json(event_json(seq=2, prev=prev)).seq == 2


def test_shell_signal_requires_acting_user_and_anonymous_forbids_it() -> None:
    value = signal_json()
    del value["acting_user"]
    assert_malformed(lambda: Signal.from_json(value), "acting_user", None)
    assert_malformed(lambda: Signal.from_json(signal_json(source="anonymous")), "acting_user", None)
    bare = signal_json(source="anonymous")
    del bare["acting_user"], bare["type"]
    assert Signal.from_json(bare).source == "anonymous"


# --------------------------------------------------------------------------- signatures

SIGNED = {
    "case-header": (CaseHeader, header_json, OWNER, {"epoch": 2}),
    "event": (Event, event_json, OWNER, {"status": "closed"}),
    "identity-record": (IdentityRecord, record_json, OWNER, {"class": "name"}),
    "case-rekey": (CaseRekey, rekey_json, COORD, {"epoch": 4}),
    "signal": (Signal, signal_json, OTHER, {"acting_user": "iemand-anders"}),
    "signal-feedback": (SignalFeedback, feedback_json, COORD, {"status": "closed"}),
}


@pytest.mark.parametrize("name", sorted(SIGNED))
def test_sign_verify_and_tamper(name: str) -> None:
    cls, make, signer, change = SIGNED[name]
    obj = cls.from_json(make())
    envelope = obj.sign(signer)
    assert cls.from_envelope(envelope, [signer.verify_key]) == obj
    tampered = copy.deepcopy(envelope)
    tampered["signed"].update(change)
    with pytest.raises(SignatureError):
        cls.from_envelope(tampered, [signer.verify_key])
    with pytest.raises(SignatureError):
        cls.from_envelope(envelope, [COORD.verify_key if signer is not COORD else OWNER.verify_key])


def test_unsigned_objects_cannot_be_signed() -> None:
    """Only a SignedObject has ``sign``: signing an unsigned object is a type error that
    mypy reports, and has nothing to call at run time."""
    gated = GatedEnvelope.from_json(gated_json())
    assert not isinstance(gated, SignedObject) and not gated.SIGNED
    with pytest.raises(AttributeError):
        getattr(gated, "sign")


def test_header_and_event_must_be_signed_by_owner_and_author() -> None:
    header = CaseHeader.from_json(header_json())
    with pytest.raises(SignatureError):
        CaseHeader.from_envelope(header.sign(OTHER), [OTHER.verify_key])
    event = Event.from_json(event_json())
    with pytest.raises(SignatureError):
        Event.from_envelope(event.sign(OTHER), [OTHER.verify_key])


def test_event_with_extra_signature_is_refused() -> None:
    envelope = add_signature(Event.from_json(event_json()).sign(OWNER), OTHER)
    with pytest.raises(SignatureError):
        Event.from_envelope(envelope, [OWNER.verify_key])


def test_signal_submission() -> None:
    shell = Signal.from_json(signal_json())
    assert Signal.from_submission(shell.sign(OTHER), [OTHER.verify_key]) == shell
    with pytest.raises(SignatureError):
        Signal.from_submission(shell.to_json(), [OTHER.verify_key])
    bare = signal_json(source="anonymous")
    del bare["acting_user"]
    anonymous = Signal.from_submission(bare, [OTHER.verify_key])
    with pytest.raises(MalformedError):
        Signal.from_submission(anonymous.sign(OTHER), [OTHER.verify_key])


def test_signal_content_binding() -> None:
    signal = Signal.from_json(signal_json())
    content = SignalContent.from_json(content_json())
    content.check_binding(signal)
    moved = Signal.from_json(signal_json(signal=b64e(b"T" * 16)))
    with pytest.raises(ContextMismatchError):
        content.check_binding(moved)
    swapped = Signal.from_json(signal_json(reply_key=b64e(b"r" * 32)))
    with pytest.raises(ContextMismatchError):
        content.check_binding(swapped)


def test_signal_status_verified_feedback() -> None:
    first = SignalFeedback.from_json(dict(_feedback_no_message(), status="received"))
    second = SignalFeedback.from_json(feedback_json(at="2026-11-29T09:00:00Z"))
    envs = [first.sign(COORD), second.sign(COORD)]
    status = SignalStatus.from_json(status_json(feedback=envs))
    assert status.verified_feedback([COORD.verify_key], network=NETWORK) == (first, second)
    with pytest.raises(MalformedError):
        SignalStatus.from_json(status_json(status="closed", feedback=envs)).verified_feedback(
            [COORD.verify_key])
    with pytest.raises(MalformedError):
        SignalStatus.from_json(status_json(feedback=envs[::-1])).verified_feedback([COORD.verify_key])
    with pytest.raises(SignatureError):
        status.verified_feedback([OWNER.verify_key])
    other = SignalFeedback.from_json(feedback_json(signal=b64e(b"T" * 16))).sign(COORD)
    with pytest.raises(ContextMismatchError):
        SignalStatus.from_json(status_json(feedback=[other])).verified_feedback([COORD.verify_key])
    empty = SignalStatus.from_json(status_json(status="received", feedback=[]))
    assert empty.verified_feedback([COORD.verify_key]) == ()


def _feedback_no_message() -> dict[str, Any]:
    value = feedback_json()
    del value["message"]
    return value


def test_feedback_message_is_optional() -> None:
    assert SignalFeedback.from_json(_feedback_no_message()).message is None


# --------------------------------------------------------------------------- event chain


def _chain(n: int) -> list[dict[str, Any]]:
    envelopes: list[dict[str, Any]] = []
    for seq in range(1, n + 1):
        over: dict[str, Any] = {"seq": seq, "event": b64e(bytes([seq]) * 16)}
        if envelopes:
            over["prev"] = b64e(event_hash(envelopes[-1]))
        envelopes.append(Event.from_json(event_json(**over)).sign(OWNER))
    return envelopes


def test_event_hash_is_domain_separated_sha256() -> None:
    from schakel.protocol.canonical import canonical_json
    from schakel.protocol.crypto import sha256

    envelope = _chain(1)[0]
    assert event_hash(envelope) == sha256(b"schakel/v1/event-hash" + canonical_json(envelope))
    assert event_hash(envelope) != sha256(canonical_json(envelope))
    with pytest.raises(MalformedError):
        event_hash({"signed": {"type": "event"}, "signatures": envelope["signatures"]})


def test_check_link_detects_drop_reorder_and_transplant() -> None:
    envs = _chain(4)
    events = [Event.from_envelope(e, [OWNER.verify_key]) for e in envs]
    check_link(None, events[0])
    for before, after in zip(envs, events[1:]):
        check_link(before, after)
    with pytest.raises(ContextMismatchError):
        check_link(None, events[1])              # first event dropped
    with pytest.raises(ContextMismatchError):
        check_link(envs[0], events[2])           # event 2 dropped
    with pytest.raises(ContextMismatchError):
        check_link(envs[2], events[1])           # reordered
    forged = Event.from_json(event_json(seq=2, prev=b64e(b"x" * 32)))
    with pytest.raises(ContextMismatchError):
        check_link(envs[0], forged)              # replaced predecessor
    other_case = Event.from_json(event_json(seq=2, case=b64e(b"D" * 16), prev=events[1].prev))
    with pytest.raises(ContextMismatchError):
        check_link(envs[0], other_case)          # transplanted from another case


# --------------------------------------------------------------------------- fuzzing

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 53) + 1, 2 ** 53 - 1) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
CLASSES = [cls for cls, _ in EXAMPLES.values()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cls=st.sampled_from(CLASSES), value=JSON)
def test_arbitrary_json_raises_only_malformed(cls: Any, value: Any) -> None:
    try:
        cls.from_json(value)
    except MalformedError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(EXAMPLES)), data=st.data())
def test_mutated_examples_raise_only_malformed(name: str, data: st.DataObject) -> None:
    cls, make = EXAMPLES[name]
    value = make()
    key = data.draw(st.sampled_from(sorted(value)))
    value[key] = data.draw(JSON)
    try:
        cls.from_json(value)
    except MalformedError:
        pass


# --------------------------------------------------------------------------- encrypted layers


def test_signal_content_must_fit_the_sealed_box() -> None:
    identity = {f"extra-{i}": {f"f{j}": "€" * 500 for j in range(10)} for i in range(4)}
    assert_malformed(lambda: SignalContent.from_json(content_json(identity=identity)),
                     "larger than", None)


def test_objects_carry_what_protocol_envelopes_produces() -> None:
    from schakel.protocol import envelopes
    from schakel.protocol.crypto import CaseKey, ClassKey, EpochKey
    from schakel.protocol.objects.plaintext import Intake, parse_anonymous_event

    epoch_key, case_key = EpochKey.generate(), CaseKey.generate()
    wrapped = envelopes.wrap_case_key(epoch_key, case_key, network=NETWORK, case=CASE,
                                      epoch=3, version=1)
    header = CaseHeader.from_json(header_json(epoch=3, wrapped_case_key=wrapped))
    assert envelopes.unwrap_case_key(epoch_key, header.wrapped_case_key, network=NETWORK,
                                     case=CASE, epoch=header.epoch,
                                     version=header.case_key_version) == case_key

    intake = Intake(age_band="65-74", neighbourhood="Kanaleneiland", domains=("financial",),
                    severity="high", care_status="misses-care", source="partner",
                    complex=False, summary="Schulden, post blijft ongeopend.")
    ctx = envelopes.event_context(NETWORK, CASE, EVENT, version=1)
    event = Event.from_json(event_json(ciphertext=envelopes.encrypt_json(case_key, intake.to_json(), ctx)))
    assert parse_anonymous_event(envelopes.decrypt_json(case_key, event.ciphertext, ctx)) == intake

    gate, member = BoxSecretKey.generate(), BoxSecretKey.generate()
    gctx = envelopes.GateContext(network=NETWORK, case=CASE, cls="official", version=1,
                                 recipient=OTHER.key_id)
    blob = envelopes.make_gated(gate.public_key, member.public_key, ClassKey.generate(), gctx)
    gated = GatedEnvelope(network=NETWORK, case=CASE, class_="official", version=1,
                          recipient=OTHER.key_id, blob=blob)
    assert gated.to_json()["class"] == "official"


def test_rekey_carries_what_protocol_envelopes_wraps() -> None:
    """A case-rekey's key opens with the epoch key under its own context only: the
    server cannot relabel its version or epoch, or move it to another case."""
    from schakel.protocol import envelopes
    from schakel.protocol.crypto import CaseKey, EpochKey
    from schakel.protocol.errors import DecryptionError

    epoch_key, case_key = EpochKey.generate(), CaseKey.generate()
    wrapped = envelopes.wrap_case_key(epoch_key, case_key, network=NETWORK, case=CASE,
                                      epoch=3, version=2)
    rekey = CaseRekey.from_json(rekey_json(wrapped_case_key=wrapped))
    assert rekey.unwrap(epoch_key) == case_key
    for moved in (rekey_json(wrapped_case_key=wrapped, case_key_version=3),
                  rekey_json(wrapped_case_key=wrapped, epoch=4),
                  rekey_json(wrapped_case_key=wrapped, case=b64e(b"D" * 16))):
        with pytest.raises(DecryptionError):
            CaseRekey.from_json(moved).unwrap(epoch_key)
    with pytest.raises(DecryptionError):
        rekey.unwrap(EpochKey.generate())


def test_cleartext_status_must_match_the_content() -> None:
    from schakel.protocol.objects.cases import check_event_status
    from schakel.protocol.objects.plaintext import Note, StatusChange

    closing = StatusChange(status="closed", reason="Afgerond.")
    check_event_status(Event.from_json(event_json(status="closed")), closing)
    check_event_status(Event.from_json(event_json()), Note(text="n"))
    check_event_status(Event.from_json(event_json()), StatusChange(status="referred", reason="OGGZ"))
    with pytest.raises(ContextMismatchError):
        check_event_status(Event.from_json(event_json()), closing)
    with pytest.raises(ContextMismatchError):
        check_event_status(Event.from_json(event_json(status="open")), closing)
    with pytest.raises(ContextMismatchError):
        check_event_status(Event.from_json(event_json(status="closed")), Note(text="n"))


# --------------------------------------------------------------------------- strictness beyond the schema

STRICT: list[tuple[str, str, Any]] = [
    ("case-header", "network", NETWORK + "\n"),       # '$' matches before a trailing newline
    ("case-header", "owner", OWNER.key_id + "\n"),
    ("case-header", "acting_user", "mw-0042\n"),
    ("case-header", "created", T0 + "\n"),
    ("case-header", "created", "2026-02-31T10:00:00Z"),
    ("case-header", "epoch", 1.0),
    ("event", "seq", 1.0),
    ("event", "prev", b64e(b"p" * 32) + "\n"),
    ("signal", "created", "2026-04-31T00:00:00Z"),
    ("signal-feedback", "at", "2025-02-29T00:00:00Z"),
    ("signal-status", "updated", "2026-06-31T00:00:00Z"),
    ("signal-content", "concern", "zorgen\x00SENTINEL"),
    ("signal-content", "identity.name.family_name", "Jansen\n"),
    ("signal-content", "identity.buurt-extra.remark", "x\x1bSENTINEL"),
    ("gated-envelope", "class", "name\n"),
]


@pytest.mark.parametrize(("name", "path", "bad"), STRICT,
                         ids=[f"{n}:{p}:{i}" for i, (n, p, _) in enumerate(STRICT)])
def test_strictness_beyond_the_schema(name: str, path: str, bad: Any) -> None:
    cls, make = EXAMPLES[name]
    assert_malformed(lambda: cls.from_json(_set(make(), path, bad)), _field_name(path), bad)


def test_multiline_free_text_keeps_its_lines() -> None:
    content = SignalContent.from_json(content_json(concern="Regel een.\nRegel twee.\tTab."))
    assert "\n" in content.concern
