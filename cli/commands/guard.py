"""The PII guard on the command line: refuse early, and show the writer where and what.

Every command that sends free text (an intake, a note, an analysis, an action, a status
reason, a share, removal, grant, consent or referral reason, a consent purpose, a review
note) names that text to :func:`schakel.cli.commands.common.with_partner` (``guard=``):

* **Before the passphrase** the guard runs on this computer without the network's
  allow-list, which lives in the encrypted home, and refuses only what no allow-list can
  excuse: every kind but names and street addresses (``pii.ALLOWABLE_KINDS``,
  docs/protocol.md §8.2).  So it never refuses a text the library would send.
* **After the passphrase** the library checks again with the allow-list of the network
  policy it verified (``Partner.pii_allow``), names and street addresses included; that
  check decides (ADR 0017).
* Either refusal is shown with the text (:func:`explain`): per finding the field, the
  kind in words and the text with the span underlined, then the whole field rewritten
  with placeholders.  That is the writer's own text on the writer's own terminal
  (standard error, human output only); ``--json`` output carries the findings as data
  (path, kind, offsets, placeholder) and never the text, and nothing of it is logged or
  sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from schakel.cli.i18n import N_, _
from schakel.protocol import pii
from schakel.protocol.errors import MalformedError, PolicyViolation

#: What every command that sends free text says about the guard under its --help
#: (docs/protocol.md §8.5 and §8.7 are the exact rules).
EPILOG = N_("""\
The PII guard runs on this computer before anything is sent and refuses (exit 1) a text
that holds: a BSN (one that passes the 11-proef), a phone number, an e-mail address, a
postcode with house number, an IBAN (with valid check digits), a full date from 1900 to
2029 (a possible date of birth), the name of a person, or a street address.

Names and streets are found with Deduce's lists of Dutch first names, surnames and
street names and a few rules: a capitalised name after an honorific (meneer, mevrouw,
dhr., mw., de heer) or a kinship word (zijn dochter Anja, de buurman Kees); a listed
first name or surname on its own, also with initials or a prefix (Anja, Jansen, J.P.
Smits, van den Berg, De Boer); a street name with a house number (with or without
"nummer"); and a capitalised word with a street suffix on its own (aan de
Bilderdijkstraat). An ordinary word that is also a listed name is refused where it
stands capitalised (Roos belde). A name in none of the lists that follows no honorific
or kinship word may pass; so may a name written in lower case or in capitals only,
initials alone (meneer J.), identifiers written out in words or split over two fields,
licence plates, and passport, patient or insurance numbers.

Not refused: towns and districts (Amersfoort, Soesterkwartier), organisations and
services (GGD, Veilig Thuis, Leger des Heils), roles and kinship words without a name
(buurman, zijn dochter), weekdays, months and ages, and the words of the network's
allow-list (`schakel network show`). Names and street addresses are judged with that
list once the passphrase is given; the other kinds before it is asked.

A refusal shows each finding's field, kind and place, the text with the span
underlined, and the text rewritten with placeholders: [naam], [straat], [telefoon],
[e-mail], [BSN], [postcode], [IBAN], [datum]. With --json the findings are data (path,
kind, start, end, placeholder) and the text is never printed.""")
#: Each kind of finding in words (the protocol's labels are English, for developers).
KINDS: dict[str, str] = {
    pii.Kind.BSN: N_("BSN"),
    pii.Kind.PHONE: N_("phone number"),
    pii.Kind.EMAIL: N_("e-mail address"),
    pii.Kind.POSTCODE_HOUSE_NUMBER: N_("postcode with house number"),
    pii.Kind.IBAN: N_("IBAN"),
    pii.Kind.BIRTH_DATE: N_("full date (possible date of birth)"),
    pii.Kind.PERSON_NAME: N_("name of a person"),
    pii.Kind.STREET_ADDRESS: N_("street address"),
}
#: Characters of context shown on each side of a span.
CONTEXT = 40
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Line breaks and tabs become one space each, so offsets stay the text's own.
_BLANKS = str.maketrans({"\n": " ", "\r": " ", "\t": " ", "\v": " ", "\f": " "})


class TextRefusal(PolicyViolation):
    """A PII refusal of a text this command wrote, with that text at hand for showing
    it back (``texts``: path -> text).  Built and shown only inside the CLI process;
    its message and ``details`` are the library's and hold no text."""

    def __init__(self, error: PolicyViolation, texts: Mapping[str, str]) -> None:
        super().__init__(error.message, details=error.details)
        self.texts = dict(texts)

    def __repr__(self) -> str:      # the texts stay out of every rendering but explain()
        return f"TextRefusal({self.message!r})"


