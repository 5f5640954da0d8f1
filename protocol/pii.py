"""The PII guard for the anonymous layer (docs/protocol.md §8).

A case's anonymous layer is readable by volunteers and other informal helpers, so
identity (name, address, contact, BSN, date of birth) may only travel in sealed
identity fields (design §3).  This module finds *identifiers* in free text —
BSNs, phone numbers, e-mail addresses, postcode with house number, IBANs and full
calendar dates — and names of people and street addresses
(:mod:`schakel.protocol.pii_names`, over the word lists of :mod:`schakel.protocol.pii_lexicon`), and says
where, never what: a :class:`Finding` holds a kind and character offsets, not the matched
text, so findings and the errors built from them can be logged.  Pure functions only: no
clock, no network; the word lists are read once, from installed package data, the first
time a text with a letter in it is scanned.
"""

from __future__ import annotations

import datetime
import enum
import json
import re
from bisect import bisect_right, insort
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from schakel.protocol import pii_names
from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.pii_names import BLANK as _BLANK
from schakel.protocol.pii_names import HOUSE_NUMBER as _HOUSE_NO
from schakel.protocol.pii_names import NUMBER_END as _NUM_END
from schakel.protocol.pii_names import POSTCODE as _POSTCODE

#: Deepest nesting :func:`scan_value` walks (also stops cyclic structures).
MAX_DEPTH = 64
#: Findings listed in a :class:`PolicyViolation` message / its ``details``.
MAX_MESSAGE_FINDINGS = 5
MAX_DETAIL_FINDINGS = 100
#: Years a full date must fall in to count as a possible date of birth (protocol.md §8.5.6).
BIRTH_YEAR_MIN, BIRTH_YEAR_MAX = 1900, 2029


class Kind(enum.StrEnum):
    """What kind of identifier a finding is."""

    BSN = "bsn"
    PHONE = "phone"
    EMAIL = "email"
    POSTCODE_HOUSE_NUMBER = "postcode_house_number"
    IBAN = "iban"
    BIRTH_DATE = "birth_date"
    PERSON_NAME = "person_name"
    STREET_ADDRESS = "street_address"


