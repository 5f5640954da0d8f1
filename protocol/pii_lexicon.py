"""The word lists behind the name and street detectors (docs/protocol.md §8.5.7, §8.5.8).

Two sources:

* **Deduce's lookup lists** (UMC Utrecht's de-identification library for Dutch clinical text,
  PyPI ``deduce``, version :data:`DEDUCE_VERSION`; on its licence see ADR 0016): Dutch first names,
  surnames, interfixes, honorifics, initials, streets, places, hospitals, healthcare
  institutions, and the whitelist of common words, stop words and medical terms.  They are
  read as package data from the installed ``deduce`` distribution, unchanged and without
  importing ``deduce`` (which would pull in numpy and build its own structures): the package
  is located with :func:`importlib.util.find_spec` and read through :mod:`importlib.resources`,
  as :mod:`schakel.protocol.schema` reads its schemas.  No network, no writes.
* **Built-in lists** below, normative in the specification: the words for relatives and roles
  that announce a name, honorifics Deduce lacks, words that are not a name on their own (days,
  months, feasts, compass points, services, care-note words that Deduce lists as names),
  organisations, and the street suffixes.

:func:`lexicon` builds everything once per process, on first use, under a lock; the result is
immutable.  ``import schakel.protocol.pii`` does not load it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

#: The Deduce release whose lists the specification names (pinned in pyproject.toml).
DEDUCE_VERSION = "3.0.6"
_SRC = "data/lookup/src"

# --- built-in lists (protocol.md §8.5.7, §8.5.8) ------------------------------------------------

#: Honorifics in addition to Deduce's lst_prefix (meneer, mevrouw, dhr., mw., de heer, …).
EXTRA_HONORIFICS = ("juffrouw", "mejuffrouw", "mevrouwtje", "familie", "fam", "wed",
                    "weduwe", "broeder", "pastoor", "dominee", "dokter", "meester",
                    "juf", "jonkheer", "jkvr", "jhr")

#: Relatives and neighbours: a capitalised word right after one of them is read as a name,
#: listed or not ("zijn dochter Anja", "buurman Wojtek").
RELATIVES = (
    "vader moeder pa ma papa mama zoon dochter zoontje dochtertje broer zus zuster broertje "
    "zusje opa oma grootvader grootmoeder kleinzoon kleindochter kleinkind neef nicht oom tante "
    "man vrouw echtgenoot echtgenote partner vriend vriendin ex exman exvrouw expartner "
    "schoonzoon schoondochter schoonvader schoonmoeder schoonzus schoonzuster schoonbroer "
    "zwager stiefvader stiefmoeder stiefzoon stiefdochter pleegvader pleegmoeder pleegzoon "
    "pleegdochter halfbroer halfzus achterneef achternicht buurman buurvrouw buurjongen "
    "buurmeisje huisgenoot").split()
#: Other people around a case: after one of them only a listed name is read as a name, because
#: an organisation often follows ("vrijwilliger Wim", but "begeleider Kwintes").
ROLES = (
    "mantelzorger vrijwilliger maatje kennis huisbaas bewindvoerder mentor curator "
    "huisarts wijkagent wijkverpleegkundige casemanager begeleider hulpverlener coördinator "
    "melder").split()

#: Words that are not read as a name on their own, though some are in Deduce's name lists.
#: (After an honorific or a relative's word, or as a surname after an interfix, they are.)
NEVER_NAMES = (
    # days, months, seasons and feasts
    "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag weekend januari februari "
    "maart april mei juni juli augustus september oktober november december lente zomer "
    "herfst winter kerst kerstmis pasen pinksteren hemelvaart sinterklaas koningsdag ramadan "
    "suikerfeest offerfeest "
    # compass points and parts of a town
    "noord oost zuid west noordoost noordwest zuidoost zuidwest centrum binnenstad "
    # services and organisations that case notes name
    "ggd ggz wmo uwv svb cjg mee politie brandweer ambulance gemeente thuiszorg wijkteam "
    "buurtteam voedselbank kringloop vrijwilligerscentrale humanitas zonnebloem "
    "schuldhulpverlening wijkverpleging dagbesteding reclassering jeugdzorg buurtzorg "
    "woningcorporatie belastingdienst "
    # words of case notes that Deduce lists as first names or surnames
    "kern brand bank bus water post slot tuin keuken kelder schuur kat hond muis vogel dood "
    "rouw wijn winkel baan stok wel niet buiten boven lieve goede oude kleine jonge burgers "
    "buren kinderen bron noot stap doel buddy maatje middag").split()

#: Organisation names of more than one word; their words are never part of a name.
ORGANISATIONS = (
    "Veilig Thuis", "Leger des Heils", "Rode Kruis", "De Zonnebloem", "Sociaal Wijkteam",
    "Juridisch Loket", "De Luisterlijn",
    "Slachtofferhulp Nederland", "Raad voor de Kinderbescherming", "Albert Heijn",
    "Alzheimer Nederland", "Zorg en Overlast", "Meldpunt Zorg en Overlast", "Zilveren Kruis",
    "Stichting Welzijn", "Maatschappelijk Werk",
)

#: Street suffixes: a capitalised compound that ends in one of these is a street name even
#: without a house number and without being in Deduce's street list (protocol.md §8.5.8).
STREET_SUFFIXES = ("straat", "laan", "weg", "plein", "gracht", "kade", "singel", "dreef",
                   "steeg")
#: Compounds with a street suffix that are ordinary words, not streets.
NOT_STREETS = ("onderweg", "halfweg", "uitweg", "omweg", "snelweg", "zijweg", "zijstraat",
               "toegangsweg", "doorgangsweg", "rijstraat", "wandelweg", "fietsweg")


# --- keys ---------------------------------------------------------------------------------------

#: Words in the longest phrase the detectors look up (protocol.md §8.5.7); longer list entries
#: are never matched.
MAX_PHRASE_WORDS = 8

_KEY_WORD = re.compile(r"[^\W_]+")
# In a case-folded list: a character that makes a line differ from its key (checked for each
# line that has one: accented letters too, which are rare).
_SUSPECT = re.compile(r"[^a-z0-9 \n]")


def key(phrase: str) -> str:
    """The lookup key of a word or phrase (protocol.md §8.5.7): its runs of letters and digits,
    case-folded, joined by single spaces: ``"Burg. de With-straat"`` -> ``"burg de with straat"``.
    """
    return " ".join(_KEY_WORD.findall(phrase.casefold()))


def _keys(text: str) -> set[str]:
    """``{key(line) for line in text.splitlines()} - {""}``, without a Python-level pass over
    the lines that are keys already once case-folded (all but a few percent of a list)."""
    folded = text.casefold()
    keys = set(folded.split("\n"))
    suspects = [m.start() for m in _SUSPECT.finditer(folded)]
    for pattern in ("  ", "\n ", " \n"):
        at = folded.find(pattern)
        while at >= 0:
            suspects.append(at + 1)
            at = folded.find(pattern, at + 1)
    suspects += [0, len(folded) - 1]
    for start in {folded.rfind("\n", 0, at) + 1 for at in suspects}:
        end = folded.find("\n", start)
        line = folded[start:end if end >= 0 else len(folded)]
        if line != key(line):
            keys.discard(line)
            keys.add(key(line))
    keys.discard("")
    return keys


@dataclass(frozen=True, slots=True)
class Phrases:
    """Phrase keys, the first words of the phrases, and a bound on their number of words."""

    keys: frozenset[str]
    starts: frozenset[str]
    longest: int

    @classmethod
    def of(cls, keys: Iterable[str]) -> Phrases:
        keys = frozenset(keys)
        return cls(keys, frozenset(k.partition(" ")[0] for k in keys),
                   min(MAX_PHRASE_WORDS, max((k.count(" ") + 1 for k in keys), default=0)))


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Every list the detectors consult, as keys (see :func:`key`)."""

    first_names: frozenset[str]
    surnames: frozenset[str]
    interfix_surnames: frozenset[str]
    interfixes: Phrases
    honorifics: Phrases
    abbreviated: frozenset[str]        # honorifics that may be followed by "."
    initials: frozenset[str]           # as written, not keys: "J", "Th"
    relatives: frozenset[str]
    roles: frozenset[str]
    whitelist: frozenset[str]          # Deduce's: medical terms, stop words, common words
    never_names: frozenset[str]        # built-in: NEVER_NAMES, RELATIVES and ROLES
    eponyms: frozenset[str]
    places: Phrases
    institutions: Phrases              # hospitals, healthcare institutions, organisations
    streets: frozenset[str]
    street_titles: dict[str, tuple[str, ...]]   # "burg" -> ("burgemeester",)
    titles: frozenset[str]             # the words they stand for: "burgemeester"
    not_streets: frozenset[str]


