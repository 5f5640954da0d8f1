"""Tests for the anonymous-layer PII guard (protocol/pii.py, docs/protocol.md §8)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.pii import (Finding, Kind, check_anonymous, is_valid_iban, passes_elfproef,
                          scan, scan_value)


def spans(text: str) -> list[tuple[str, str]]:
    """(kind, matched text) for every finding — the test may see the value, the module not."""
    return [(f.kind.value, text[f.start:f.end]) for f in scan(text)]


# --- positives: (note, kind, the exact text the finding must cover) -----------------------

POSITIVE = [
    # BSN (11-proef)
    ("BSN van meneer: 111222333, graag niet doorsturen", "bsn", "111222333"),
    ("bsn 111.222.333 staat in het oude dossier", "bsn", "111.222.333"),
    ("BSN: 1112 22 333.", "bsn", "1112 22 333"),
    ("burgerservicenummer 111 222 333 (via de GGD)", "bsn", "111 222 333"),
    ("oud nummer 12345672, voorloopnul weggevallen", "bsn", "12345672"),
    ("(BSN 111222333)", "bsn", "111222333"),
    # phone numbers
    ("mevrouw woont alleen, buurvrouw belt 06-12345678 als het misgaat", "phone", "06-12345678"),
    ("dochter: 06 1234 5678, bellen na 17 uur", "phone", "06 1234 5678"),
    ("zoon bereikbaar op 0612345678.", "phone", "0612345678"),
    ("broer in Spanje, +31 6 12345678", "phone", "+31 6 12345678"),
    ("nummer +31(0)6-12345678 van de mantelzorger", "phone", "+31(0)6-12345678"),
    ("oude nummer 0031 6 12345678 werkt niet meer", "phone", "0031 6 12345678"),
    ("huisarts belt terug op 010-1234567", "phone", "010-1234567"),
    ("vast nummer 020 123 4567 (overdag)", "phone", "020 123 4567"),
    ("kerk bezoekdienst 0348-123456", "phone", "0348-123456"),
    ("tel. (020) 123 4567", "phone", "(020) 123 4567"),
    ("+31 20 123 4567 is het nummer van de buurvrouw", "phone", "+31 20 123 4567"),
    ("gratis lijn 0800-123456 van haar bewindvoerder", "phone", "0800-123456"),
    ("nicht in Polen: +48 601 234 567", "phone", "+48 601 234 567"),
    ("06\u00a012345678 (no-break space uit Word)", "phone", "06\u00a012345678"),
    # e-mail
    ("mail naar j.de.vries@example.nl.", "email", "j.de.vries@example.nl"),
    ("contact via jan+zorg@gemeente-utrecht.nl voor afspraken", "email",
     "jan+zorg@gemeente-utrecht.nl"),
    ("<jérôme@exemple.fr>", "email", "jérôme@exemple.fr"),
    ("0612345678@sms.example.nl", "email", "0612345678@sms.example.nl"),
    # postcode with house number
    ("adres bekend: 3811 AB 12", "postcode_house_number", "3811 AB 12"),
    ("3811AB 12a, achterom gebruiken", "postcode_house_number", "3811AB 12a"),
    ("woont op 3811 AB, nr. 12-2", "postcode_house_number", "3811 AB, nr. 12-2"),
    ("postcode 3811ab12", "postcode_house_number", "3811ab12"),
    ("1234 AB 5 bis", "postcode_house_number", "1234 AB 5 bis"),
    ("woont op 12, 3811 AB Amersfoort", "postcode_house_number", "12, 3811 AB"),
    ("nummer 12a\n3811 AB  Amersfoort", "postcode_house_number", "12a\n3811 AB"),
    # IBAN
    ("huur gaat van NL91ABNA0417164300 af", "iban", "NL91ABNA0417164300"),
    ("rekening NL91 ABNA 0417 1643 00.", "iban", "NL91 ABNA 0417 1643 00"),
    ("nl91abna0417164300", "iban", "nl91abna0417164300"),
    ("Duitse rekening DE89 3704 0044 0532 0130 00", "iban", "DE89 3704 0044 0532 0130 00"),
    ("GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
    ("BE68 5390 0754 7034", "iban", "BE68 5390 0754 7034"),
    # full dates
    ("geboren 12-03-1948 in Utrecht", "birth_date", "12-03-1948"),
    ("geb. 12/3/1948", "birth_date", "12/3/1948"),
    ("1948-03-12", "birth_date", "1948-03-12"),
    ("12.03.1948", "birth_date", "12.03.1948"),
    ("geboren op 12 maart 1948", "birth_date", "12 maart 1948"),
    ("3 mrt. 1948", "birth_date", "3 mrt. 1948"),
    ("born 12 March 1948", "birth_date", "12 March 1948"),
    ("born March 12, 1948", "birth_date", "March 12, 1948"),
    ("1 januari 2024 huisbezoek", "birth_date", "1 januari 2024"),
    ("29-02-2000", "birth_date", "29-02-2000"),
    ("31/12/1900", "birth_date", "31/12/1900"),
    ("1-1-2029", "birth_date", "1-1-2029"),
]


@pytest.mark.parametrize(("text", "kind", "covered"), POSITIVE)
def test_positive(text: str, kind: str, covered: str) -> None:
    assert spans(text) == [(kind, covered)]


# --- negatives: realistic notes that must pass ----------------------------------------

NEGATIVE = [
    "mevrouw is 78 jaar en woont sinds 1998 in de wijk",
    "ordernummer 123456789 (11-proef faalt)",
    "factuur 987654321 nog niet betaald",
    "klantnummer 1234567890",
    "referentie 1112223330",            # ten digits: a longer digit run, not a BSN
    "ZD111222333 is het zaaknummer",    # digits glued to letters
    "06-1234567 mist een cijfer",
    "0900-1234567 is een betaallijn",
    "Veilig Thuis 0800-2000 gebeld, De Luisterlijn 0900-0767",
    "tel. 112 bij nood",
    "afspraak om 10.30 uur, kamer 2.14",
    "€ 1.234,56 schuld bij de woningcorporatie",
    "mail: jan at example dot nl",
    "@buurtteam volgt op",
    "jan@localhost",
    "postcodegebied 3811, 3 kinderen",
    "woont in 3811 AB sinds 2019",
    "3811 SA 12",                        # SA, SD, SS are not used in postcodes
    "woont op nummer 12",
    "NL92ABNA0417164300",                # wrong check digits
    "NL92 ABNA 0417 1643 00",
    "NL91ABNA041716430",                 # one character short
    "XX91ABNA0417164300",                # no such country
    "12 maart",
    "maart 1948",
    "12-03",
    "geboren in 1948",
    "12-03-48",                          # two-digit year
    "31-02-1948",
    "30-13-1948",
    "12-03-1899",
    "12-03-2030",
    "12 maarten 1948",
    "ISBN 978-90-123-4567-8",
    "van 2000 tot 2010 bij de GGD",
    "",
]


@pytest.mark.parametrize("text", NEGATIVE)
def test_negative(text: str) -> None:
    assert scan(text) == []


# --- rules in isolation ------------------------------------------------------------

@pytest.mark.parametrize(("digits", "ok"), [
    ("111222333", True), ("123456782", True), ("12345672", True), ("012345672", True),
    ("123456789", False), ("987654321", False), ("000000000", False), ("00000000", False),
    ("12345678", False), ("1234567", False), ("1234567890", False), ("１１１２２２３３３", False),
])
def test_elfproef(digits: str, ok: bool) -> None:
    assert passes_elfproef(digits) is ok


@pytest.mark.parametrize(("iban", "ok"), [
    ("NL91ABNA0417164300", True), ("NL91 ABNA 0417 1643 00", True),
    ("DE89370400440532013000", True), ("NL92ABNA0417164300", False),
    ("NL91ABNA04171643000", False), ("ZZ91ABNA0417164300", False), ("NL9!ABNA0417164300", False),
])
def test_iban_rule(iban: str, ok: bool) -> None:
    assert is_valid_iban(iban) is ok


def test_overlaps_resolve_to_one_finding() -> None:
    # the phone-shaped "0417 1643 00" inside a valid IBAN is part of the IBAN
    assert spans("NL91 ABNA 0417 1643 00") == [("iban", "NL91 ABNA 0417 1643 00")]
    # ... and is not reported on its own when the IBAN's check digits are wrong
    assert scan("NL92 ABNA 0417 1643 00") == []
    # a phone number as e-mail local part is one e-mail finding
    assert [f.kind for f in scan("0612345678@example.nl")] == [Kind.EMAIL]
    # a BSN after +31 is part of the phone number
    assert spans("+31 111222333") == [("phone", "+31 111222333")]


def test_several_findings_sorted() -> None:
    note = ("Mevrouw (geb. 12-03-1948, BSN 111222333) woont op 3811 AB 12. Dochter belt "
            "06-12345678 of mailt d.jansen@example.nl; huur via NL91ABNA0417164300.")
    assert spans(note) == [
        ("birth_date", "12-03-1948"), ("bsn", "111222333"),
        ("postcode_house_number", "3811 AB 12"), ("phone", "06-12345678"),
        ("email", "d.jansen@example.nl"), ("iban", "NL91ABNA0417164300")]


# --- Finding --------------------------------------------------------------------------

def test_finding_is_frozen_keyword_only_and_valueless() -> None:
    f = Finding(kind="phone", start=34, end=45)
    assert f.kind is Kind.PHONE and f.kind == "phone"
    assert str(f) == f.describe() == "phone number at characters 34\u201345"
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.start = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Finding("phone", 34, 45)  # type: ignore[misc]
    assert {x.name for x in dataclasses.fields(Finding)} == {"kind", "start", "end"}


@pytest.mark.parametrize("kwargs", [
    {"kind": "name", "start": 0, "end": 1}, {"kind": "bsn", "start": 3, "end": 3},
    {"kind": "bsn", "start": -1, "end": 3}, {"kind": "bsn", "start": True, "end": 3},
])
def test_finding_validates(kwargs: dict) -> None:
    with pytest.raises(MalformedError):
        Finding(**kwargs)


@pytest.mark.parametrize("bad", [None, b"06-12345678", 12345678, ["x"]])
def test_scan_rejects_non_str(bad: object) -> None:
    with pytest.raises(MalformedError):
        scan(bad)  # type: ignore[arg-type]


# --- walking the anonymous layer ---------------------------------------------------

STATE = {
    "age_band": "75-84", "neighbourhood": "Binnenstad", "severity": 3, "complex": True,
    "events": [
        {"type": "signal", "text": "buurman maakt zich zorgen"},
        {"type": "note", "text": None},
        {"type": "analysis", "analysis": "mevrouw woont alleen, buurvrouw belt 06-12345678"},
    ],
    "domains": ["wonen", "financien"],
}


def test_check_anonymous_names_the_path() -> None:
    with pytest.raises(PolicyViolation) as info:
        check_anonymous(STATE)
    err = info.value
    assert "events[2].analysis" in err.message and "phone number" in err.message
    assert err.details["findings"] == [
        {"path": "events[2].analysis", "kind": "phone", "start": 37, "end": 48,
         "placeholder": "[telefoon]"}]
    assert "12345678" not in str(err) + repr(err) + repr(err.details) + repr(err.to_wire())


def test_clean_state_passes_and_prefix_is_used() -> None:
    clean = {**STATE, "events": STATE["events"][:2]}
    assert check_anonymous(clean) is None
    assert scan_value(clean) == []
    pairs = scan_value(["ok", {"x y": "BSN 111222333"}], path="case.notes")
    assert [(p, f.kind.value) for p, f in pairs] == [('case.notes[1]["x y"]', "bsn")]


def test_identifying_member_names_never_reach_the_path() -> None:
    pairs = scan_value({"notes": {"06-12345678": "d.jansen@example.nl"}})
    assert [(p, f.kind.value) for p, f in pairs] == [
        ("notes[key 0]", "phone"), ("notes[value of key 0]", "email")]


@pytest.mark.parametrize("bad", [{1: "x"}, {"a": b"bytes"}, {"a": {1, 2}}, object()])
def test_walk_rejects_non_json(bad: object) -> None:
    with pytest.raises(MalformedError):
        check_anonymous(bad)


def test_walk_bounds_depth() -> None:
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(MalformedError):
        scan_value(deep)


def test_many_findings_bounded_message() -> None:
    with pytest.raises(PolicyViolation) as info:
        check_anonymous(["BSN 111222333"] * 500)
    assert info.value.details["count"] == 500
    assert len(info.value.details["findings"]) == 100
    assert "and 495 more" in info.value.message and len(info.value.message) < 1000


# --- properties ----------------------------------------------------------------------

def _bsn_strategy() -> st.SearchStrategy[str]:
    def complete(d8: list[int]) -> str | None:
        check = sum(w * d for w, d in zip((9, 8, 7, 6, 5, 4, 3, 2), d8)) % 11
        return None if check == 10 or not any(d8) else "".join(map(str, d8)) + str(check)
    return (st.lists(st.integers(0, 9), min_size=8, max_size=8)
            .map(complete).filter(lambda s: s is not None))  # type: ignore[return-value]


_FORMATS = [lambda b: b, lambda b: f"{b[:3]}.{b[3:6]}.{b[6:]}",
            lambda b: f"{b[:3]} {b[3:6]} {b[6:]}", lambda b: f"{b[:4]} {b[4:6]} {b[6:]}"]
# Lower-case filler: a capitalised word may be a name (§8.5.7), and these words must be clean.
_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéë", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bsn=_bsn_strategy(), fmt=st.sampled_from(_FORMATS),
       before=st.lists(_WORDS, max_size=8), after=st.lists(_WORDS, max_size=8),
       wrap=st.sampled_from([("", ""), ("(", ")"), ("BSN: ", "."), ("", ","), ("'", "'")]))
def test_embedded_valid_bsn_is_found(bsn: str, fmt, before: list[str], after: list[str],
                                     wrap: tuple[str, str]) -> None:
    assert passes_elfproef(bsn)
    written = fmt(bsn)
    head = " ".join(before + [wrap[0]])
    text = head + written + wrap[1] + " " + " ".join(after)
    findings = scan(text)
    assert [(f.kind, f.start, f.end) for f in findings] == [
        (Kind.BSN, len(head), len(head) + len(written))]
    err_text = ""
    try:
        check_anonymous({"events": [{"note": text}]})
    except PolicyViolation as err:
        err_text = str(err) + repr(err) + repr(err.details)
    assert "events[0].note" in err_text
    for leak in (bsn, written):
        assert leak not in repr(findings) + str(findings[0]) + err_text


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="0123456789 .-/+()@:,abNLSAmrt\u00a0\n",
                                    max_size=80)))
def test_scan_is_total_and_well_formed(text: str) -> None:
    findings = scan(text)
    previous_end = 0
    for f in findings:
        assert 0 <= f.start < f.end <= len(text) and text[f.start:f.end]
        assert f.start >= previous_end          # sorted, non-overlapping
        previous_end = f.end
    assert scan(text) == findings               # deterministic


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20))
def test_scan_value_paths_point_at_strings(value: object) -> None:
    found = scan_value(value)
    for path, finding in found:
        assert isinstance(path, str) and isinstance(finding, Finding)
    if found:
        with pytest.raises(PolicyViolation):
            check_anonymous(value)
    else:
        assert check_anonymous(value) is None


def test_no_digit_of_a_value_in_any_rendering() -> None:
    text = "BSN 111222333, tel 0687654321, IBAN NL91ABNA0417164300, geb. 17-09-1951"
    findings = scan(text)
    assert len(findings) == 4
    rendered = repr(findings) + " ".join(map(str, findings))
    for value in ("111222333", "0687654321", "0417164300", "1951"):
        assert value not in rendered
    assert not re.search(r"[0-9]{5,}", rendered)
