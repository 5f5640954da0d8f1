"""Names of people and street addresses in the PII guard (protocol/pii_names.py,
protocol/pii_lexicon.py; docs/protocol.md §8.5.7, §8.5.8).  The measured figures on the
case-note corpus are in tests/test_pii_corpus.py."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schakel.protocol import pii_lexicon
from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.pii import Finding, Kind, check_anonymous, scan, scan_value

ROOT = Path(__file__).resolve().parent.parent


def found(text: str, allow: tuple[str, ...] | list[str] = ()) -> list[tuple[str, str]]:
    """(kind, matched text) of every finding — the test may see the value, the module not."""
    return [(f.kind.value, text[f.start:f.end]) for f in scan(text, allow=allow)]


def names(text: str, allow: tuple[str, ...] | list[str] = ()) -> list[str]:
    return [s for k, s in found(text, allow) if k == "person_name"]


def streets(text: str) -> list[str]:
    return [s for k, s in found(text) if k == "street_address"]


# --- the two sentences of the report -------------------------------------------------------

def test_meneer_de_vries_and_mevrouw_jansen_on_soesterweg_12_are_refused() -> None:
    assert found("Meneer de Vries woont alleen.") == [("person_name", "de Vries")]
    note = "Mevrouw Jansen op Soesterweg 12 laat niemand binnen."
    assert found(note) == [("person_name", "Jansen"), ("street_address", "Soesterweg 12")]
    with pytest.raises(PolicyViolation) as info:
        check_anonymous({"summary": note})
    err = info.value
    assert err.details["findings"] == [
        {"path": "summary", "kind": "person_name", "start": 8, "end": 14,
         "placeholder": "[naam]"},
        {"path": "summary", "kind": "street_address", "start": 18, "end": 31,
         "placeholder": "[straat]"}]
    shown = str(err) + repr(err) + repr(err.details) + repr(err.to_wire())
    for value in ("Jansen", "Soesterweg", "12"):
        assert value not in shown


# --- names (§8.5.7) ----------------------------------------------------------------------

NAMES = [
    # rule 1: after an honorific, listed or not
    ("Meneer de Vries woont alleen.", ["de Vries"]),
    ("mevrouw Jansen belt", ["Jansen"]),
    ("Dhr. Bakker verloor zijn sleutel", ["Bakker"]),
    ("gesproken met dhr Bakker", ["Bakker"]),
    ("Mw. Visser wil geen hulp", ["Visser"]),
    ("mw El Amrani komt dinsdag", ["El Amrani"]),
    ("mevr. Öztürk spreekt weinig Nederlands", ["Öztürk"]),
    ("de heer Mulder heeft schulden", ["Mulder"]),
    ("Meneer Kowalczyk werkt in de kassen", ["Kowalczyk"]),
    ("Mevrouw van den Berg is thuis", ["van den Berg"]),
    ("Mevrouw de Groot-Visser heeft een rollator", ["de Groot-Visser"]),
    ("Bij meneer J. Dekker stond de verwarming uit", ["J. Dekker"]),
    ("Mw. A.M. Brouwer is bekend bij de huisarts", ["A.M. Brouwer"]),
    ("De heer P. van Dijk deed niet open", ["P. van Dijk"]),
    ("Dhr. J. van der Meer-de Graaf belde", ["J. van der Meer-de Graaf"]),
    ("mevrouw Els zit in de kamer", ["Els"]),
    ("familie Yilmaz is verhuisd", ["Yilmaz"]),
    ("Mr. Dr. Jansen schreef een brief", ["Jansen"]),
    # rule 1: after a relative's word, listed or not
    ("zijn dochter Anja komt langs", ["Anja"]),
    ("Buurvrouw Truus doet de boodschappen", ["Truus"]),
    ("buurman Wojtek helpt", ["Wojtek"]),
    ("Zijn broer Jan-Willem heeft volmacht", ["Jan-Willem"]),
    ("haar dochter Anja de Vries belt", ["Anja de Vries"]),
    # rule 2: initials and a surname
    ("J.P. Smits is de bewindvoerder", ["J.P. Smits"]),
    ("Volgens A. de Jong slaapt meneer in zijn stoel", ["A. de Jong"]),
    # rule 3: listed first names, with what follows
    ("Anja belt morgen terug.", ["Anja"]),
    ("Afgesproken dat Kees de sleutel bewaart", ["Kees"]),
    ("Anja de Vries belt over de huur", ["Anja de Vries"]),
    ("Priya Ramdin woont met haar moeder", ["Priya Ramdin"]),
    ("Fatima El Idrissi is de contactpersoon", ["Fatima El Idrissi"]),
    ("Anne-Marie de Vries-van Dam", ["Anne-Marie de Vries-van Dam"]),
    # rule 4: an interfix and a listed interfix-surname
    ("van den Berg heeft gebeld", ["van den Berg"]),
    ("De Boer was niet thuis", ["De Boer"]),
    ("Van der Meer wil de casus overdragen", ["Van der Meer"]),
    ("melding van v.d. Berg", ["v.d. Berg"]),
    # rule 5: listed surnames
    ("Gesprek met Jansen verliep moeizaam", ["Jansen"]),
    ("De meterkast is bekeken door Dijkstra", ["Dijkstra"]),
    ("Truus Hendriks-Mulder meldde het", ["Truus Hendriks-Mulder"]),
]


@pytest.mark.parametrize(("text", "expected"), NAMES)
def test_names_are_found(text: str, expected: list[str]) -> None:
    assert names(text) == expected


# --- street addresses (§8.5.8) ---------------------------------------------------------

STREETS = [
    ("op Soesterweg 12 laat", ["Soesterweg 12"]),
    ("Meneer woont op Bilderdijkstraat 4a", ["Bilderdijkstraat 4a"]),
    ("Adres is Kerkstraat nummer 12.", ["Kerkstraat nummer 12"]),
    ("Huisbezoek op Soesterweg nr. 8, niemand thuis", ["Soesterweg nr. 8"]),
    ("de Zonnebloemstraat, nummer 8", ["Zonnebloemstraat, nummer 8"]),
    ("Overlast op Hogeweg 5 hs", ["Hogeweg 5 hs"]),
    ("Leusderweg 120 bis", ["Leusderweg 120 bis"]),
    ("woont op Dorpsstraat 3 II", ["Dorpsstraat 3 II"]),
    ("Paulus Potterstraat 21-3", ["Paulus Potterstraat 21-3"]),
    ("dochter woont op Burgemeester de Withstraat 7", ["Burgemeester de Withstraat 7"]),
    ("Post komt op Burg. de Withstraat 7", ["Burg. de Withstraat 7"]),
    ("het huis op Van Asch van Wijckstraat 55", ["Van Asch van Wijckstraat 55"]),
    ("gezien bij de container op Kamp 22.", ["Kamp 22"]),
    ("aan de Markt 3 in het centrum", ["Markt 3"]),
    ("woont op kerkstraat 12", ["kerkstraat 12"]),
    # a postcode right after the house number belongs to the address
    ("Het adres is Kerkstraat 12, 3811 AB Amersfoort.", ["Kerkstraat 12, 3811 AB"]),
    ("Dorpsstraat 12a\n3811 AB  Amersfoort", ["Dorpsstraat 12a\n3811 AB"]),
    # a capitalised street with a street suffix, without a number
    ("Mevrouw woont aan de Bilderdijkstraat.", ["Bilderdijkstraat"]),
    ("Hij woont in de Langestraat boven de winkel", ["Langestraat"]),
    ("Woont aan het Stationsplein", ["Stationsplein"]),
    ("slaapt in de schuur aan de Schimmelpenninckkade", ["Schimmelpenninckkade"]),
    ("woont aan de Jan van Goyenstraat", ["Jan van Goyenstraat"]),
    ("op het Willem de Zwijgerplein 3", ["Willem de Zwijgerplein 3"]),
]


@pytest.mark.parametrize(("text", "expected"), STREETS)
def test_street_addresses_are_found(text: str, expected: list[str]) -> None:
    assert streets(text) == expected


# --- what is not identity (§8.5.7 exclusions, §8.7) -------------------------------------

NOT_IDENTITY = [
    # towns, districts, neighbourhoods
    "Mevrouw woont al veertig jaar in Amersfoort.",
    "De casus speelt in het Soesterkwartier.",
    "Doorverwezen naar wijkteam Noord.",
    "Meneer is verhuisd van Leusden naar Soest.",
    "Haar zoon woont in Den Haag, haar dochter in De Bilt.",
    "Zij komt uit 's-Hertogenbosch.",
    "Het gesprek met mevrouw in het Soesterkwartier ging goed.",
    # organisations, services, hospitals
    "De GGD heeft een huisbezoek afgelegd.",
    "Veilig Thuis is ingeschakeld.",
    "Meneer slaapt soms bij het Leger des Heils.",
    "Via de Vrijwilligerscentrale is een maatje gevonden.",
    "Mevrouw ligt in het Meander Medisch Centrum.",
    "Humanitas biedt thuisadministratie aan, de Zonnebloem een uitje.",
    "Boodschappen bij de Albert Heijn om de hoek.",
    "de coördinator van Steunpunt Eenzaamheid belde",
    "Meneer krijgt begeleiding van Kwintes, begeleider Kwintes komt maandag.",
    # roles and kinship words without a name
    "De buurman heeft de melding gedaan.",
    "Zijn dochter komt twee keer per week.",
    "Buurman maakt zich zorgen om mevrouw.",
    "Mevrouw, 82 jaar, woont alleen.",
    # weekdays, months, ages, feasts
    "Maandag komt de wijkverpleging, in januari is mevrouw verhuisd.",
    "Meneer (67) heeft sinds maart geen huur betaald.",
    "Met Kerst wil mevrouw niet alleen zijn; tijdens de Ramadan eet meneer 's avonds.",
    # sentence starts, care words, medical terms and eponyms
    "Brand in de keuken, buren gebeld.",
    "Gisteren is er opnieuw een melding binnengekomen.",
    "Vermoedelijk de ziekte van Alzheimer; meneer heeft ook Parkinson.",
    "Mogelijk het syndroom van Korsakov.",
    "Kern- en schilpartners overleggen.",
    # a word of the surname list at the start of a sentence is read as a word
    "Grond en onderbouwing voldoende. Burgers kunnen meer dan gedacht.",
    "Bron: het wijkteam.",
    # street-like text without a street
    "Meneer woont op nummer 12, maar de straat wil hij niet noemen.",
    "Het gesprek is in kamer 12. Fase 2 is gestart, de kleinzoon zit in groep 8.",
    "Onderweg naar huis viel meneer.",
    "De straat is slecht verlicht.",
    # streets without a suffix and without a number, and names without capitals (§8.7)
    "Mw. woont op de Kamp.",
    "mevrouw jansen belt morgen",
]


@pytest.mark.parametrize("text", NOT_IDENTITY)
def test_what_is_not_identity_passes(text: str) -> None:
    assert found(text) == []


def test_a_place_is_a_surname_after_an_article_but_not_after_van() -> None:
    assert names("De Vries belde") == ["De Vries"]          # Vries is also a village
    assert names("verhuisd van Leusden naar Soest") == []
    assert names("meneer van Leusden belde") == ["van Leusden"]


def test_a_surname_alone_counts_after_a_sentence_start_not_at_it() -> None:
    assert names("Grond en onderbouwing voldoende.") == []
    assert names("Het gaat om Grond en zijn vrouw.") == ["Grond"]
    assert names("Dijkstra heeft de meterkast bekeken.") == []      # §8.7: rule 5 only
    assert names("Mevrouw Dijkstra heeft de meterkast bekeken.") == ["Dijkstra"]


def test_the_cases_own_neighbourhood_is_a_place_in_every_string_of_the_value() -> None:
    intake = {"neighbourhood": "Schothorst", "summary": "Meneer woont al jaren in Schothorst."}
    assert scan_value(intake) == []
    assert check_anonymous(intake) is None
    # ... a place, not an allow-list: a person of that name, and a street, are still found
    named = {"neighbourhood": "Schothorst", "summary": "Gesprek met mevrouw Schothorst."}
    assert [(p, f.kind.value) for p, f in scan_value(named)] == [("summary", "person_name")]
    street = {"neighbourhood": "Bilderdijkstraat", "summary": "zorgen"}
    assert [(p, f.kind.value) for p, f in scan_value(street)] == [
        ("neighbourhood", "street_address")]
    # without the member, the same word is read from the surname list
    assert [f.kind.value for f in scan("Meneer woont al jaren in Schothorst.")] == [
        "person_name"]


def test_a_street_with_a_house_number_is_not_read_as_a_surname() -> None:
    assert found("Mevrouw Kerkstraat 12") == [("street_address", "Kerkstraat 12")]


def test_names_and_streets_with_other_identifiers() -> None:
    note = ("Dochter Anja ([phone]: 06-12345678) van meneer de Vries, Kerkstraat 12, 3811 AB; "
            "geboren 12-03-1948")
    assert found(note) == [
        ("person_name", "Anja"), ("phone", "06-12345678"), ("person_name", "de Vries"),
        ("street_address", "Kerkstraat 12, 3811 AB"), ("birth_date", "12-03-1948")]


# --- the allow-list --------------------------------------------------------------------

def test_allow_listed_words_are_never_names_or_streets() -> None:
    note = "Overleg in Schothorst met Amaris over de Emiclaerweg."
    assert {k for k, _ in found(note)} == {"person_name", "street_address"}
    assert found(note, allow=["schothorst", "AMARIS", "Emiclaerweg"]) == []


def test_allow_list_matches_whole_words_and_phrases_only() -> None:
    allow = ["Jansen Thuiszorg", "Berg"]
    assert names("Jansen Thuiszorg komt langs", allow=allow) == []
    assert names("mevrouw Jansen komt langs", allow=allow) == ["Jansen"]    # not the phrase
    assert names("Mevrouw van den Bergen", allow=allow) == ["van den Bergen"]  # not the word
    assert names("Mevrouw van den Berg", allow=allow) == []


def test_allow_list_never_hides_other_identifiers() -> None:
    assert found("Noord 06-12345678", allow=["06-12345678", "Noord"]) == [
        ("phone", "06-12345678")]


def test_allow_list_reaches_scan_value_and_check_anonymous() -> None:
    value = {"summary": "Overleg met Amaris", "domains": ["wonen"]}
    assert [p for p, _ in scan_value(value)] == ["summary"]
    assert scan_value(value, allow=("Amaris",)) == []
    assert check_anonymous(value, allow=("Amaris",)) is None
    with pytest.raises(PolicyViolation):
        check_anonymous(value, allow=("Humanitas",))


@pytest.mark.parametrize("bad", ["Amaris", b"Amaris", ["Amaris", 3], 7, None])
def test_allow_must_be_a_collection_of_strings(bad: object) -> None:
    with pytest.raises(MalformedError):
        scan("Overleg met Amaris", allow=bad)  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        check_anonymous({"x": "y"}, allow=bad)  # type: ignore[arg-type]


# --- findings hold no text ---------------------------------------------------------------

def test_name_and_street_findings_hold_no_text() -> None:
    text = "Mevrouw Jansen op Soesterweg 12"
    findings = scan(text)
    assert [f.kind for f in findings] == [Kind.PERSON_NAME, Kind.STREET_ADDRESS]
    rendered = repr(findings) + " ".join(map(str, findings))
    for value in ("Jansen", "Soesterweg", "12"):
        assert value not in rendered
    assert Finding(kind="person_name", start=0, end=1).kind is Kind.PERSON_NAME
    assert Finding(kind="street_address", start=0, end=1).kind is Kind.STREET_ADDRESS


# --- codes: letters glued to digits or "_" are never words ------------------------------

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_B64URL, min_size=8, max_size=64)
       .filter(lambda s: any(c.isdigit() or c == "_" for c in s)))
def test_a_key_id_or_other_code_is_never_a_name_or_street(code: str) -> None:
    """A key id in an event's "by" field, a case id, a reference: a run of letters, digits,
    "_" and "-" with a digit or "_" in it is one code, whatever letters it holds."""
    assert [f.kind for f in scan(f"Actie door {code} gepland")] == []
    assert check_anonymous({"kind": "action", "by": code}) is None


def test_codes_among_words() -> None:
    assert found("zaak ZD111Jansen en Kim_2 bellen") == []
    assert found("melding van Kim, zaak A28") == [("person_name", "Kim")]


# --- robustness: total, well-formed, linear --------------------------------------------

_PIECES = ["Meneer ", "mevrouw ", "Mw. ", "dhr", ".", "de ", "van ", "den ", "der ", "'t ", "-",
           "Jan", "Anja", "Vries", "Berg", "Jansen", "Kerkstraat", "straat", "weg ", "12", "4a",
           " nummer ", "nr.", " ", "\n", ", ", "3811 AB", "J.", "A.M.", "Amersfoort", "GGD",
           "Veilig Thuis", "zijn dochter ", "buurman ", "Burg.", "Den Haag", "'s-", "\u00a0"]


def _well_formed(text: str) -> None:
    findings = scan(text)
    previous_end = 0
    for f in findings:
        assert 0 <= f.start < f.end <= len(text) and text[f.start:f.end].strip()
        assert f.start >= previous_end
        previous_end = f.end
    assert scan(text) == findings


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=120).map("".join))
def test_scan_of_name_like_text_is_total_and_well_formed(text: str) -> None:
    _well_formed(text)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), min_size=2000, max_size=4000).map("".join))
def test_long_name_like_inputs_are_scanned_whole(text: str) -> None:
    _well_formed(text)


@pytest.mark.parametrize("piece", ["A.", "van ", "Jan-", "de Vries-", "Kerkstraat ", "12 ",
                                   "Meneer ", "'t ", "Burg. ", "-", "a" * 50 + " ", "Ab"])
def test_adversarial_repetitions_finish(piece: str) -> None:
    """100 000 characters of one repeated piece: the scan ends (a catastrophic regular
    expression or a quadratic loop would not; the bound is a safety net, not a timing)."""
    text = piece * (100_000 // len(piece))
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(scan(text)), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert result, f"scanning {piece!r} * n did not finish"


# --- the lists: read once, lazily, from the pinned Deduce, without importing it -----------

def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT, timeout=300).stdout


def test_lists_are_loaded_on_the_first_text_with_a_letter_and_not_before() -> None:
    out = _python(
        "import json, sys\n"
        "from schakel.protocol import pii, pii_lexicon\n"
        "steps = [pii_lexicon.loaded()]\n"
        "pii.scan('06-12345678, 111222333 12-03-1948')\n"
        "steps.append(pii_lexicon.loaded())\n"
        "pii.scan('Anja')\n"
        "steps.append(pii_lexicon.loaded())\n"
        "steps.append(sorted(m for m in ('deduce', 'docdeid', 'numpy') if m in sys.modules))\n"
        "print(json.dumps(steps))\n")
    assert json.loads(out) == [False, False, True, []]


def test_schakel_help_does_not_load_the_lists() -> None:
    out = _python(
        "from click.testing import CliRunner\n"
        "from schakel.cli.main import main\n"
        "from schakel.protocol import pii_lexicon\n"
        "for args in (['--help'], ['case', 'create', '--help']):\n"
        "    assert CliRunner().invoke(main, args).exit_code == 0\n"
        "print(pii_lexicon.loaded())\n")
    assert out.strip() == "False"


def test_installed_deduce_is_the_release_the_specification_names() -> None:
    assert importlib.metadata.version("deduce") == pii_lexicon.DEDUCE_VERSION
    spec = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert f"Deduce {pii_lexicon.DEDUCE_VERSION}" in spec
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"deduce=={pii_lexicon.DEDUCE_VERSION}"' in pyproject


def test_without_deduce_the_guard_refuses_to_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pii_lexicon.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pii_lexicon.LexiconUnavailable, match="deduce"):
        pii_lexicon._build()


def test_keys_of_a_list_are_the_keys_of_its_lines() -> None:
    lines = ["Burg. de Withstraat", "  A.C. Bleijsstraat ", "'s-Hertogenbosch", "Öztürk",
             "van  Asch", "plain", "", "Jan_Piet", "x\r"]
    assert pii_lexicon._keys("\n".join(lines)) == {pii_lexicon.key(s) for s in lines} - {""}
    assert pii_lexicon.key("Burg. de With-straat") == "burg de with straat"


def _spec_list(spec: str, heading: str) -> set[str]:
    """The words listed under a bold run-in heading of protocol.md §8.5.7/§8.5.8."""
    m = re.search(rf"\*\*{re.escape(heading)}\*\*[^:]*:(.+?)(?:\n\n|\n- )", spec, re.S)
    assert m, f"protocol.md has no list {heading!r}"
    return {w.strip(" .`\n") for w in re.split(r"[,;]\s*", m.group(1).replace("\n", " "))
            if w.strip(" .`\n")}


@pytest.mark.parametrize(("heading", "words"), [
    ("Relatives", pii_lexicon.RELATIVES), ("Roles", pii_lexicon.ROLES),
    ("Extra honorifics", pii_lexicon.EXTRA_HONORIFICS),
    ("Never names on their own", pii_lexicon.NEVER_NAMES),
    ("Organisations", pii_lexicon.ORGANISATIONS),
    ("Street suffixes", pii_lexicon.STREET_SUFFIXES),
    ("Not streets", pii_lexicon.NOT_STREETS),
])
def test_the_specification_lists_the_built_in_words(heading: str, words: tuple[str, ...]) -> None:
    spec = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert _spec_list(spec, heading) == set(words)
