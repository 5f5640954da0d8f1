"""Names of people and street addresses in Dutch text (docs/protocol.md §8.5.7, §8.5.8).

A rule-based matcher over Deduce's lookup lists and the built-in lists of
:mod:`schakel.protocol.pii_lexicon`.  The text is cut into tokens once; a first pass marks the tokens
that can never be part of a name or a street (places, institutions, organisations, the
caller's allow-list, common words); then names are read after honorifics and kinship words
and from the name lists, and streets at house numbers and street suffixes.  Only spans come
out.  Every loop is bounded by the number of tokens times a small constant (the longest list
phrase), and no regular expression has nested repetition, so the time is linear in the length
of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from schakel.protocol.pii_lexicon import MAX_PHRASE_WORDS, STREET_SUFFIXES, Lexicon, Phrases, key, lexicon

# protocol.md §8.5.4 and §8.5.8: a postcode and a house number.
POSTCODE = r"[1-9][0-9]{3}(?:[ \u00a0]?(?!S[ADS])[A-Z]{2}|(?!s[ads])[a-z]{2})(?![^\W\d_])"
HOUSE_NUMBER = (r"[1-9][0-9]{0,4}(?:[ -]?(?:bis|hs|huis)(?![^\W\d_])|[ -]?[A-Za-z](?![^\W\d_])"
                r"|-[0-9]{1,4}|[ ][IVX]{1,4}(?![^\W\d_]))?")
#: protocol.md §8.3: a number is not followed by a digit or by one of - – . , / and a digit.
NUMBER_END = r"(?![0-9])(?![-\u2013./,][0-9])"
BLANK = r"[ \t\u00a0]{0,3}"

# protocol.md §8.5.7 "Tokens": a run of word characters, hyphens and apostrophes with a digit
# or "_" in it is one code ("12a", "ZD111222333", a key id); any other run is cut into the
# elided articles 't and 's, words (letters, with inner apostrophes) and single characters.
_RUN = re.compile(r"[\w'\u2019`-]+|\S")
_CODE_CHAR = re.compile(r"[\d_]")
_TOKEN = re.compile(r"(?P<word>['\u2019`][tsTS](?![^\W\d_])|[^\W\d_]+(?:['\u2019`][^\W\d_]+)*)"
                    r"|\S")
_HOUSE_NUMBER_AT = re.compile(rf"{HOUSE_NUMBER}(?!\w){NUMBER_END}")
_POSTCODE_AFTER = re.compile(rf"{BLANK}(?:[,;]{BLANK})?(?:\r?\n{BLANK})?{POSTCODE}")
_NUMBER_WORDS = frozenset(("nummer", "nr", "no", "huisnummer", "huisnr"))
_MAX_NAME_WORDS = 4
_MAX_INITIALS = 4
#: Interfixes that are also prepositions: after one, only a surname of lst_interfix_surname.
_PREPOSITIONS = frozenset(("aan de", "bij de", "in den", "in het", "in t", "op de", "op den",
                           "op het", "op t", "uit de", "te", "ten", "ter"))
_ARTICLES = frozenset(("de", "den", "der", "het", "t"))
_ABBREVIATED_INTERFIXES = frozenset(("v", "v d", "vd"))
_OPENERS = "\"'\u2018\u201c([*\u2022-\u2013"

# Why a token is not read as (part of) a name or street (protocol.md §8.5.7 "exclusions").
_COMMON, _NEVER, _PLACE, _INSTITUTION, _ALLOWED = 1, 2, 4, 8, 16


@dataclass(slots=True)
class _Tokens:
    text: str
    start: list[int]
    end: list[int]
    key: list[str]          # lookup key; "" for punctuation
    word: list[bool]        # a word (not a number, not punctuation)
    cap: list[bool]         # capitalised: first letter upper case, not all letters upper case
    block: list[int]        # _COMMON | _NEVER | _PLACE | _INSTITUTION | _ALLOWED

    def __len__(self) -> int:
        return len(self.key)

    def glued(self, i: int) -> bool:
        """Token i+1 follows token i with nothing in between."""
        return i + 1 < len(self.key) and self.end[i] == self.start[i + 1]

    def same_line(self, i: int) -> bool:
        """Token i+1 follows token i on the same line (spaces and tabs only in between)."""
        if i + 1 >= len(self.key):
            return False
        gap = self.text[self.end[i]:self.start[i + 1]]
        return "\n" not in gap and "\r" not in gap

    def is_punct(self, i: int, chars: str) -> bool:
        return 0 <= i < len(self.key) and not self.key[i] and self.text[self.start[i]] in chars

    def sentence_start(self, i: int) -> bool:
        """Token i begins the text, a line or a sentence (after . ! ?), opening quotes,
        brackets and bullets aside."""
        j = i - 1
        while j >= 0 and self.is_punct(j, _OPENERS) and self.same_line(j):
            j -= 1
        return j < 0 or not self.same_line(j) or self.is_punct(j, ".!?")

    def joins(self, j: int) -> bool:
        """Punctuation token j joins the words around it into one phrase: a full stop glued
        to the word before it, or - ' ’ glued on both sides."""
        return j > 0 and self.glued(j - 1) and (
            self.is_punct(j, ".") or self.is_punct(j, "-'\u2019") and self.glued(j))

    def dot_after(self, i: int) -> bool:
        """Token i is directly followed by a full stop."""
        return self.is_punct(i + 1, ".") and self.glued(i)