# --- reading Deduce's lists ---------------------------------------------------------------------

class LexiconUnavailable(RuntimeError):
    """Deduce's lists cannot be read: the guard cannot judge names and must not pretend to."""


def _root() -> Traversable:
    spec = importlib.util.find_spec("deduce")
    if spec is None or not spec.submodule_search_locations:
        raise LexiconUnavailable(
            f"the PII guard needs the lookup lists of deduce {DEDUCE_VERSION} "
            f"(pip install deduce=={DEDUCE_VERSION})")
    # A module object made from the spec is never executed: reading its package data does not
    # import deduce (numpy, docdeid).
    return resources.files(importlib.util.module_from_spec(spec)).joinpath(_SRC)


def _read(node: Traversable) -> str:
    return node.read_text(encoding="utf-8") if node.is_file() else ""


def _items(root: Traversable, path: str) -> set[str]:
    """The keys of a Deduce list as Deduce reads it: ``items.txt`` minus ``exceptions.txt``,
    plus the items of its nested ``lst_*`` lists (transformations are not applied)."""
    node = root.joinpath(path)
    items = _keys(_read(node.joinpath("items.txt"))) - _keys(_read(node.joinpath("exceptions.txt")))
    for sub in sorted(node.iterdir(), key=lambda n: n.name):
        if sub.is_dir() and sub.name.startswith("lst_"):
            items |= _items(root, f"{path}/{sub.name}")
    return items