_LABELS = {
    Kind.BSN: "BSN", Kind.PHONE: "phone number", Kind.EMAIL: "e-mail address",
    Kind.POSTCODE_HOUSE_NUMBER: "postcode with house number", Kind.IBAN: "IBAN",
    Kind.BIRTH_DATE: "full date (possible date of birth)",
    Kind.PERSON_NAME: "name of a person", Kind.STREET_ADDRESS: "street address",
}
#: protocol.md §8.2: what a writer is offered instead of each kind, in Dutch like the notes.
#: No placeholder holds a digit, an ``@`` or a capitalised word: a rewrite holds nothing to find.
PLACEHOLDERS = {
    Kind.BSN: "[BSN]", Kind.PHONE: "[telefoon]", Kind.EMAIL: "[e-mail]",
    Kind.POSTCODE_HOUSE_NUMBER: "[postcode]", Kind.IBAN: "[IBAN]", Kind.BIRTH_DATE: "[datum]",
    Kind.PERSON_NAME: "[naam]", Kind.STREET_ADDRESS: "[straat]",
}
#: protocol.md §8.2: the kinds a network's allow-list can excuse.  The others are
#: identifiers with a checkable shape, which no word of a network turns into prose.
ALLOWABLE_KINDS = frozenset({Kind.PERSON_NAME, Kind.STREET_ADDRESS})
# protocol.md §8.4: of two overlapping candidates the longer wins; on equal length, this order.
_PRIORITY = {k: i for i, k in enumerate((Kind.IBAN, Kind.EMAIL, Kind.PHONE, Kind.BSN,
                                          Kind.POSTCODE_HOUSE_NUMBER, Kind.BIRTH_DATE,
                                          Kind.STREET_ADDRESS, Kind.PERSON_NAME))}


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One identifier in a text: its kind and the half-open span ``text[start:end]``.

    Never holds the matched value, so ``str``/``repr`` are safe to log.
    """

    kind: Kind
    start: int
    end: int

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", Kind(self.kind))
        except ValueError:
            raise MalformedError(f"unknown PII kind {self.kind!r}") from None
        for name in ("start", "end"):
            if type(getattr(self, name)) is not int:
                raise MalformedError(f"Finding.{name} must be an int")
        if not 0 <= self.start < self.end:
            raise MalformedError("Finding needs 0 <= start < end")

    @property
    def label(self) -> str:
        """The kind in words, e.g. ``"phone number"``."""
        return _LABELS[self.kind]

    @property
    def placeholder(self) -> str:
        """What the writer may write instead, e.g. ``"[telefoon]"`` (protocol.md §8.2)."""
        return PLACEHOLDERS[self.kind]

    def describe(self) -> str:
        """E.g. ``"phone number at characters 34–45"`` (``end`` exclusive)."""
        return f"{self.label} at characters {self.start}\u2013{self.end}"

    __str__ = describe


# --- validity checks ---------------------------------------------------------------

def passes_elfproef(digits: str) -> bool:
    """BSN 11-proef on 9 ASCII digits (or 8, a dropped leading zero); all zeros fail."""
    if len(digits) == 8:
        digits = "0" + digits
    if len(digits) != 9 or not (digits.isascii() and digits.isdigit()) or digits == "0" * 9:
        return False
    return sum(w * int(c) for w, c in zip((9, 8, 7, 6, 5, 4, 3, 2, -1), digits)) % 11 == 0


# ISO 13616 registry: country code -> IBAN length (SWIFT IBAN registry).
_IBAN_LENGTHS = {cc: int(n) for cc, n in (item.split(":") for item in (
    "AD:24 AE:23 AL:28 AT:20 AZ:28 BA:20 BE:16 BG:22 BH:22 BI:27 BR:29 BY:28 CH:21 CR:22 "
    "CY:28 CZ:24 DE:22 DJ:27 DK:18 DO:28 EE:20 EG:29 ES:24 FI:18 FK:18 FO:18 FR:27 GB:22 "
    "GE:22 GI:23 GL:18 GR:27 GT:28 HN:28 HR:21 HU:28 IE:22 IL:23 IQ:23 IS:26 IT:27 JO:30 "
    "KW:30 KZ:20 LB:28 LC:32 LI:21 LT:20 LU:20 LV:21 LY:25 MC:27 MD:24 ME:22 MK:19 MN:20 "
    "MR:27 MT:31 MU:30 NI:28 NL:18 NO:15 OM:23 PK:24 PL:28 PS:29 PT:25 QA:29 RO:24 RS:22 "
    "RU:33 SA:24 SC:31 SD:18 SE:24 SI:19 SK:24 SM:27 SO:23 ST:25 SV:28 TL:23 TN:24 TR:26 "
    "UA:29 VA:22 VG:24 XK:20 YE:30").split())}


def is_valid_iban(iban: str) -> bool:
    """ISO 13616: known country, its exact length, and mod-97 == 1 (spaces ignored)."""
    s = iban.replace(" ", "").upper()
    if not (s.isascii() and s.isalnum()) or _IBAN_LENGTHS.get(s[:2]) != len(s) \
            or not s[2:4].isdigit():
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


# --- detectors: each yields (start, end) of valid candidates ---------------------------

_SP = "[ \u00a0\u202f]"                                 # space, no-break spaces
_SEP = rf"(?:{_SP}?[-\u2013./]{_SP}?|{_SP})?"           # phone digit separator
_DG = rf"(?:{_SEP}[0-9])"

_BSN_RE = re.compile(
    r"(?<!\w)(?<![0-9][-.,/])(?:(?P<plain>[0-9]{9}|[0-9]{8})"
    r"|[0-9]{3}(?P<s3>[-. \u00a0])[0-9]{3}(?P=s3)[0-9]{3}"
    r"|[0-9]{4}(?P<s4>[. \u00a0])[0-9]{2}(?P=s4)[0-9]{3})(?!\w)" + _NUM_END)

_PHONE_RE = re.compile(
    r"(?<![\w+])(?<![0-9][-./])(?:"
    rf"(?:\+|00)31{_SEP}(?:\(0\){_SEP}|0{_SEP})?[1-9]{_DG}{{8}}"       # +31 / 0031
    rf"|0{_SEP}[1-9]{_DG}{{8}}"                                        # national, 10 digits
    + "".join(rf"|\(0[1-9][0-9]{{{k - 1}}}\){_SP}?[0-9]{_DG}{{{8 - k}}}" for k in (1, 2, 3))
    + rf"|\+[1-9](?:(?:{_SP}?-?{_SP}?)?[0-9]){{8,13}}"                # other countries
    r")" + _NUM_END)

_EMAIL_LOCAL_RE = re.compile(r"[\w!#$%&*+=?^~-]+(?:\.[\w!#$%&*+=?^~-]+)*\Z")
_EMAIL_DOMAIN_RE = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])")

_POSTCODE_HN_RE = re.compile(
    rf"(?<!\w)(?<![0-9][-.,:/])(?:{_POSTCODE}{_BLANK}(?:[,;:/-]{_BLANK})?"       # 3811 AB 12
    rf"(?i:(?:huisnummer|huisnr|nummer|nr|no)\.?{_BLANK})?{_HOUSE_NO}(?!\w){_NUM_END}"
    rf"|{_HOUSE_NO}(?=[\s,;]){_BLANK}(?:[,;]{_BLANK})?(?:\r?\n{_BLANK})?{_POSTCODE})")

_MONTHS = {
    "januari": 1, "january": 1, "jan": 1, "februari": 2, "february": 2, "feb": 2,
    "maart": 3, "march": 3, "mrt": 3, "mar": 3, "april": 4, "apr": 4, "mei": 5, "may": 5,
    "juni": 6, "june": 6, "jun": 6, "juli": 7, "july": 7, "jul": 7, "augustus": 8,
    "august": 8, "aug": 8, "september": 9, "sept": 9, "sep": 9, "oktober": 10,
    "october": 10, "okt": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}
_MON = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_RE = re.compile(
    r"(?<![0-9])(?<![0-9][-/.])(?:"
    r"(?P<d1>[0-9]{1,2})(?P<s1>[-/.])(?P<m1>[0-9]{1,2})(?P=s1)(?P<y1>[0-9]{4})"
    r"|(?P<y2>[0-9]{4})(?P<s2>[-/.])(?P<m2>[0-9]{1,2})(?P=s2)(?P<d2>[0-9]{1,2})"
    rf"|(?<!\w)(?P<d3>[0-9]{{1,2}})(?:ste|de|st|nd|rd|th|e)?[ \u00a0-]{{1,2}}(?:of )?"
    rf"(?i:(?P<m3>{_MON}))(?![^\W\d_])\.?[ \u00a0,-]{{1,3}}(?P<y3>[0-9]{{4}})"
    rf"|(?<!\w)(?i:(?P<m4>{_MON}))(?![^\W\d_])\.?[ \u00a0]{{1,2}}(?P<d4>[0-9]{{1,2}})"
    r"(?:st|nd|rd|th)?,?[ \u00a0]{1,2}(?P<y4>[0-9]{4})"
    r")" + _NUM_END)


def _bsn(text: str) -> Iterator[tuple[int, int]]:
    for m in _BSN_RE.finditer(text):
        if passes_elfproef(re.sub(r"[^0-9]", "", m.group())):
            yield m.span()


def _phone(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE_RE.finditer(text):
        yield m.span()


def _email(text: str) -> Iterator[tuple[int, int]]:
    at = text.find("@")
    while at != -1:   # anchor on "@" so the scan stays linear in len(text)
        lo = max(0, at - 64)
        local = _EMAIL_LOCAL_RE.search(text, lo, at)
        domain = _EMAIL_DOMAIN_RE.match(text, at + 1)
        if local and domain:
            yield local.start(), domain.end()
        at = text.find("@", at + 1)


def _postcode_house_number(text: str) -> Iterator[tuple[int, int]]:
    for m in _POSTCODE_HN_RE.finditer(text):
        yield m.span()


def _is_date(year: int, month: int, day: int) -> bool:
    """A real calendar date with a year in the birth-year range (protocol.md §8.5.6)."""
    if not BIRTH_YEAR_MIN <= year <= BIRTH_YEAR_MAX:
        return False
    try:
        datetime.date(year, month, day)   # calendar validity only, never "today"
    except ValueError:
        return False
    return True


def _birth_date(text: str) -> Iterator[tuple[int, int]]:
    for m in _DATE_RE.finditer(text):
        g = m.groupdict()
        if g["y1"]:      # d-m-yyyy, or m/d/yyyy when that is the only valid reading
            y, a, b = int(g["y1"]), int(g["d1"]), int(g["m1"])
            ok = _is_date(y, b, a) or _is_date(y, a, b)
        elif g["y2"]:    # yyyy-mm-dd
            ok = _is_date(int(g["y2"]), int(g["m2"]), int(g["d2"]))
        elif g["y3"]:    # 12 maart 1948
            ok = _is_date(int(g["y3"]), _MONTHS[g["m3"].lower()], int(g["d3"]))
        else:            # March 12, 1948
            ok = _is_date(int(g["y4"]), _MONTHS[g["m4"].lower()], int(g["d4"]))
        if ok:
            yield m.span()


_IBAN_START_RE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}")


def _iban_shapes(text: str) -> Iterator[tuple[int, int, bool]]:
    """(start, end, valid) of every token shaped like an IBAN of a registry country:
    the country's exact length, optionally spaced in groups of four."""
    n = len(text)
    for m in _IBAN_START_RE.finditer(text):
        length = _IBAN_LENGTHS.get(m.group()[:2].upper())
        if length is None:
            continue
        chars: list[str] = []
        i = m.start()
        while len(chars) < length and i < n:
            c = text[i]
            if c == " " and chars and len(chars) % 4 == 0 and text[i - 1] != " ":
                i += 1
                continue
            if not (c.isascii() and c.isalnum()):
                break
            chars.append(c)
            i += 1
        if len(chars) == length and (i == n or not (text[i].isalnum() or text[i] == "_")):
            yield m.start(), i, is_valid_iban("".join(chars))


