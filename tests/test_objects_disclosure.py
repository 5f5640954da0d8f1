"""Disclosure objects (docs/protocol.md §D): consent, revocation,
grant, bemoeizorg invocation and co-sign, review, share, referral, purge
instruction and acknowledgement — round trips, malformed tables, signatures,
structural rules and a property test that only MalformedError escapes."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import JSON, json_paths

from schakel.protocol import envelopes, schema
from schakel.protocol.canonical import canonical_json, parse_json
from schakel.protocol.crypto import BoxSecretKey, CaseKey, Signer, sha256
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ContextMismatchError, DecryptionError, MalformedError, SignatureError
from schakel.protocol.objects.disclosure import (
    BemoeizorgCosign, BemoeizorgInvocation, Consent, ConsentRevocation, Grant, GrantBasis, Grantees,
    PurgeAck, PurgeInstruction, Referral, ReferralBasis, Review, SealedJustification, Share,
)

OWNER = Signer(bytes([1]) * 32)
COORD = Signer(bytes([2]) * 32)
GRANTEE = Signer(bytes([3]) * 32)
GRANTEE_BOX = BoxSecretKey(bytes([4]) * 32)
AUDITOR = Signer(bytes([5]) * 32)
AUDITOR_BOX = BoxSecretKey(bytes([6]) * 32)
AUDITOR2 = Signer(bytes([7]) * 32)
AUDITOR2_BOX = BoxSecretKey(bytes([8]) * 32)
BZ = Signer(bytes([9]) * 32)
LOG = Signer(bytes([10]) * 32)
OTHER = Signer(bytes([11]) * 32)


def _id(n: int) -> str:
    return b64e(bytes([n]) * 16)


NET, NET2, CASE, CASE2, CONSENT, GRANT, INVOCATION, INSTRUCTION = (_id(n) for n in range(40, 48))
T0 = "2026-11-28T22:00:00Z"
T1 = "2027-05-28T22:00:00Z"
SECRET = "Jansen-BSN-123456782"
SECRET_INT = 987654321
CASE_KEY = CaseKey(bytes([50]) * 32)
JUSTIFICATION = "Ernstige vervuiling van de woning; herhaalde zorgmijding."


def consent(**kw: Any) -> Consent:
    base: dict[str, Any] = dict(
        network=NET, consent=CONSENT, case=CASE, classes=["name", "address"],
        grantees=Grantees(partners=[GRANTEE.key_id], parties=["informal"]),
        purpose="Hulp bij schulden en contact met de woningcorporatie.\nMondeling toegelicht.",
        valid_from=T0, valid_until=T1, evidence=b64e(sha256(b"signed consent form")),
        acting_user="mw-0042", at=T0)
    base.update(kw)
    return Consent(**base)


def sealed_justification(auditor: Signer, box: BoxSecretKey, text: str = JUSTIFICATION, *,
                         invocation: str = INVOCATION, case: str = CASE) -> SealedJustification:
    return SealedJustification.seal(text, box.public_key, network=NET, invocation=invocation,
                                    case=case, auditor=auditor.key_id)


def invocation() -> BemoeizorgInvocation:
    return BemoeizorgInvocation(
        network=NET, invocation=INVOCATION, case=CASE, classes=("name", "address", "official"),
        ground="housing-pollution",
        justification=[sealed_justification(AUDITOR, AUDITOR_BOX),
                       sealed_justification(AUDITOR2, AUDITOR2_BOX)],
        acting_user="gz-007", at=T0)


def sealed_case_key(version: int = 1, case: str = CASE) -> str:
    return envelopes.seal_case_key(GRANTEE_BOX.public_key, CASE_KEY, network=NET, case=case,
                                   version=version, recipient_id=GRANTEE.key_id)


def share() -> Share:
    return Share(network=NET, case=CASE, partner=GRANTEE.key_id, case_key_version=1,
                 sealed_case_key=sealed_case_key(),
                 acting_user="regie-1", at=T0, reason="asked to help with daytime activities")


EXAMPLES: dict[str, Callable[[], Any]] = {
    "consent": consent,
    "consent-parties-only": lambda: consent(grantees=Grantees(parties=("formal", "informal"))),
    "consent-revocation": lambda: ConsentRevocation(network=NET, consent=CONSENT, case=CASE,
                                                    acting_user="mw-0042", at=T1,
                                                    reason="withdrawn by the person"),
    "grant": lambda: Grant(network=NET, grant=GRANT, case=CASE, grantee=GRANTEE.key_id,
                           classes=("name",), basis=GrantBasis(consent=CONSENT),
                           acting_user="regie-1", at=T0, reason="coordinating debt help"),
    "bemoeizorg-invocation": invocation,
    "bemoeizorg-cosign": lambda: BemoeizorgCosign(network=NET, invocation=INVOCATION, case=CASE,
                                                  acting_user="gz-008", at=T0),
    "review-invocation": lambda: Review(network=NET, invocation=INVOCATION, outcome="approved",
                                        note="Grond en onderbouwing in orde.\nGeen vervolg.",
                                        acting_user="fg-1", at=T1),
    "review-entry": lambda: Review(network=NET, entry=17, outcome="questioned", note="",
                                   acting_user="fg-1", at=T1),
    "share": share,
    "referral": lambda: Referral(network=NET, to_network=NET2, case=CASE, new_case=CASE2,
                                 basis=ReferralBasis(kind="consent", ref=CONSENT),
                                 acting_user="regie-1", at=T0, reason="acute risk: oggz takes over"),
    "purge-instruction": lambda: PurgeInstruction(network=NET, instruction=INSTRUCTION, case=CASE,
                                                  recipient=GRANTEE.key_id, classes=("name",),
                                                  reason="consent-revoked", ref=CONSENT, at=T1),
    "purge-instruction-no-ref": lambda: PurgeInstruction(
        network=NET, instruction=INSTRUCTION, case=CASE, recipient=GRANTEE.key_id,
        classes=("name", "address"), reason="retention", at=T1),
    "purge-ack": lambda: PurgeAck(network=NET, instruction=INSTRUCTION, case=CASE,
                                  acting_user="mw-0042", at=T1),
}


@pytest.fixture(params=sorted(EXAMPLES))
def example(request: pytest.FixtureRequest) -> Any:
    return EXAMPLES[request.param]()


# --------------------------------------------------------------------------- round trips


def test_round_trip(example: Any) -> None:
    cls = type(example)
    wire = example.to_json()
    assert wire["type"] == cls.TYPE and cls.SIGNED
    assert cls.from_json(wire) == example
    text = canonical_json(wire)
    again = cls.from_json(parse_json(text))
    assert again == example and canonical_json(again.to_json()) == text
    hash(example)


def test_optional_fields_are_omitted() -> None:
    assert "ref" not in EXAMPLES["purge-instruction-no-ref"]().to_json()
    wire = EXAMPLES["review-entry"]().to_json()
    assert "invocation" not in wire and wire["entry"] == 17


# --------------------------------------------------------------------------- malformed inputs

_DELETE = object()


def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target: Any = obj
    for p in parents:
        target = target[int(p)] if isinstance(target, list) else target[p]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return obj


MALFORMED = [
    # (example, path, bad value, field named in the message)
    ("consent", "consent", SECRET, "consent"),
    ("consent", "case", "AAAAAAAAAAAAAAAAAAAAA", "case"),
    ("consent", "classes", [], "classes"),
    ("consent", "classes", ["name", "name"], "classes"),
    ("consent", "classes", [SECRET], "classes"),
    ("consent", "grantees.partners", [b64e(sha256(bytes([i]))) for i in range(101)], "grantees.partners"),
    ("consent", "grantees.partners", [SECRET], "grantees.partners"),
    ("consent", "grantees.parties", ["volunteer"], "grantees.parties"),
    ("consent", "grantees.partners", _DELETE, "partners"),
    ("consent", "grantees.extra", [], "extra"),
    ("consent", "grantees", {"partners": [], "parties": []}, "grantees"),
    ("consent", "purpose", "", "purpose"),
    ("consent", "purpose", "x" * 501, "purpose"),
    ("consent", "purpose", "bad\x00byte", "purpose"),
    ("consent", "valid_until", T0, "valid_until"),
    ("consent", "valid_until", "2026-11-27T22:00:00Z", "valid_until"),
    ("consent", "valid_from", "2026-11-28 22:00:00Z", "valid_from"),
    ("consent", "valid_from", "2026-04-31T22:00:00Z", "valid_from"),
    ("consent", "evidence", b64e(bytes(16)), "evidence"),
    ("consent", "acting_user", "", "acting_user"),
    ("consent-revocation", "reason", "x" * 201, "reason"),
    ("consent-revocation", "at", 1700000000, "at"),
    ("grant", "basis.kind", "bemoeizorg", "basis.kind"),
    ("grant", "basis.consent", SECRET, "basis.consent"),
    ("grant", "basis", _DELETE, "basis"),
    ("grant", "grantee", SECRET, "grantee"),
    ("grant", "classes", ["c%d" % i for i in range(17)], "classes"),
    ("bemoeizorg-invocation", "ground", "Severe Self-Neglect", "ground"),
    ("bemoeizorg-invocation", "ground", "x" * 65, "ground"),
    ("bemoeizorg-invocation", "justification", [], "justification"),
    ("bemoeizorg-invocation", "justification.0.sealed", "A" * 16385, "justification[0].sealed"),
    ("bemoeizorg-invocation", "justification.0.sealed", "A" * 10, "justification[0].sealed"),
    ("bemoeizorg-invocation", "justification.0.sealed", "A+" * 50, "justification[0].sealed"),
    ("bemoeizorg-invocation", "justification.1.auditor", AUDITOR.key_id, "justification"),
    ("bemoeizorg-invocation", "justification.0.text", SECRET, "text"),
    ("bemoeizorg-cosign", "invocation", OTHER.key_id, "invocation"),
    ("review-invocation", "outcome", "rejected", "outcome"),
    ("review-invocation", "note", "x" * 2001, "note"),
    ("review-invocation", "entry", 3, "invocation"),
    ("review-invocation", "invocation", _DELETE, "invocation"),
    ("review-entry", "entry", -1, "entry"),
    ("review-entry", "entry", 1.5, "entry"),
    ("review-entry", "entry", 2.0, "entry"),
    ("share", "case_key_version", 0, "case_key_version"),
    ("share", "sealed_case_key", "A" * 106 + "B", "sealed_case_key"),
    ("bemoeizorg-invocation", "justification.0.sealed", "A" * 101, "justification[0].sealed"),
    ("bemoeizorg-invocation", "justification.0.sealed", "A" * 98 + "B", "sealed"),
    ("share", "sealed_case_key", b64e(bytes(81)), "sealed_case_key"),
    ("share", "partner", NET, "partner"),
    ("referral", "to_network", NET, "to_network"),
    ("referral", "new_case", CASE, "new_case"),
    ("referral", "basis.kind", "policy", "basis.kind"),
    ("referral", "basis.ref", _DELETE, "ref"),
    ("purge-instruction", "reason", "because", "reason"),
    ("purge-instruction", "recipient", SECRET, "recipient"),
    ("purge-instruction", "ref", "", "ref"),
    ("purge-ack", "instruction", SECRET, "instruction"),
    ("purge-ack", "at", T0 + "\n", "at"),
]


def _assert_clean(exc: MalformedError, field: str) -> None:
    text, rendered = str(exc), json.dumps(exc.to_wire())
    assert field in text, text
    for needle in (SECRET, str(SECRET_INT)):
        assert needle not in text and needle not in rendered, text


@pytest.mark.parametrize("name,path,bad,field", MALFORMED,
                         ids=[f"{m[0]}:{m[1]}:{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_table(name: str, path: str, bad: Any, field: str) -> None:
    example = EXAMPLES[name]()
    with pytest.raises(MalformedError) as info:
        type(example).from_json(_set(example.to_json(), path, bad))
    _assert_clean(info.value, field)


def test_generic_malformed_per_field(example: Any) -> None:
    cls, wire = type(example), example.to_json()
    optional = {"ref", "invocation", "entry"}
    for key, value in wire.items():
        if key not in optional:
            with pytest.raises(MalformedError) as info:
                cls.from_json({k: v for k, v in wire.items() if k != key})
            _assert_clean(info.value, key)
        bad = SECRET_INT if isinstance(value, str) else SECRET
        with pytest.raises(MalformedError) as info:
            cls.from_json({**wire, key: bad})
        _assert_clean(info.value, key)
    with pytest.raises(MalformedError) as info:
        cls.from_json({**wire, "zz_unknown": SECRET})
    _assert_clean(info.value, "zz_unknown")


# --------------------------------------------------------------------------- rules


def test_consent_validity_window() -> None:
    with pytest.raises(MalformedError, match="valid_until"):
        consent(valid_until="2026-11-01T00:00:00Z")
    with pytest.raises(MalformedError, match="valid_until"):
        consent(valid_until=T0)
    # Comparison is chronological, including across years.
    consent(valid_from="2026-12-31T23:59:59Z", valid_until="2027-01-01T00:00:00Z")


def test_consent_needs_a_grantee() -> None:
    with pytest.raises(MalformedError, match="grantees"):
        consent(grantees=Grantees())
    with pytest.raises(MalformedError, match="grantees"):
        consent(grantees={"partners": [], "parties": []})  # type: ignore[arg-type]


def test_review_has_exactly_one_subject() -> None:
    with pytest.raises(MalformedError, match="invocation"):
        Review(network=NET, outcome="approved", note="", acting_user="fg-1", at=T0)
    with pytest.raises(MalformedError, match="invocation"):
        Review(network=NET, invocation=INVOCATION, entry=1, outcome="approved", note="",
               acting_user="fg-1", at=T0)


def test_only_purpose_and_note_may_span_lines() -> None:
    consent(purpose="line one\nline two\ttab")
    with pytest.raises(MalformedError, match="reason"):
        dataclasses.replace(EXAMPLES["consent-revocation"](), reason="line one\nline two")
    with pytest.raises(MalformedError, match="purpose"):
        consent(purpose="bell\x07")


# --------------------------------------------------------------------------- signatures

SIGNERS = {
    "consent": OWNER, "consent-parties-only": COORD, "consent-revocation": OWNER, "grant": COORD,
    "bemoeizorg-invocation": BZ, "bemoeizorg-cosign": OTHER, "review-invocation": AUDITOR,
    "review-entry": AUDITOR, "share": COORD, "referral": COORD, "purge-instruction": LOG,
    "purge-instruction-no-ref": LOG, "purge-ack": GRANTEE,
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_sign_verify_tamper_wrong_key(name: str) -> None:
    obj, signer = EXAMPLES[name](), SIGNERS[name]
    cls = type(obj)
    env = obj.sign(signer)
    assert cls.from_envelope(json.loads(json.dumps(env)), [signer.verify_key]) == obj
    wrong = COORD if signer is not COORD else OWNER
    with pytest.raises(SignatureError):
        cls.from_envelope(env, [wrong.verify_key])
    with pytest.raises(SignatureError):
        cls.from_envelope(obj.sign(wrong), [signer.verify_key])
    tampered = copy.deepcopy(env)
    tampered["signed"]["at"] = "2030-01-01T00:00:00Z"
    with pytest.raises(SignatureError):
        cls.from_envelope(tampered, [signer.verify_key])
    swapped = copy.deepcopy(env)
    swapped["signed"]["network"] = NET2
    with pytest.raises(SignatureError):
        cls.from_envelope(swapped, [signer.verify_key])


def test_consent_signature_does_not_verify_as_revocation() -> None:
    env = consent().sign(OWNER)
    with pytest.raises(SignatureError):
        ConsentRevocation.from_envelope(env, [OWNER.verify_key])


# --------------------------------------------------------------------------- sealed parts


def test_justification_sealed_to_each_auditor() -> None:
    inv = invocation()
    sealed = inv.justification_for(AUDITOR.key_id)
    assert sealed is not None and inv.justification_for(OTHER.key_id) is None
    assert inv.open_justification(AUDITOR.key_id, AUDITOR_BOX) == JUSTIFICATION
    assert inv.open_justification(AUDITOR2.key_id, AUDITOR2_BOX) == JUSTIFICATION
    assert sealed.open(AUDITOR_BOX, network=NET, invocation=INVOCATION, case=CASE) == JUSTIFICATION
    with pytest.raises(DecryptionError):
        inv.open_justification(AUDITOR.key_id, GRANTEE_BOX)
    with pytest.raises(ContextMismatchError):
        inv.open_justification(OTHER.key_id, AUDITOR_BOX)
    with pytest.raises(MalformedError):
        sealed_justification(AUDITOR, AUDITOR_BOX, "")
    with pytest.raises(MalformedError):
        sealed_justification(AUDITOR, AUDITOR_BOX, "x" * 12001)
    sealed_justification(AUDITOR, AUDITOR_BOX, "x" * 12000)


def test_justification_is_bound_to_its_invocation_case_and_auditor() -> None:
    inv = invocation()
    for moved in (sealed_justification(AUDITOR, AUDITOR_BOX, invocation=CONSENT),
                  sealed_justification(AUDITOR, AUDITOR_BOX, case=CASE2)):
        with pytest.raises(ContextMismatchError):
            dataclasses.replace(inv, justification=[moved]).open_justification(
                AUDITOR.key_id, AUDITOR_BOX)
    # auditor 2's box sealed under auditor 1's name does not open as auditor 2's
    swapped = SealedJustification(auditor=AUDITOR2.key_id,
                                  sealed=sealed_justification(AUDITOR, AUDITOR2_BOX).sealed)
    with pytest.raises(ContextMismatchError):
        dataclasses.replace(inv, justification=[swapped]).open_justification(
            AUDITOR2.key_id, AUDITOR2_BOX)


def test_share_case_key() -> None:
    s = share()
    assert s.open_case_key(GRANTEE_BOX) == CASE_KEY
    with pytest.raises(DecryptionError):
        s.open_case_key(AUDITOR_BOX)
    with pytest.raises(MalformedError, match="sealed_case_key"):
        dataclasses.replace(s, sealed_case_key=b64e(GRANTEE_BOX.public_key.seal(bytes(31))))


def test_share_case_key_is_bound_to_its_share() -> None:
    s = share()
    for moved in (dataclasses.replace(s, case_key_version=2),
                  dataclasses.replace(s, sealed_case_key=sealed_case_key(case=CASE2)),
                  dataclasses.replace(s, sealed_case_key=sealed_case_key(version=2))):
        with pytest.raises(ContextMismatchError):
            moved.open_case_key(GRANTEE_BOX)


@pytest.mark.parametrize("version", [1, 1_000_000])
def test_share_schema_bounds_fit_what_envelopes_seals(version: int) -> None:
    bounds = schema.schema_of("share")["properties"]["sealed_case_key"]
    sealed = sealed_case_key(version=version)
    assert len(sealed) == (bounds["minLength"] if version == 1 else bounds["maxLength"])
    Share.from_json({**share().to_json(), "case_key_version": version, "sealed_case_key": sealed})


# --------------------------------------------------------------------------- property tests

CLASSES = sorted({type(f()) for f in EXAMPLES.values()}, key=lambda c: c.__name__)
WIRES = {name: f().to_json() for name, f in EXAMPLES.items()}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[type, Any]:
    name = draw(st.sampled_from(sorted(WIRES)))
    wire = copy.deepcopy(WIRES[name])
    path = draw(st.sampled_from(json_paths(wire)))
    target = wire
    for p in path[:-1]:
        target = target[p]
    if isinstance(target, dict) and draw(st.booleans()):
        del target[path[-1]]
    else:
        target[path[-1]] = draw(JSON)
    return type(EXAMPLES[name]()), wire


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CLASSES), JSON)
def test_arbitrary_json_raises_only_malformed(cls: type, value: Any) -> None:
    try:
        cls.from_json(value)
    except MalformedError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_examples_raise_only_malformed(case: tuple[type, Any]) -> None:
    cls, wire = case
    try:
        obj = cls.from_json(wire)
    except MalformedError:
        return
    assert cls.from_json(obj.to_json()) == obj