def _tokenise(text: str) -> _Tokens:
    t = _Tokens(text, [], [], [], [], [], [])

    def add(start: int, end: int, k: str, is_word: bool) -> None:
        s = text[start:end]
        t.start.append(start)
        t.end.append(end)
        t.key.append(k)
        t.word.append(is_word)
        t.cap.append(is_word and s[0].isupper() and not s.isupper())
        t.block.append(0)

    for run in _RUN.finditer(text):
        if _CODE_CHAR.search(run.group()):
            add(run.start(), run.end(), key(run.group()) or run.group(), False)
            continue
        for m in _TOKEN.finditer(text, run.start(), run.end()):
            is_word = m.lastgroup == "word"
            add(m.start(), m.end(), key(m.group()) if is_word else "", is_word)
    return t


def _phrase_end(t: _Tokens, i: int, phrases: Phrases) -> int:
    """End (exclusive token index) of the longest phrase of ``phrases`` that starts at token i,
    or i.  The words of a phrase are separated by spaces, or glued by "." "-" "'"."""
    n = len(t.key)
    if i >= n or not t.word[i] or t.key[i].partition(" ")[0] not in phrases.starts:
        return i
    best, words, j, parts = i, 0, i, []
    while j < n and words < phrases.longest:
        if not t.key[j]:
            if j > i and t.joins(j):
                j += 1
                continue
            break
        if j > i and not t.same_line(j - 1):
            break
        parts.append(t.key[j])
        words += t.key[j].count(" ") + 1
        j += 1
        if " ".join(parts) in phrases.keys:
            best = j
    return best


@lru_cache(maxsize=64)
def phrases_of(words: tuple[str, ...]) -> Phrases:
    """A caller's words and phrases as keys (an allow-list, a case's neighbourhood)."""
    return Phrases.of(k for k in map(key, words) if k)


def _mark_blocks(t: _Tokens, lx: Lexicon, allow: Phrases, places: Phrases) -> None:
    """protocol.md §8.5.7 "exclusions": mark common words, places, institutions and the
    allow-list's phrases (the longest phrase at each position, left to right)."""
    for i, k in enumerate(t.key):
        if t.word[i]:
            t.block[i] |= (_COMMON * (k in lx.whitelist)) | (_NEVER * (k in lx.never_names))
    for phrases, flag in ((lx.places, _PLACE), (places, _PLACE),
                          (lx.institutions, _INSTITUTION), (allow, _ALLOWED)):
        if not phrases.keys:
            continue
        i = 0
        while i < len(t):
            # lists: from a capitalised word or an elided article ('s-Hertogenbosch)
            listed_start = t.cap[i] or t.word[i] and not t.text[t.start[i]].isalpha()
            j = _phrase_end(t, i, phrases) if flag == _ALLOWED or listed_start else i
            for n in range(i, j):
                t.block[n] |= flag
            i = max(j, i + 1)


# --- names (protocol.md §8.5.7) -----------------------------------------------------------------