_DETECTORS = ((Kind.BSN, _bsn), (Kind.PHONE, _phone), (Kind.EMAIL, _email),
              (Kind.POSTCODE_HOUSE_NUMBER, _postcode_house_number),
              (Kind.BIRTH_DATE, _birth_date))


# --- scanning ----------------------------------------------------------------------

def _resolve(cands: list[tuple[int, int, Kind]]) -> list[Finding]:
    """protocol.md §8.4: of overlapping candidates keep the longest (ties: _PRIORITY)."""
    cands.sort()
    out: list[Finding] = []
    i = 0
    while i < len(cands):        # split into clusters of transitively overlapping spans
        j, reach = i + 1, cands[i][1]
        while j < len(cands) and cands[j][0] < reach:
            reach = max(reach, cands[j][1])
            j += 1
        kept: list[tuple[int, int, Kind]] = []
        for s, e, k in sorted(cands[i:j], key=lambda c: (c[0] - c[1], _PRIORITY[c[2]], c[0])):
            pos = bisect_right(kept, (s, e, k))
            if (pos and kept[pos - 1][1] > s) or (pos < len(kept) and kept[pos][0] < e):
                continue
            insort(kept, (s, e, k))
        out.extend(Finding(kind=k, start=s, end=e) for s, e, k in kept)
        i = j
    return out