def texts_of(value: Mapping[str, Any]) -> dict[str, str]:
    """The strings of a value the CLI sends, by the path the guard gives them
    (docs/protocol.md §8.6): a member by its name, or ``["name"]`` when the name is no
    identifier; a list item as ``name[i]``.  Deeper strings are left out (their findings
    are then shown by offsets only)."""
    out: dict[str, str] = {}
    for key, item in value.items():
        name = key if _IDENT.fullmatch(key) else f"[{json.dumps(key, ensure_ascii=False)}]"
        if isinstance(item, str):
            out[name] = item
        elif isinstance(item, (list, tuple)):
            out.update((f"{name}[{i}]", v) for i, v in enumerate(item) if isinstance(v, str))
    return out


def refuse_early(value: Mapping[str, Any]) -> None:
    """The check before the passphrase: refuse ``value`` if it holds an identifier that
    no network allow-list can excuse (a :class:`TextRefusal`)."""
    found = [(path, f) for path, f in pii.scan_value(value)
             if f.kind not in pii.ALLOWABLE_KINDS]
    if found:
        raise TextRefusal(pii.violation(found), texts_of(value))


@contextmanager
def showing(value: Mapping[str, Any]) -> Iterator[None]:
    """Turn the library's PII refusal of ``value`` into a :class:`TextRefusal`."""
    try:
        yield
    except PolicyViolation as error:
        if isinstance(error, TextRefusal) or error.details.get("findings") is None:
            raise
        raise TextRefusal(error, texts_of(value)) from None


def findings_of(error: PolicyViolation) -> list[tuple[str, pii.Finding]]:
    """``details.findings`` back as ``(path, Finding)`` pairs (malformed entries skipped)."""
    out = []
    for item in error.details.get("findings") or []:
        try:
            out.append((str(item["path"]), pii.Finding(kind=item["kind"], start=item["start"],
                                                       end=item["end"])))
        except (KeyError, TypeError, MalformedError):
            continue
    return out


def marked(text: str, finding: pii.Finding) -> tuple[str, str]:
    """The text around ``finding`` on one line, and a line of ``^`` under its span."""
    lo, hi = max(0, finding.start - CONTEXT), min(len(text), finding.end + CONTEXT)
    head = "\u2026" if lo > 0 else ""
    line = head + text[lo:hi].translate(_BLANKS) + ("\u2026" if hi < len(text) else "")
    return line, " " * (len(head) + finding.start - lo) + "^" * (finding.end - finding.start)


def explain(error: PolicyViolation, *, with_text: bool) -> list[str]:
    """The lines that show a PII refusal: per finding its field, kind and span (with the
    text underlined when ``with_text`` and the text is known), then each field rewritten
    with placeholders."""
    texts: Mapping[str, str] = getattr(error, "texts", {}) if with_text else {}
    found = findings_of(error)
    lines: list[str] = []
    by_path: dict[str, list[pii.Finding]] = {}
    for path, f in found:
        text = texts.get(path)
        fits = text is not None and f.end <= len(text)
        where = _("{field}: {kind}, characters {start}\u2013{end}").format(
            field=path or _("(top level)"), kind=_(KINDS[f.kind]) if f.kind in KINDS else f.label,
            start=f.start, end=f.end)
        lines.append("  " + where + ("" if fits else " " + _("(write {placeholder})").format(
            placeholder=f.placeholder)))
        if text is not None and fits:
            line, carets = marked(text, f)
            lines += [f"      {line}", f"      {carets}"]
            by_path.setdefault(path, []).append(f)
    count = error.details.get("count")
    if isinstance(count, int) and count > len(found):
        lines.append("  " + _("… and {count} more").format(count=count - len(found)))
    for path, findings in by_path.items():
        lines.append("  " + _("suggested {field}:").format(field=path))
        lines += [f"      {row}" for row in pii.redact(texts[path], findings).splitlines()]
    return lines


def advise(value: Mapping[str, Any], *, with_text: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """What the guard finds in a text it does not refuse (a signal's concern is sealed to
    the coordinator only and may name the person, docs/protocol.md §C.7): the findings
    as data, and the lines that show them (empty when there are none)."""
    found = pii.scan_value(value)
    if not found:
        return [], []
    note = pii.violation(found)
    return note.details["findings"], explain(TextRefusal(note, texts_of(value)),
                                             with_text=with_text)


__all__ = ["EPILOG", "KINDS", "TextRefusal", "advise", "explain", "findings_of", "marked",
           "refuse_early", "showing", "texts_of"]