class _Names:
    def __init__(self, t: _Tokens, lx: Lexicon) -> None:
        self.t, self.lx = t, lx

    def listed(self, i: int) -> bool:
        k, lx = self.t.key[i], self.lx
        return k in lx.first_names or k in lx.surnames or k in lx.interfix_surnames

    def name_word(self, i: int, *, bare: bool, after_interfix: str = "") -> bool:
        """Token i is a capitalised word that may be part of a name (``bare``: without an
        honorific or a relative's word before it).  After an interfix, a surname of
        lst_interfix_surname may be a common word ("van der Meer") or a place ("de Vries"),
        but not a place after a bare "van" ("van Leusden")."""
        t = self.t
        if i >= len(t) or not t.cap[i] or t.block[i] & (_INSTITUTION | _ALLOWED):
            return False
        isurname = bool(after_interfix) and t.key[i] in self.lx.interfix_surnames
        if t.block[i] & _COMMON and not isurname or t.block[i] & _NEVER and bare and not isurname:
            return False
        if t.block[i] & _PLACE and not (isurname and not (bare and after_interfix == "van")
                                        or not bare and self.listed(i)):
            return False
        if bare and t.key[i] in self.lx.eponyms and t.key[i] not in self.lx.first_names:
            return False
        if t.is_punct(i + 1, "-") and t.glued(i) and not t.glued(i + 1):
            return False                    # the first part of "Kern- en schilpartners"
        if self.honorific_end(i) > i:
            return False
        # a word with a street suffix is a street, unless it is a listed name without a
        # house number after it ("mevrouw Verlaan", but "Verlaan 3")
        return not (_has_suffix(t.key[i]) and (
            not self.listed(i) or _house_number_after(t, i) is not None))

    def word_end(self, i: int, *, bare: bool, listed: frozenset[str] | None = None,
                 after_interfix: str = "") -> int:
        """End of the name word at i with its hyphenated parts ("Hendriks-Mulder",
        "Beek-de Ruiter"), or i; with ``listed``, the first part must be in that list."""
        t = self.t
        if (not self.name_word(i, bare=bare, after_interfix=after_interfix)
                or (listed is not None and t.key[i] not in listed)):
            return i
        j = i + 1
        while j - i < 3 * _MAX_NAME_WORDS and t.is_punct(j, "-") and t.glued(j - 1) and t.glued(j):
            k = self.interfix_end(j + 1)
            ik = " ".join(t.key[n] for n in range(j + 1, k) if t.key[n])
            if k > j + 1 and self.name_word(k, bare=bare, after_interfix=ik):
                j = k + 1
            elif self.name_word(j + 1, bare=bare):
                j += 2
            else:
                break
        return j

    def interfix_end(self, i: int) -> int:
        t = self.t
        e = _phrase_end(t, i, self.lx.interfixes)
        if e > i and t.dot_after(e - 1) and " ".join(
                t.key[n] for n in range(i, e) if t.key[n]) in _ABBREVIATED_INTERFIXES:
            e += 1
        return e if e > i and t.same_line(e - 1) else i

    def honorific_end(self, i: int) -> int:
        t = self.t
        e = _phrase_end(t, i, self.lx.honorifics)
        if e > i and t.dot_after(e - 1) and " ".join(
                t.key[n] for n in range(i, e) if t.key[n]) in self.lx.abbreviated:
            e += 1
        return e

    def initials_end(self, i: int) -> int:
        """End of at most _MAX_INITIALS initials with full stops at i ("J.", "A.M.", "Th.")."""
        t, j = self.t, i
        while (j - i < 2 * _MAX_INITIALS and j < len(t) and t.word[j]
               and t.text[t.start[j]:t.end[j]] in self.lx.initials
               and t.dot_after(j) and (j == i or t.same_line(j - 1))):
            j += 2
        return j

    def surname_after(self, k: int, *, listed: bool = False) -> int:
        """An interfix and a name word at k ("van der Meer"); their end, or k.  After an
        interfix that is also a preposition ("op de"), or with ``listed``, the surname must
        be listed in lst_interfix_surname."""
        t = self.t
        e = self.interfix_end(k)
        if e == k:
            return k
        ik = " ".join(t.key[n] for n in range(k, e) if t.key[n])
        need = self.lx.interfix_surnames if listed or ik in _PREPOSITIONS else None
        end = self.word_end(e, bare=False, listed=need, after_interfix=ik)
        return end if end > e else k

    def read_name(self, j: int, *, relative: bool = False) -> int:
        """The reading of rule 1: up to 4 initials, up to 4 name words (listed or not), then
        an interfix and a name word (after a preposition-interfix or a relative's word, one of
        lst_interfix_surname); the end, or j if no name word was read."""
        t = self.t
        k = self.initials_end(j)
        words = 0
        while words < _MAX_NAME_WORDS and (k == j or t.same_line(k - 1)):
            e = self.word_end(k, bare=False)
            if e == k:
                break
            k, words = e, words + 1
        if k == j or t.same_line(k - 1):
            e = self.surname_after(k, listed=relative)
            if e > k:
                k, words = e, words + 1
        return k if words else j

    def bare(self, i: int) -> int:
        """Rules 2-5: a name without a context word, from the lists; the end, or i."""
        t, lx = self.t, self.lx
        k = self.initials_end(i)
        if k > i:                                           # rule 2: J.P. Smits, A. de Jong
            if k < len(t) and t.same_line(k - 1) and (
                    self.interfix_end(k) > k or self.word_end(k, bare=False) > k
                    and self.listed(k)):
                return self.read_name(i)
            return i
        e = self.word_end(i, bare=True, listed=lx.first_names)
        if e > i:                                           # rule 3: Anja, Anja de Vries
            return self.read_name(e) if t.same_line(e - 1) else e
        e = self.interfix_end(i)
        if e > i:                                           # rule 4: van den Berg, De Boer
            ik = " ".join(t.key[n] for n in range(i, e) if t.key[n])
            end = self.word_end(e, bare=True, listed=lx.interfix_surnames, after_interfix=ik)
            if (end > e and ik not in _PREPOSITIONS
                    and not (ik in _ARTICLES and end == e + 1 and t.key[e] in lx.streets)):
                return end
            return i
        if t.sentence_start(i):             # rule 5 not at a sentence's start: "Grond en …"
            return i
        return self.word_end(i, bare=True, listed=lx.surnames)   # rule 5: Jansen

    def find(self) -> list[tuple[int, int]]:
        t, lx = self.t, self.lx
        out: list[tuple[int, int]] = []
        i = 0
        while i < len(t):
            if not t.word[i]:
                i += 1
                continue
            j = self.honorific_end(i)
            while i < j < len(t) and t.same_line(j - 1) and self.honorific_end(j) > j:
                j = self.honorific_end(j)           # Mr. Dr. ...
            if j > i or t.key[i] in lx.relatives:
                j = max(j, i + 1)
                e = self.read_name(j, relative=t.key[i] in lx.relatives) \
                    if j < len(t) and t.same_line(j - 1) else j
                if e > j:
                    out.append((t.start[j], t.end[e - 1]))
                i = e
                continue
            if t.key[i] in lx.roles:                # rule 1 after a role: listed names only
                i += 1
                continue
            e = self.bare(i)
            if e > i:
                out.append((t.start[i], t.end[e - 1]))
            i = max(e, i + 1)
        return out


