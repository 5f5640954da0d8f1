"""How the PII guard refuses (docs/protocol.md §8.2, §8.6): each finding with its kind in
words and a placeholder, the details a partner system may log, the rewrite a writer is
offered, and the allow-list parameter that only names and street addresses heed.

The detectors themselves are tested in tests/test_pii.py.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schakel.protocol import pii
from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.pii import Finding, Kind

#: The placeholders of protocol.md §8.2, written out so that a change is a decision.
SPECIFIED = {"bsn": "[BSN]", "phone": "[telefoon]", "email": "[e-mail]",
             "postcode_house_number": "[postcode]", "iban": "[IBAN]", "birth_date": "[datum]",
             "person_name": "[naam]", "street_address": "[straat]"}

NOTE = ("Dochter belt op 06-12345678, mail d.jansen@example.nl; BSN 111222333, "
        "geboren 12-03-1948, woont 3811 AB 12, rekening NL91ABNA0417164300.")
IDENTIFIERS = ("06-12345678", "d.jansen@example.nl", "111222333", "12-03-1948", "3811 AB 12",
               "NL91ABNA0417164300")


def test_every_kind_has_its_specified_placeholder_and_a_label() -> None:
    assert {k.value: pii.PLACEHOLDERS[k] for k in Kind} == SPECIFIED
    for kind in Kind:
        finding = Finding(kind=kind, start=0, end=1)
        assert finding.placeholder == SPECIFIED[kind.value]
        assert finding.label and finding.describe().startswith(finding.label)


def test_only_names_and_street_addresses_can_be_allowed() -> None:
    assert pii.ALLOWABLE_KINDS == {Kind.PERSON_NAME, Kind.STREET_ADDRESS}


@pytest.mark.parametrize("sentence", [
    "Meneer {p} woont alleen.", "Mevrouw {p} laat niemand binnen.", "Zijn dochter {p} belt.",
    "Woont aan de {p} op nummer {p}.", "{p} is bekend bij de huisarts.", "Bel {p} of {p}.",
])
@pytest.mark.parametrize("kind", list(Kind))
def test_a_placeholder_holds_nothing_the_guard_finds(kind: Kind, sentence: str) -> None:
    """The rewrite a writer is offered must pass the guard it came from, in the places a
    placeholder lands: after an honorific, a kinship word, a street's preposition."""
    assert pii.scan(sentence.format(p=pii.PLACEHOLDERS[kind])) == []


def test_the_refusal_names_path_kind_span_and_placeholder_never_the_text() -> None:
    with pytest.raises(PolicyViolation) as caught:
        pii.check_anonymous({"kind": "note", "text": NOTE})
    err = caught.value
    kinds = ["phone", "email", "bsn", "birth_date", "postcode_house_number", "iban"]
    assert err.details["count"] == 6
    assert [f["kind"] for f in err.details["findings"]] == kinds
    for item in err.details["findings"]:
        assert set(item) == {"path", "kind", "start", "end", "placeholder"}
        assert item["path"] == "text" and item["placeholder"] == SPECIFIED[item["kind"]]
        assert NOTE[item["start"]:item["end"]] in IDENTIFIERS
    assert "(write [telefoon])" in err.message
    rendered = err.message + repr(err) + json.dumps(err.to_wire())
    for identifier in IDENTIFIERS:
        assert identifier not in rendered


def test_violation_is_the_refusal_of_given_findings() -> None:
    found = pii.scan_value({"summary": "Bel 06-12345678."})
    made = pii.violation(found)
    with pytest.raises(PolicyViolation) as caught:
        pii.check_anonymous({"summary": "Bel 06-12345678."})
    assert (made.message, made.details) == (caught.value.message, caught.value.details)
    with pytest.raises(ValueError):
        pii.violation([])


def test_redact_replaces_each_finding_by_its_placeholder() -> None:
    assert pii.redact(NOTE, pii.scan(NOTE)) == (
        "Dochter belt op [telefoon], mail [e-mail]; BSN [BSN], geboren [datum], woont "
        "[postcode], rekening [IBAN].")
    assert pii.redact("niets te vinden", []) == "niets te vinden"
    shuffled = list(reversed(pii.scan(NOTE)))
    assert pii.redact(NOTE, shuffled) == pii.redact(NOTE, pii.scan(NOTE))