def _street_titles(root: Traversable) -> dict[str, tuple[str, ...]]:
    """Deduce's abbreviations of titles in street names (lst_street/transform.json, group
    "prefix"): the key of a dotted abbreviation -> the keys of the words it stands for."""
    config = json.loads(_read(root.joinpath("locations/lst_street/transform.json")))
    out: dict[str, list[str]] = {}
    for pattern, variants in config["transforms"]["prefix"].items():
        full = key(pattern.replace("\\b", ""))
        for v in variants:
            if v.endswith(".") and key(v) != full and full not in out.setdefault(key(v), []):
                out[key(v)].append(full)
    return {k: tuple(v) for k, v in out.items()}


_SHORT = re.compile(r"^.{1,3}$", re.MULTILINE)


def _short(keys: set[str]) -> set[str]:
    """The keys of fewer than 4 characters (Deduce drops such streets and institutions)."""
    return set(_SHORT.findall("\n".join(k for k in keys if len(k) < 4)))


def _build() -> Lexicon:
    root = _root()
    lst = {name: _items(root, path) for name, path in (
        ("first", "names/lst_first_name"), ("surname", "names/lst_surname"),
        ("isurname", "names/lst_interfix_surname"), ("interfix", "names/lst_interfix"),
        ("prefix", "names/lst_prefix"),
        ("common", "whitelist/lst_common_word"), ("stop", "whitelist/lst_stop_word"),
        ("medical", "whitelist/lst_medical_term"), ("eponym", "whitelist/lst_eponymous_disease"),
        ("place", "locations/lst_placename"), ("street", "locations/lst_street"),
        ("hospital", "institutions/lst_hospital"), ("abbr", "institutions/lst_hospital_abbr"),
        ("institution", "institutions/lst_healthcare_institution"))}
    initials = {line.strip() for line in
                _read(root.joinpath("names/lst_initial/items.txt")).splitlines() if line.strip()}
    dotted = {key(line) for line in _read(root.joinpath("names/lst_prefix/items.txt")).splitlines()
              if line.strip().endswith(".")}

    # Deduce's whitelist: medical terms, stop words, and common words that are not surnames.
    whitelist = {k for k in lst["medical"] | lst["stop"] | (lst["common"] - lst["surname"])
                 if len(k) >= 2}
    eponyms = {w for e in lst["eponym"] for w in e.split(" ")
               if len(w) >= 3 and w not in ("ziekte", "syndroom", "van", "von", "del")}

    def names(items: set[str]) -> frozenset[str]:
        return frozenset(k for k in items if len(k) >= 2 and k not in whitelist)

    # As Deduce does: first names and surnames that are whitelisted words are dropped; the
    # surnames that follow an interfix are kept whole ("van der Meer").
    first, surnames = names(lst["first"]), names(lst["surname"])
    isurnames = frozenset(k for k in lst["isurname"] if len(k) >= 2)
    institutions = (lst["institution"] - _short(lst["institution"])) | lst["hospital"] \
        | lst["abbr"] | {key(o) for o in ORGANISATIONS}
    institutions -= whitelist | first | surnames | isurnames   # a name alone is not blocked
    titles = _street_titles(root)
    return Lexicon(
        first_names=first, surnames=surnames, interfix_surnames=isurnames,
        interfixes=Phrases.of(lst["interfix"]),
        honorifics=Phrases.of(lst["prefix"] | {key(h) for h in EXTRA_HONORIFICS}),
        abbreviated=frozenset(dotted | {"fam", "wed", "jkvr", "jhr"}),
        initials=frozenset(initials), relatives=frozenset(RELATIVES), roles=frozenset(ROLES),
        whitelist=frozenset(whitelist), never_names=frozenset(NEVER_NAMES + RELATIVES + ROLES),
        eponyms=frozenset(eponyms), places=Phrases.of(lst["place"]),
        institutions=Phrases.of(institutions),
        streets=frozenset(lst["street"] - _short(lst["street"])),
        street_titles=titles, titles=frozenset(w for full in titles.values() for w in full),
        not_streets=frozenset(NOT_STREETS))


_lock = threading.Lock()
_lexicon: Lexicon | None = None


def lexicon() -> Lexicon:
    """The lists, built on first use (once per process) and shared afterwards."""
    global _lexicon
    if _lexicon is None:
        with _lock:
            if _lexicon is None:
                _lexicon = _build()
    return _lexicon


def loaded() -> bool:
    """Whether :func:`lexicon` has been built in this process (for tests of lazy loading)."""
    return _lexicon is not None
