"""Anonymous-layer and identity plaintexts (docs/protocol.md §C.9, §C.10)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schakel.protocol import schema
from schakel.protocol.crypto import Signer
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.plaintext import (
    ANONYMOUS_EVENT_KINDS,
    IDENTITY_CLASSES,
    PROBLEM_DOMAINS,
    Action,
    Analysis,
    AnonymousEvent,
    Feedback,
    IdentityAddress,
    IdentityCare,
    IdentityContact,
    IdentityName,
    IdentityOfficial,
    IdentityOther,
    Intake,
    Note,
    StatusChange,
    bsn_valid,
    identity_plaintext_for,
    parse_anonymous_event,
)

PARTNER = Signer(bytes(range(32))).key_id
PROFESSIONAL = Signer(bytes(range(5, 37))).key_id

EVENTS: dict[str, dict[str, Any]] = {
    "intake": {"kind": "intake", "age_band": "75-84", "neighbourhood": "Zuilen",
               "domains": ["loneliness", "self-care"], "severity": "medium",
               "care_status": "avoids-care", "source": "volunteer", "complex": True,
               "summary": "Ouder iemand, woont alleen, komt weinig buiten, weigert thuiszorg."},
    "analysis": {"kind": "analysis", "text": "Sociaal isolement na verlies partner.",
                 "domains": ["loneliness"], "severity": "high"},
    "action": {"kind": "action", "description": "Maatje via de vrijwilligerscentrale.",
               "help_type": "informal", "relation": "preceding", "by": PARTNER,
               "supporting_professional": PROFESSIONAL},
    "feedback": {"kind": "feedback", "text": "Eerste bezoek ging goed.", "outcome": "improved"},
    "note": {"kind": "note", "text": "Overleg volgende week."},
    "status": {"kind": "status", "status": "closed", "reason": "Hulp loopt, netwerk klaar."},
}
CLASSES = {"intake": Intake, "analysis": Analysis, "action": Action, "feedback": Feedback,
           "note": Note, "status": StatusChange}

IDENTITIES: dict[str, dict[str, Any]] = {
    "name": {"given_names": "Johanna Maria", "family_name": "van der Berg", "initials": "J.M."},
    "address": {"street": "Dorpsstraat", "house_number": "12-3", "postcode": "3511AB",
                "city": "Utrecht"},
    "contact": {"phone": "+31 6 1234 5678", "email": "j.berg@example.nl"},
    "official": {"bsn": "111222333", "date_of_birth": "1944-02-29"},
    "care": {"gp": "Huisartsenpraktijk De Linde",
             "carers": [{"name": "Piet van der Berg", "relation": "zoon", "phone": "06-12345678"}],
             "contacts": [{"name": "Buurvrouw Ans", "relation": "buurvrouw"}]},
}
IDENTITY_TYPES = {"name": IdentityName, "address": IdentityAddress, "contact": IdentityContact,
                  "official": IdentityOfficial, "care": IdentityCare}


def assert_malformed(fn: Any, field: str, bad: Any) -> MalformedError:
    with pytest.raises(MalformedError) as info:
        fn()
    exc = info.value
    text = str(exc) + " " + json.dumps(exc.details)
    assert field in text, text
    if isinstance(bad, str) and len(bad) >= 6:
        assert bad[:40] not in text
    elif isinstance(bad, int) and not isinstance(bad, bool) and abs(bad) > 1000:
        assert str(bad) not in text
    return exc


# --------------------------------------------------------------------------- anonymous layer


def test_problem_domains_match_the_schema() -> None:
    enum = schema.schema_of("anonymous-event")["$defs"]["domain"]["enum"]
    assert tuple(enum) == PROBLEM_DOMAINS and len(set(PROBLEM_DOMAINS)) == 15


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_anonymous_event_round_trips_and_dispatches(kind: str) -> None:
    value = EVENTS[kind]
    obj = parse_anonymous_event(value)
    assert type(obj) is CLASSES[kind] and obj.KIND == kind
    assert obj.to_json() == value
    assert parse_anonymous_event(obj.to_json()) == obj
    assert CLASSES[kind].from_json(obj.to_json()) == obj
    assert AnonymousEvent.from_json(value) == obj
    assert set(ANONYMOUS_EVENT_KINDS) == set(EVENTS)


def test_free_text_fields_are_listed_for_the_pii_guard() -> None:
    intake = parse_anonymous_event(EVENTS["intake"])
    assert set(intake.free_text()) == {"neighbourhood", "summary"}
    action = parse_anonymous_event(dict(EVENTS["action"], help_type="formal",
                                        informal_not_possible="Schulden te complex."))
    assert set(action.free_text()) == {"description", "informal_not_possible"}
    assert set(parse_anonymous_event(EVENTS["status"]).free_text()) == {"reason"}


def test_variant_refuses_another_kind() -> None:
    assert_malformed(lambda: Intake.from_json(EVENTS["note"]), "kind", None)


def test_constructing_a_variant() -> None:
    note = Note(text="kort")
    assert note.to_json() == {"kind": "note", "text": "kort"}
    with pytest.raises(MalformedError):
        Note(text="")
    intake = Intake(age_band="85+", neighbourhood="Oost", domains=["nuisance"], severity="acute",
                    care_status="known", source="anonymous-signal", complex=False, summary="s")
    assert parse_anonymous_event(intake.to_json()) == intake


def test_informal_action_with_reason_informal_impossible_is_refused() -> None:
    value = dict(EVENTS["action"], informal_not_possible="SENTINEL reason")
    assert_malformed(lambda: parse_anonymous_event(value), "informal_not_possible", "SENTINEL reason")
    assert parse_anonymous_event(dict(value, help_type="combined")).help_type == "combined"


BAD_EVENTS: list[tuple[str, str, Any]] = [
    ("intake", "age_band", "SENTINEL-band"),
    ("intake", "neighbourhood", "SENTINEL" * 11),
    ("intake", "neighbourhood", ""),
    ("intake", "domains", []),
    ("intake", "domains", ["SENTINEL-domain"]),
    ("intake", "domains", ["nuisance", "nuisance"]),
    ("intake", "domains", list(PROBLEM_DOMAINS) + ["a", "b"]),
    ("intake", "severity", "SENTINEL-severity"),
    ("intake", "care_status", "SENTINEL-care"),
    ("intake", "source", "SENTINEL-source"),
    ("intake", "complex", "SENTINEL-true"),
    ("intake", "summary", "SENTINEL" * 501),
    ("intake", "summary", 31415926),
    ("analysis", "text", "SENTINEL" * 1001),
    ("analysis", "severity", "SENTINEL-severe"),
    ("action", "help_type", "SENTINEL-help"),
    ("action", "relation", "SENTINEL-relation"),
    ("action", "by", "SENTINEL-not-a-keyid"),
    ("action", "supporting_professional", "SENTINEL-prof"),
    ("action", "informal_not_possible", "SENTINEL" * 251),
    ("action", "description", ["SENTINEL"]),
    ("feedback", "outcome", "SENTINEL-outcome"),
    ("feedback", "text", "SENTINEL" * 501),
    ("note", "text", "SENTINEL" * 1001),
    ("note", "text", None),
    ("status", "status", "SENTINEL-status"),
    ("status", "reason", "SENTINEL" * 63),
]


@pytest.mark.parametrize(("kind", "field", "bad"), BAD_EVENTS,
                         ids=[f"{k}:{f}:{i}" for i, (k, f, _) in enumerate(BAD_EVENTS)])
def test_malformed_anonymous_event(kind: str, field: str, bad: Any) -> None:
    value = dict(EVENTS[kind], **{field: bad})
    assert_malformed(lambda: parse_anonymous_event(value), field, bad)
    assert_malformed(lambda: CLASSES[kind].from_json(value), field, bad)


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_anonymous_event_missing_and_unknown_fields(kind: str) -> None:
    valid = EVENTS[kind]
    for key in valid:
        if key in {"domains", "severity", "supporting_professional"} and kind in {"analysis", "action"}:
            continue
        broken = {k: v for k, v in valid.items() if k != key}
        assert_malformed(lambda: parse_anonymous_event(broken), key, None)
    assert_malformed(lambda: parse_anonymous_event(dict(valid, zz_extra="SENTINEL-extra")),
                     "zz_extra", "SENTINEL-extra")


def test_unknown_or_missing_kind_is_malformed() -> None:
    assert_malformed(lambda: parse_anonymous_event({"kind": "SENTINEL-kind", "text": "x"}),
                     "kind", "SENTINEL-kind")
    assert_malformed(lambda: parse_anonymous_event({"text": "x"}), "kind", None)
    assert_malformed(lambda: parse_anonymous_event(["SENTINEL-list"]), "(root)", "SENTINEL-list")
    # A field of another variant is unknown here (each variant is closed).
    assert_malformed(lambda: parse_anonymous_event(dict(EVENTS["note"], outcome="worse")),
                     "outcome", None)


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("cls_name", sorted(IDENTITIES))
def test_identity_plaintext_round_trips(cls_name: str) -> None:
    value = IDENTITIES[cls_name]
    obj = identity_plaintext_for(cls_name, value)
    assert type(obj) is IDENTITY_TYPES[cls_name] is IDENTITY_CLASSES[cls_name]
    assert obj.to_json() == value
    assert type(obj).from_json(obj.to_json()) == obj
    # repr never shows the values
    for v in value.values():
        if isinstance(v, str):
            assert v not in repr(obj)


def test_identity_other_for_network_defined_classes() -> None:
    obj = identity_plaintext_for("woonsituatie", {"housing_corporation": "Mitros", "floor": "3"})
    assert isinstance(obj, IdentityOther)
    assert IdentityOther.from_json(obj.to_json()) == obj
    assert "Mitros" not in repr(obj)
    with pytest.raises(MalformedError):
        identity_plaintext_for("woonsituatie", {f"k{i}": "v" for i in range(21)})
    assert_malformed(lambda: identity_plaintext_for("woonsituatie", {"remark": "SENTINEL" * 63}),
                     "remark", "SENTINEL")
    assert_malformed(lambda: identity_plaintext_for("woonsituatie", {"remark": 31415926}),
                     "remark", 31415926)
    assert_malformed(lambda: identity_plaintext_for("woonsituatie", {"Bad Key": "SENTINEL-v"}),
                     "(root)", "SENTINEL-v")
    assert_malformed(lambda: identity_plaintext_for("woonsituatie", {}), "(root)", None)
    assert_malformed(lambda: identity_plaintext_for("woonsituatie", "SENTINEL-str"), "(root)",
                     "SENTINEL-str")


def test_identity_other_agrees_with_its_schema_definition() -> None:
    other = schema.schema_of("identity-record")["$defs"]["other_plaintext"]
    from schakel.protocol.objects import plaintext
    assert other["maxProperties"] == plaintext.OTHER_MAX_FIELDS
    assert other["additionalProperties"]["maxLength"] == plaintext.OTHER_MAX_CHARS


def test_identity_class_names() -> None:
    assert_malformed(lambda: identity_plaintext_for("SENTINEL CLASS", {"a": "b"}), "class",
                     "SENTINEL CLASS")
    assert_malformed(lambda: identity_plaintext_for("official", IDENTITIES["official"],
                                                    allowed=["name", "address"]), "class", None)
    assert isinstance(identity_plaintext_for("name", IDENTITIES["name"], allowed=["name"]),
                      IdentityName)


@pytest.mark.parametrize("bsn", ["111222333", "123456782", "999999990"])
def test_bsn_eleven_proof_accepts(bsn: str) -> None:
    assert bsn_valid(bsn)
    assert IdentityOfficial.from_json({"bsn": bsn}).bsn == bsn


@pytest.mark.parametrize("bsn", ["123456789", "111222334", "000000000", "111222332"])
def test_bsn_failing_eleven_proof_is_refused(bsn: str) -> None:
    assert not bsn_valid(bsn)
    exc = assert_malformed(lambda: IdentityOfficial.from_json({"bsn": bsn}), "bsn", bsn)
    assert "11-proef" in str(exc)


@pytest.mark.parametrize("dob", ["1941-02-29", "2023-04-31", "1999-13-01", "1999-1-01", "1799-01-01"])
def test_bad_date_of_birth_is_refused(dob: str) -> None:
    assert_malformed(lambda: IdentityOfficial.from_json({"date_of_birth": dob}), "date_of_birth", dob)


BAD_IDENTITIES: list[tuple[str, str, Any]] = [
    ("name", "given_names", ""),
    ("name", "family_name", "SENTINEL" * 26),
    ("name", "initials", "SENTINEL-initials-long"),
    ("name", "family_name", 31415926),
    ("address", "postcode", "0511 AB"),
    ("address", "postcode", "3511 ab"),
    ("address", "postcode", "SENTINEL"),
    ("address", "house_number", "SENTINEL"),
    ("address", "house_number", "0"),
    ("address", "street", "SENTINEL" * 26),
    ("address", "city", ""),
    ("contact", "phone", "SENTINEL-phone"),
    ("contact", "phone", "06-" + "1" * 40),
    ("contact", "email", "SENTINEL-no-at-sign"),
    ("contact", "email", "SENTINEL@" + "x" * 260),
    ("official", "bsn", "12345678X"),
    ("official", "bsn", 111222333),
    ("care", "gp", "SENTINEL" * 26),
    ("care", "carers", [{"name": "SENTINEL-name", "relation": "zoon"}] * 11),
    ("care", "carers", [{"name": "SENTINEL-name"}]),
    ("care", "contacts", [{"name": "x", "relation": "y", "phone": "SENTINEL-phone"}]),
    ("care", "contacts", [{"name": "x", "relation": "y", "zz_extra": "SENTINEL-extra"}]),
    ("care", "contacts", []),
]


@pytest.mark.parametrize(("cls_name", "field", "bad"), BAD_IDENTITIES,
                         ids=[f"{c}:{f}:{i}" for i, (c, f, _) in enumerate(BAD_IDENTITIES)])
def test_malformed_identity(cls_name: str, field: str, bad: Any) -> None:
    value = dict(copy.deepcopy(IDENTITIES[cls_name]), **{field: bad})
    assert_malformed(lambda: identity_plaintext_for(cls_name, value), field, bad)


@pytest.mark.parametrize("cls_name", sorted(IDENTITIES))
def test_identity_unknown_and_empty(cls_name: str) -> None:
    value = dict(IDENTITIES[cls_name], zz_extra="SENTINEL-extra")
    assert_malformed(lambda: identity_plaintext_for(cls_name, value), "zz_extra", "SENTINEL-extra")
    with pytest.raises(MalformedError):
        identity_plaintext_for(cls_name, {})


def test_identity_required_fields() -> None:
    for cls_name, required in (("name", ["given_names", "family_name"]),
                               ("address", ["street", "house_number", "postcode", "city"])):
        for key in required:
            value = {k: v for k, v in IDENTITIES[cls_name].items() if k != key}
            assert_malformed(lambda: identity_plaintext_for(cls_name, value), key, None)
    assert IdentityContact.from_json({"email": "a@b.nl"}).phone is None
    assert IdentityOfficial.from_json({"date_of_birth": "1960-01-01"}).bsn is None
    assert IdentityCare.from_json({"gp": "Dokter"}).carers is None


# --------------------------------------------------------------------------- fuzzing

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 53) + 1, 2 ** 53 - 1) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON)
def test_arbitrary_json_to_parse_anonymous_event(value: Any) -> None:
    try:
        parse_anonymous_event(value)
    except MalformedError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(EVENTS)), data=st.data())
def test_mutated_anonymous_events(kind: str, data: st.DataObject) -> None:
    value = dict(EVENTS[kind])
    key = data.draw(st.sampled_from(sorted(value)))
    value[key] = data.draw(JSON | st.sampled_from(list(EVENTS)))
    try:
        parse_anonymous_event(value)
    except MalformedError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cls_name=st.sampled_from(sorted(IDENTITIES) + ["extra", "BAD"]), value=JSON,
       data=st.data())
def test_arbitrary_json_to_identity_plaintext_for(cls_name: str, value: Any, data: st.DataObject) -> None:
    if data.draw(st.booleans()) and cls_name in IDENTITIES:
        mutated = dict(IDENTITIES[cls_name])
        mutated[data.draw(st.sampled_from(sorted(mutated)))] = value
        value = mutated
    try:
        identity_plaintext_for(cls_name, value)
    except MalformedError:
        pass


# --------------------------------------------------------------------------- encrypted size


def test_plaintext_must_fit_its_ciphertext() -> None:
    # 20 fields of 500 three-byte characters: schema-valid, but 30 kB of UTF-8.
    big = {f"f{i}": "€" * 500 for i in range(20)}
    assert_malformed(lambda: identity_plaintext_for("extra", big), "larger than", None)
    ok = {f"f{i}": "€" * 500 for i in range(10)}
    assert isinstance(identity_plaintext_for("extra", ok), IdentityOther)
    # An anonymous event of maximal length in 4-byte characters still fits 64 KiB.
    assert parse_anonymous_event({"kind": "note", "text": "\U0001F600" * 8000})
    assert_malformed(lambda: parse_anonymous_event({"kind": "note", "text": "x\udcff"}),
                     "canonical", None)


def test_control_characters_outside_free_text_are_refused() -> None:
    assert_malformed(lambda: parse_anonymous_event(dict(EVENTS["intake"], neighbourhood="Zuilen\n")),
                     "neighbourhood", None)
    assert_malformed(lambda: parse_anonymous_event(dict(EVENTS["action"], by=PARTNER + "\n")),
                     "by", None)
    assert parse_anonymous_event(dict(EVENTS["intake"], summary="Een.\r\nTwee.")).summary
    assert_malformed(lambda: parse_anonymous_event(dict(EVENTS["note"], text="a\x07b")), "text", None)
    assert_malformed(lambda: identity_plaintext_for("official", {"bsn": "111222333\n"}), "bsn", None)
    assert_malformed(lambda: identity_plaintext_for("address", dict(IDENTITIES["address"],
                                                                    postcode="3511 AB\n")),
                     "postcode", None)