@pytest.mark.parametrize("findings", [
    [Finding(kind="phone", start=3, end=30)],                                  # past the end
    [Finding(kind="phone", start=0, end=5), Finding(kind="bsn", start=4, end=8)],  # overlap
])
def test_redact_refuses_spans_that_are_not_the_texts(findings: list[Finding]) -> None:
    with pytest.raises(MalformedError):
        pii.redact("Bel 06-12345678.", findings)


@pytest.mark.parametrize("bad", [None, b"text", 12])
def test_redact_refuses_a_non_str(bad: object) -> None:
    with pytest.raises(MalformedError):
        pii.redact(bad, [])  # type: ignore[arg-type]


_PIECES = st.sampled_from([*IDENTIFIERS, "0612345678", "+31 6 12345678", "3811AB 4a",
                           "1 januari 1950", "mevrouw", "woont", "alleen", "buurman", "12",
                           "3811", "nr.", "-", ",", "@", "(", ")", "", "\n"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=12), st.sampled_from([" en ", " of ", ", dan ", ".\nDan "]))
def test_the_rewrite_of_what_was_found_holds_nothing_to_find(pieces: list[str],
                                                             glue: str) -> None:
    """Identifiers with words between them.  (protocol.md §8.2: where two identifiers
    touch, replacing one may bring out the other, which the guard then refuses in turn:
    "1 januari 1950 3811 AB 12" shows only the date at first.)"""
    text = glue.join(pieces)
    rewritten = pii.redact(text, pii.scan(text))
    assert pii.scan(rewritten) == []


def test_allow_is_accepted_everywhere_and_never_excuses_an_identifier_with_a_shape() -> None:
    """The allow-list is for the network's own words; a phone number or BSN stays an
    identifier whatever a network lists."""
    text = "Via Buurthuis De Kruiskamp: bel 06-12345678, BSN 111222333."
    allow = ("Buurthuis De Kruiskamp", "06-12345678", "bel 06-12345678", "BSN 111222333")
    assert [f.kind for f in pii.scan(text, allow=allow)] == [Kind.PHONE, Kind.BSN]
    assert [f.kind for _, f in pii.scan_value({"text": text}, allow=allow)] == [Kind.PHONE,
                                                                                 Kind.BSN]
    with pytest.raises(PolicyViolation):
        pii.check_anonymous({"text": text}, allow=allow)


# --------------------------------------------------------------------------- names and streets
# The two sentences a new user tried: they must be refused with the span and kind shown.
def test_meneer_de_vries_is_refused_with_the_span_of_the_name() -> None:
    text = "Meneer de Vries woont alleen."
    with pytest.raises(PolicyViolation) as caught:
        pii.check_anonymous({"text": text})
    (item,) = caught.value.details["findings"]
    assert item["kind"] == "person_name" and item["placeholder"] == "[naam]"
    assert item["start"] <= text.index("de Vries") and item["end"] >= text.index(" woont")
    rewritten = pii.redact(text, pii.scan(text))
    assert "Vries" not in rewritten and "[naam] woont alleen." in rewritten


def test_mevrouw_jansen_on_the_soesterweg_is_refused_with_both_spans() -> None:
    text = "Mevrouw Jansen op Soesterweg 12 laat niemand binnen."
    with pytest.raises(PolicyViolation) as caught:
        pii.check_anonymous({"text": text})
    found = {f["kind"]: (f["start"], f["end"]) for f in caught.value.details["findings"]}
    assert set(found) == {"person_name", "street_address"}
    name, street = found["person_name"], found["street_address"]
    assert name[0] <= text.index("Jansen") and name[1] >= text.index(" op")
    assert street[0] <= text.index("Soesterweg") and street[1] >= text.index(" laat")
    assert pii.redact(text, pii.scan(text)).endswith("[naam] op [straat] laat niemand binnen.")


def test_an_allow_listed_name_passes_and_the_same_text_without_the_list_does_not() -> None:
    text = "Komt elke week in Buurthuis Jan van Galen."      # a venue named after a person
    assert [f.kind for f in pii.scan(text)] == [Kind.PERSON_NAME]
    assert pii.scan(text, allow=("buurthuis jan van galen",)) == []
    assert pii.scan_value({"text": text}, allow=("Buurthuis Jan van Galen",)) == []