# --- streets (protocol.md §8.5.8) ---------------------------------------------------------------

def _has_suffix(k: str) -> bool:
    """A single word that ends in a street suffix after at least two other letters."""
    return (k.endswith(STREET_SUFFIXES) and " " not in k
            and any(k.endswith(s) and len(k) >= len(s) + 2 for s in STREET_SUFFIXES))


def _house_number_after(t: _Tokens, i: int) -> tuple[int, int] | None:
    """The house number after token i on the same line: ``12``, ``nummer 12``, ``, nr. 12a``;
    (its token, the end offset of the number and its addition), or None."""
    j = i + 1
    if t.is_punct(j, ",") and j + 1 < len(t) and t.key[j + 1] in _NUMBER_WORDS:
        j += 1
    if j < len(t) and t.key[j] in _NUMBER_WORDS and t.same_line(j - 1):
        j += 1 + t.dot_after(j)
    if j >= len(t) or not t.key[j][:1].isdigit() or not t.same_line(j - 1) or t.glued(j - 1):
        return None
    m = _HOUSE_NUMBER_AT.match(t.text, t.start[j])
    return (j, m.end()) if m else None


class _Streets:
    def __init__(self, t: _Tokens, lx: Lexicon) -> None:
        self.t, self.lx = t, lx

    def usable(self, i: int) -> bool:
        return not self.t.block[i] & (_INSTITUTION | _ALLOWED)

    def named_start(self, e: int) -> int:
        """Start token of the person or title that a suffixed street word at e is named
        after: listed first names, title words and initials ("Lieven", "Burg.", "J.C."),
        optionally followed by an interfix ("Lieven de Keyplein", "Jan van Goyenstraat");
        e if there is none."""
        t, lx = self.t, self.lx
        i = e - 1
        for k in (3, 2, 1):                     # the interfix right before the street word
            if e - k >= 0 and _phrase_end(t, e - k, lx.interfixes) == e:
                i = e - k - 1
                break
        start = e
        while i >= 0 and e - i <= MAX_PHRASE_WORDS and t.same_line(i):
            h = i - 1 if t.is_punct(i, ".") else i
            if h >= 0 and _phrase_end(t, h, lx.honorifics) > h:
                break                           # "mevrouw Kerkstraat 12": not the street's
            if t.is_punct(i, ".") and i > 0 and t.glued(i - 1) and (
                    t.text[t.start[i - 1]:t.end[i - 1]] in lx.initials
                    or t.key[i - 1] in lx.street_titles):
                start, i = i - 1, i - 2         # "J." or "Burg."
                continue
            if not (t.cap[i] and not t.block[i] & (_INSTITUTION | _ALLOWED) and (
                    t.key[i] in lx.first_names or t.key[i] in lx.titles)):
                break
            start, i = i, i - 1
        return start

    def listed_start(self, e: int) -> int | None:
        """Start token of the longest street of lst_street that ends at word token e and
        starts with a capital, or None.  A title abbreviated with a full stop is also read as
        the words Deduce gives for it ("Burg." as "Burgemeester")."""
        t, lx = self.t, self.lx
        best: int | None = None
        variants = [""]
        words, i = 0, e
        while i >= 0 and words < MAX_PHRASE_WORDS:
            if not t.key[i]:
                if i < e and t.joins(i):
                    i -= 1
                    continue
                break
            if i < e and not t.same_line(i):
                break
            k = t.key[i]
            alts = [k, *lx.street_titles.get(k, ())] if i < e and t.dot_after(i) else [k]
            variants = [f"{a} {v}" if v else a for a in alts for v in variants][:16]
            words += k.count(" ") + 1
            if not self.usable(i):
                break
            if t.cap[i] and any(v in lx.streets for v in variants):
                best = i
            i -= 1
        return best

    def find(self) -> list[tuple[int, int]]:
        t, lx = self.t, self.lx
        out: list[tuple[int, int]] = []
        e = 0
        while e < len(t):
            k = t.key[e]
            if not t.word[e]:
                e += 1
                continue
            suffix = _has_suffix(k) and k not in lx.not_streets and self.usable(e)
            number = _house_number_after(t, e)
            start = self.listed_start(e) if suffix or number else None
            if start == e and not suffix and t.block[e] & (_COMMON | _NEVER) \
                    and t.sentence_start(e):
                start = None        # one listed word that is a common word, capitalised by rule
            if suffix and (t.cap[e] or number):
                start = min(e if start is None else start, self.named_start(e))
            if start is None or (number is None and not (suffix and t.cap[e])):
                e += 1
                continue
            if number is None:
                out.append((t.start[start], t.end[e]))
                e += 1
                continue
            end = number[1]
            m = _POSTCODE_AFTER.match(t.text, end)
            if m:
                end = m.end()
            out.append((t.start[start], end))
            while e < len(t) and t.start[e] < end:
                e += 1
        return out


def find(text: str, allow: tuple[str, ...] = (), places: tuple[str, ...] = ()
         ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(name spans, street-address spans) in ``text``, with ``allow`` never a name or a street
    and ``places`` read as places (protocol.md §8.6); builds the lexicon on first use."""
    lx = lexicon()
    t = _tokenise(text)
    _mark_blocks(t, lx, phrases_of(allow), phrases_of(places))
    return _Names(t, lx).find(), _Streets(t, lx).find()


def may_hold_identity(text: str) -> bool:
    """Whether ``text`` has a letter, without which it holds no name and no street."""
    return any(c.isalpha() for c in text)