def _allow_list(allow: Iterable[str]) -> tuple[str, ...]:
    """protocol.md §8.5.7: the allow-list is a collection of words and phrases (strings)."""
    if isinstance(allow, (str, bytes)) or not isinstance(allow, Iterable):
        raise MalformedError("allow must be a collection of strings, not "
                             f"{type(allow).__name__}")
    items = tuple(allow)
    if not all(isinstance(a, str) for a in items):
        raise MalformedError("allow must hold strings only")
    return items


def scan(text: str, *, allow: Iterable[str] = ()) -> list[Finding]:
    """All identifiers in ``text``, sorted by start, non-overlapping; ``[]`` if clean.

    ``allow``: words and phrases (a network's own towns, districts, partners) that are never
    reported as a name or a street address (case-insensitive, whole words)."""
    if not isinstance(text, str):
        raise MalformedError(f"pii.scan expects a str, got {type(text).__name__}")
    return _scan(text, _allow_list(allow))


def _scan(text: str, allow: tuple[str, ...], places: tuple[str, ...] = ()) -> list[Finding]:
    cands: list[tuple[int, int, Kind]] = []
    shadows: list[tuple[int, int]] = []
    for s, e, valid in _iban_shapes(text):
        if valid:
            cands.append((s, e, Kind.IBAN))
        else:
            shadows.append((s, e))
    for kind, detect in _DETECTORS:
        cands.extend((s, e, kind) for s, e in detect(text))
    if shadows:   # protocol.md §8.5.5: digits inside an invalid IBAN-shaped token are not judged
        shadows.sort()
        starts = [s for s, _ in shadows]
        reach, acc = [], 0
        for _, e in shadows:
            acc = max(acc, e)
            reach.append(acc)
        cands = [c for c in cands
                 if c[2] is Kind.IBAN or (p := bisect_right(starts, c[0])) == 0
                 or reach[p - 1] < c[1]]
    if pii_names.may_hold_identity(text):   # protocol.md §8.5.7, §8.5.8
        names, streets = pii_names.find(text, allow, places)
        cands.extend((s, e, Kind.PERSON_NAME) for s, e in names)
        cands.extend((s, e, Kind.STREET_ADDRESS) for s, e in streets)
    return _resolve(cands)


_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _member_path(path: str, key: str) -> str:
    if _IDENT_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _neighbourhoods(value: Any, depth: int = 0) -> Iterator[str]:
    """protocol.md §8.6: the string values of the members named ``neighbourhood``."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "neighbourhood" and isinstance(item, str):
                yield item
            else:
                yield from _neighbourhoods(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _neighbourhoods(item, depth + 1)


def _walk(value: Any, path: str, depth: int, out: list[tuple[str, Finding]],
          allow: tuple[str, ...], places: tuple[str, ...]) -> None:
    if depth > MAX_DEPTH:
        raise MalformedError(f"value nested deeper than {MAX_DEPTH} levels",
                             details={"path": path})
    if isinstance(value, str):
        out.extend((path, f) for f in _scan(value, allow, places))
    elif value is None or isinstance(value, (bool, int, float)):
        return
    elif isinstance(value, dict):
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise MalformedError(f"non-string member name in {path or '(top level)'}",
                                     details={"path": path})
            in_key = _scan(key, allow, places)
            if in_key:   # the name itself is identifying: never put it in a path
                out.extend((f"{path}[key {i}]", f) for f in in_key)
                _walk(item, f"{path}[value of key {i}]", depth + 1, out, allow, places)
            else:
                _walk(item, _member_path(path, key), depth + 1, out, allow, places)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", depth + 1, out, allow, places)
    else:
        raise MalformedError(f"not a JSON-like value at {path or '(top level)'}: "
                             f"{type(value).__name__}", details={"path": path})


def scan_value(value: Any, *, path: str = "",
               allow: Iterable[str] = ()) -> list[tuple[str, Finding]]:
    """Walk a JSON-like value (dicts, lists, strings; numbers, bools, None ignored)
    and return ``(json_path, finding)`` for every identifier in its strings and member
    names, in document order.  ``path`` prefixes every returned path; ``allow`` is
    :func:`scan`'s."""
    if not isinstance(path, str):
        raise MalformedError("path must be a str")
    out: list[tuple[str, Finding]] = []
    _walk(value, path, 0, out, _allow_list(allow), tuple(_neighbourhoods(value)))
    return out


def check_anonymous(value: Any, *, path: str = "", allow: Iterable[str] = ()) -> None:
    """Return ``None`` if ``value`` may travel in the anonymous layer, else raise
    :func:`violation` of what :func:`scan_value` found: each finding's path, kind,
    offsets and placeholder — never the matched text.  ``allow`` is :func:`scan`'s."""
    found = scan_value(value, path=path, allow=allow)
    if found:
        raise violation(found)


def violation(found: Sequence[tuple[str, Finding]]) -> PolicyViolation:
    """The refusal of protocol.md §8.6 for ``(path, finding)`` pairs (``found`` not empty).

    The message names the first findings and their placeholders; ``details`` is
    ``{"count", "findings": [{"path", "kind", "start", "end", "placeholder"}, ...]}``.
    Neither holds matched text, so both may be logged."""
    if not found:
        raise ValueError("a refusal needs at least one finding")
    shown = "; ".join(f"{f.describe()} in {p or '(top level)'} (write {f.placeholder})"
                      for p, f in found[:MAX_MESSAGE_FINDINGS])
    more = len(found) - MAX_MESSAGE_FINDINGS
    return PolicyViolation(
        f"identifying data in the anonymous layer: {shown}"
        + (f"; and {more} more" if more > 0 else "")
        + " — write the placeholder instead; identity belongs in a sealed identity field",
        details={"count": len(found), "findings": [
            {"path": p, "kind": f.kind.value, "start": f.start, "end": f.end,
             "placeholder": f.placeholder}
            for p, f in found[:MAX_DETAIL_FINDINGS]]})


def redact(text: str, findings: Iterable[Finding]) -> str:
    """``text`` with the span of each finding replaced by its placeholder: the rewrite a
    writer is offered (protocol.md §8.2), e.g. ``"Bel [telefoon]."``.  ``findings`` are
    those :func:`scan` gave for ``text`` (in any order); a span outside ``text`` or two
    overlapping spans are :class:`MalformedError`."""
    if not isinstance(text, str):
        raise MalformedError(f"pii.redact expects a str, got {type(text).__name__}")
    spans = sorted(findings, key=lambda f: f.start)
    if any(not isinstance(f, Finding) for f in spans):
        raise MalformedError("pii.redact expects findings")
    parts, done = [], 0
    for f in spans:
        if f.start < done or f.end > len(text):
            raise MalformedError("findings must lie in the text and not overlap",
                                 details={"start": f.start, "end": f.end})
        parts += [text[done:f.start], f.placeholder]
        done = f.end
    return "".join([*parts, text[done:]])


__all__ = ["Kind", "Finding", "PLACEHOLDERS", "ALLOWABLE_KINDS", "scan", "scan_value",
           "check_anonymous", "violation", "redact", "passes_elfproef", "is_valid_iban",
           "MAX_DEPTH", "BIRTH_YEAR_MIN", "BIRTH_YEAR_MAX"]
