"""The access report (``access-report``, :mod:`schakel.client.access`) for the person, in
Dutch (the default) or English: as plain text and as one self-contained, printable HTML
page (docs/protocol.md §15.7; ADR 0033).

Pure: a report in, a string out.  The HTML page has no script, no link to anything
outside it (a Content-Security-Policy that allows only its own inline style), and print
CSS (A4, page breaks between cases).  Every value from the report -- organisation names,
acting users, identity values, purposes, reason codes -- is escaped with
:func:`html.escape` (quotes too) before it is placed: a hostile organisation name cannot
add markup to a letter a person is handed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

#: The words of the report, Dutch first (the report's own words: toestemming, bemoeizorg,
#: casus, schil, regie).
WORDS: dict[str, dict[str, str]] = {
    "title": {"nl": "Inzageverslag", "en": "Subject access report"},
    "intro": {
        "nl": "U vroeg welke gegevens de samenwerkende partners over u verwerken (AVG artikel "
              "15). Dit verslag geldt voor alle netwerken die {org} coördineert, en is "
              "opgesteld door het ene contactpunt van die netwerken.",
        "en": "You asked which data the partners working together hold about you (GDPR "
              "article 15). This report covers every network that {org} coordinates, and was "
              "made by the one contact point of those networks."},
    "how": {
        "nl": "Uw BSN is niet naar een server gestuurd. Alleen versleutelde zoeksleutels "
              "(blinde indexen) zijn gebruikt; elke zoekvraag staat zelf in het auditlog.",
        "en": "Your BSN was not sent to any server. Only encrypted search keys (blind "
              "indexes) were used; every search is itself recorded in the audit log."},
    "produced": {"nl": "Opgesteld", "en": "Produced"},
    "contact": {"nl": "Contactpunt", "en": "Contact point"},
    "subject": {"nl": "Betreft", "en": "Concerning"},
    "bsn": {"nl": "BSN (laatste cijfers)", "en": "BSN (last digits)"},
    "dob": {"nl": "Geboortedatum", "en": "Date of birth"},
    "networks": {"nl": "Doorzochte netwerken", "en": "Networks searched"},
    "network": {"nl": "Netwerk", "en": "Network"},
    "found": {"nl": "casussen gevonden", "en": "cases found"},
    "none_found": {"nl": "In geen van deze netwerken zijn gegevens over u gevonden.",
                   "en": "No data about you was found in any of these networks."},
    "incomplete": {"nl": "Let op: niet alle overeenkomsten konden worden opgehaald.",
                   "en": "Note: not every match could be retrieved."},
    "case": {"nl": "Casus", "en": "Case"},
    "pseudonym": {"nl": "pseudoniem", "en": "pseudonym"},
    "created": {"nl": "Aangemaakt", "en": "Created"},
    "status": {"nl": "Status", "en": "Status"},
    "owner": {"nl": "Eigenaar (verantwoordelijke partner)", "en": "Owner (partner responsible)"},
    "confirmed": {"nl": "Bevestigd: de gegevens van deze casus noemen uw BSN.",
                  "en": "Confirmed: this case's data names your BSN."},
    "unconfirmed": {"nl": "Nog niet bevestigd: een zoeksleutel kwam overeen. Het contactpunt "
                          "bevestigt dit met de eigenaar van de casus voordat u dit verslag "
                          "krijgt.",
                    "en": "Not yet confirmed: a search key matched. The contact point "
                          "confirms this with the case's owner before you are given this "
                          "report."},
    "held": {"nl": "Wat er over u is vastgelegd", "en": "What is held about you"},
    "classes": {"nl": "Identiteitsgegevens (verzegeld)", "en": "Identity data (sealed)"},
    "no_classes": {"nl": "geen", "en": "none"},
    "values_note": {"nl": "Waarden staan er alleen bij als het contactpunt ze zelf mag inzien.",
                    "en": "Values are shown only where the contact point may read them itself."},
    "anonymous": {"nl": "Anonieme gegevens van de casus", "en": "The case's anonymous data"},
    "events": {"nl": "Vastgelegde stappen", "en": "Recorded steps"},
    "recipients": {"nl": "Wie uw identiteitsgegevens ontving", "en": "Who received your identity"},
    "shares": {"nl": "Schilpartners die de anonieme casus kregen",
               "en": "Shell partners given the anonymous case"},
    "reads": {"nl": "Inzage (wie de casus heeft opgehaald)", "en": "Reads (who fetched the case)"},
    "consents": {"nl": "Toestemmingen", "en": "Consents"},
    "refusals": {"nl": "Geweigerde verzoeken", "en": "Refused requests"},
    "lookups": {"nl": "Zoekvragen naar u", "en": "Searches for you"},
    "acts": {"nl": "Overige handelingen", "en": "Other acts"},
    "none": {"nl": "geen", "en": "none"},
    "when": {"nl": "Wanneer", "en": "When"},
    "who": {"nl": "Wie", "en": "Who"},
    "what": {"nl": "Wat", "en": "What"},
    "basis": {"nl": "Grondslag", "en": "Basis"},
    "purpose": {"nl": "Doel", "en": "Purpose"},
    "entry": {"nl": "Logregel", "en": "Log entry"},
    "state": {"nl": "Stand", "en": "State"},
    "valid_until": {"nl": "geldig tot", "en": "valid until"},
    "revoked_at": {"nl": "ingetrokken op", "en": "revoked on"},
    "emergency": {"nl": "noodprocedure (bemoeizorg)", "en": "emergency procedure (bemoeizorg)"},
    "to": {"nl": "aan", "en": "to"},
    "rights": {
        "nl": "U kunt vragen om verbetering of verwijdering van uw gegevens, en bezwaar maken, "
              "bij hetzelfde contactpunt. U kunt ook een klacht indienen bij de Autoriteit "
              "Persoonsgegevens.",
        "en": "You may ask the same contact point to correct or erase your data, and object "
              "to its use. You may also complain to the Dutch Data Protection Authority "
              "(Autoriteit Persoonsgegevens)."},
}

#: Codes of the report, in words.
CODES: dict[str, dict[str, str]] = {
    "consent": {"nl": "toestemming", "en": "consent"},
    "bemoeizorg": {"nl": "bemoeizorg", "en": "bemoeizorg (outreach care without consent)"},
    "policy": {"nl": "beleid van het netwerk", "en": "the network's policy"},
    "none": {"nl": "geen", "en": "none"},
    "release": {"nl": "verstrekking", "en": "release"},
    "bemoeizorg-release": {"nl": "verstrekking onder bemoeizorg", "en": "release under bemoeizorg"},
    "read": {"nl": "inzage", "en": "read"},
    "share": {"nl": "gedeeld met de schil", "en": "shared with the shell"},
    "deny": {"nl": "geweigerd", "en": "refused"},
    "lookup": {"nl": "zoekvraag", "en": "search"},
    "grant": {"nl": "toegang verleend", "en": "access granted"},
    "consent-revoke": {"nl": "toestemming ingetrokken", "en": "consent revoked"},
    "bemoeizorg-invoke": {"nl": "bemoeizorg ingeroepen", "en": "bemoeizorg invoked"},
    "bemoeizorg-cosign": {"nl": "bemoeizorg medeondertekend", "en": "bemoeizorg co-signed"},
    "bemoeizorg-alert": {"nl": "bemoeizorg-signaal", "en": "bemoeizorg alert"},
    "review": {"nl": "beoordeeld door de auditor", "en": "reviewed by the auditor"},
    "referral-out": {"nl": "doorverwezen naar een ander netwerk", "en": "referred to another network"},
    "referral-in": {"nl": "doorverwezen vanuit een ander netwerk", "en": "referred from another network"},
    "shred-identity": {"nl": "identiteit vernietigd (bewaartermijn)", "en": "identity destroyed (retention)"},
    "shred-anonymous": {"nl": "casus vernietigd (bewaartermijn)", "en": "case destroyed (retention)"},
    "purge-instruction": {"nl": "opdracht tot wissen", "en": "instruction to erase"},
    "purge-ack": {"nl": "gewist door de ontvanger", "en": "erased by the recipient"},
    "in-force": {"nl": "geldig", "en": "in force"},
    "expired": {"nl": "verlopen", "en": "expired"},
    "not-yet-valid": {"nl": "nog niet geldig", "en": "not yet valid"},
    "revoked": {"nl": "ingetrokken", "en": "revoked"},
    "recorded": {"nl": "vastgelegd, niet ingetrokken", "en": "recorded, not revoked"},
    "open": {"nl": "lopend", "en": "open"},
    "closed": {"nl": "gesloten", "en": "closed"},
    "oggz": {"nl": "OGGZ-netwerk", "en": "public mental-health (OGGZ) network"},
    "neighbourhood": {"nl": "buurtnetwerk", "en": "neighbourhood network"},
    "name": {"nl": "naam", "en": "name"},
    "address": {"nl": "adres", "en": "address"},
    "contact": {"nl": "contactgegevens", "en": "contact details"},
    "official": {"nl": "BSN en geboortedatum", "en": "BSN and date of birth"},
    "care": {"nl": "huisarts, mantelzorgers en contactpersonen",
             "en": "GP, carers and contact persons"},
    "analysis": {"nl": "analyses", "en": "analyses"},
    "actions": {"nl": "acties", "en": "actions"},
    "feedback": {"nl": "terugkoppelingen", "en": "feedback"},
    "notes": {"nl": "notities", "en": "notes"},
    "statuses": {"nl": "statuswijzigingen", "en": "status changes"},
    "age_band": {"nl": "leeftijdsgroep", "en": "age band"},
    "neighbourhood_field": {"nl": "wijk", "en": "neighbourhood"},
    "domains": {"nl": "leefgebieden", "en": "problem domains"},
    "severity": {"nl": "ernst", "en": "severity"},
    "care_status": {"nl": "zorgsituatie", "en": "care status"},
    "source": {"nl": "bron", "en": "source"},
}

LINE_SECTIONS = ("recipients", "shares", "reads", "refusals", "lookups", "acts")


def word(key: str, lang: str, **values: str) -> str:
    text = WORDS[key].get(lang) or WORDS[key]["nl"]
    return text.format(**values) if values else text


def code(value: str, lang: str) -> str:
    """A code in words, or the code itself when it has none (reason codes of §7)."""
    entry = CODES.get(value)
    return (entry.get(lang) or entry["nl"]) if entry else value


def _field_name(name: str, lang: str) -> str:
    return code("neighbourhood_field" if name == "neighbourhood" else name, lang)


def _classes(values: Iterable[str], lang: str) -> str:
    return ", ".join(code(c, lang) for c in values) or word("none", lang)


def _who(line: Mapping[str, Any]) -> str:
    return f"{line['organisation']} ({line['acting_user']})"


def _what(line: Mapping[str, Any], lang: str) -> str:
    parts = [code(line["action"], lang)]
    if line.get("classes"):
        parts.append(_classes(line["classes"], lang))
    if line.get("to"):
        parts.append(f"{word('to', lang)} {line['to']['organisation']}")
    if line["action"] in ("read", "deny", "lookup", "bemoeizorg-release", "bemoeizorg-invoke") \
            or line["reason"] not in CODES:
        parts.append(line["reason"] if line["action"] != "deny" else code(line["reason"], lang))
    if line.get("emergency"):
        parts.append(word("emergency", lang))
    return "; ".join(parts)


# --------------------------------------------------------------------------- text


def render_text(report: Mapping[str, Any]) -> str:
    """The report as plain text in ``report["lang"]``."""
    lang = str(report["lang"])
    out = [word("title", lang), "=" * len(word("title", lang)),
           word("intro", lang, org=report["contact_point"]["organisation"]),
           word("how", lang), "",
           f"{word('produced', lang)}: {report['produced']}",
           f"{word('contact', lang)}: {report['contact_point']['organisation']} "
           f"({report['contact_point']['acting_user']})",
           f"{word('subject', lang)}: {word('bsn', lang)} {report['subject']['bsn']}, "
           f"{word('dob', lang)} {report['subject']['date_of_birth']}", "",
           word("networks", lang) + ":"]
    for n in report["networks"]:
        out.append(f"  - {n['name']} ({code(n['kind'], lang)}): {n['cases']} {word('found', lang)}")
        if not n["complete"]:
            out.append("    " + word("incomplete", lang))
    if not report["cases"]:
        out += ["", word("none_found", lang)]
    for c in report["cases"]:
        out += ["", f"{word('case', lang)} {c['case']} ({word('pseudonym', lang)}) - "
                    f"{word('network', lang)} {c['network_name']}",
                "  " + word(c["match"], lang),
                f"  {word('created', lang)}: {c['created']}; {word('status', lang)}: "
                f"{code(c['status'], lang)}; {word('owner', lang)}: {c['owner']['organisation']}",
                f"  {word('classes', lang)}: {_classes(c['held']['classes'], lang)}"]
        for cls, fields in c["held"]["values"].items():
            out.append(f"    {code(cls, lang)}: " + "; ".join(f"{k}: {v}" for k, v in fields.items()))
        anon = c["held"]["anonymous"]
        if anon:
            out.append(f"  {word('anonymous', lang)}: " + "; ".join(
                f"{_field_name(k, lang)}: {', '.join(v) if isinstance(v, list) else v}"
                for k, v in anon.items()))
        if c["held"]["events"]:
            out.append(f"  {word('events', lang)}: " + ", ".join(
                f"{n} {code(k, lang)}" for k, n in c["held"]["events"].items()))
        for section in ("recipients", "shares", "reads"):
            out += _text_lines(c[section], section, lang)
        out.append(f"  {word('consents', lang)}: {len(c['consents'])}")
        for k in c["consents"]:
            out.append(f"    - {k['recorded']} {k['by']['organisation']}: "
                       f"{_classes(k['classes'], lang)}; {word('state', lang)}: "
                       f"{code(k['state'], lang)}"
                       + (f"; {word('valid_until', lang)} {k['valid_until']}" if k["valid_until"] else "")
                       + (f"; {word('revoked_at', lang)} {k['revoked']}" if k["revoked"] else "")
                       + (f"; {word('purpose', lang)}: {k['purpose']}" if k.get("purpose") else ""))
        for section in ("refusals", "lookups", "acts"):
            out += _text_lines(c[section], section, lang)
    out += ["", word("rights", lang)]
    return "\n".join(out) + "\n"


def _text_lines(lines: list[Mapping[str, Any]], section: str, lang: str) -> list[str]:
    out = [f"  {word(section, lang)}: {len(lines)}"]
    for line in lines:
        out.append(f"    - {line['time']} {_who(line)}: {_what(line, lang)}; "
                   f"{word('basis', lang)}: {code(line['basis'], lang)}"
                   + (f"; {word('purpose', lang)}: {line['purpose']}" if line.get("purpose") else "")
                   + f" (#{line['index']})")
    return out


# --------------------------------------------------------------------------- HTML

CSS = """
body{font-family:Georgia,'Times New Roman',serif;max-width:52em;margin:2em auto;color:#111;
line-height:1.4}h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #999;
margin-top:2em}h3{font-size:1.05em}table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #bbb;padding:.25em .4em;text-align:left;vertical-align:top;
font-size:.9em}th{background:#eee}.note{font-style:italic}.warn{border-left:4px solid #b60;
padding-left:.6em}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dt{font-weight:bold}dd{margin:0}
@page{size:A4;margin:18mm}
@media print{body{margin:0;max-width:none;font-size:10.5pt}.case{page-break-before:always}
th{background:none}a{color:inherit;text-decoration:none}}
"""

#: Nothing may load or run: only the page's own inline style.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page in ``report["lang"]`` (module docstring)."""
    lang = str(report["lang"])
    cp = report["contact_point"]
    h: list[str] = [
        "<!DOCTYPE html>", f'<html lang="{_e(lang)}">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(word('title', lang))}</title>", f"<style>{CSS}</style>", "</head>",
        "<body>", f"<h1>{_e(word('title', lang))}</h1>",
        f"<p>{_e(word('intro', lang, org=cp['organisation']))}</p>",
        f'<p class="note">{_e(word("how", lang))}</p>', "<dl>",
        f"<dt>{_e(word('produced', lang))}</dt><dd>{_e(report['produced'])}</dd>",
        f"<dt>{_e(word('contact', lang))}</dt><dd>{_e(cp['organisation'])} "
        f"({_e(cp['acting_user'])})</dd>",
        f"<dt>{_e(word('bsn', lang))}</dt><dd>{_e(report['subject']['bsn'])}</dd>",
        f"<dt>{_e(word('dob', lang))}</dt><dd>{_e(report['subject']['date_of_birth'])}</dd>",
        "</dl>", f"<h2>{_e(word('networks', lang))}</h2>", "<ul>"]
    for n in report["networks"]:
        h.append(f"<li>{_e(n['name'])} ({_e(code(n['kind'], lang))}): {_e(n['cases'])} "
                 f"{_e(word('found', lang))}"
                 + (f' <span class="warn">{_e(word("incomplete", lang))}</span>'
                    if not n["complete"] else "") + "</li>")
    h.append("</ul>")
    if not report["cases"]:
        h.append(f"<p>{_e(word('none_found', lang))}</p>")
    for c in report["cases"]:
        h += _html_case(c, lang)
    h += [f"<h2>&nbsp;</h2><p>{_e(word('rights', lang))}</p>", "</body>", "</html>"]
    return "\n".join(h) + "\n"


def _html_case(c: Mapping[str, Any], lang: str) -> list[str]:
    held = c["held"]
    h = ['<section class="case">',
         f"<h2>{_e(word('case', lang))} <code>{_e(c['case'])}</code> "
         f"&mdash; {_e(c['network_name'])}</h2>",
         f'<p class="{"note" if c["match"] == "confirmed" else "warn"}">'
         f"{_e(word(c['match'], lang))}</p>", "<dl>",
         f"<dt>{_e(word('created', lang))}</dt><dd>{_e(c['created'])}</dd>",
         f"<dt>{_e(word('status', lang))}</dt><dd>{_e(code(c['status'], lang))}</dd>",
         f"<dt>{_e(word('owner', lang))}</dt><dd>{_e(c['owner']['organisation'])}</dd>",
         "</dl>", f"<h3>{_e(word('held', lang))}</h3>",
         f"<p>{_e(word('classes', lang))}: {_e(_classes(held['classes'], lang))}</p>"]
    if held["values"]:
        h.append(f'<p class="note">{_e(word("values_note", lang))}</p><table>')
        for cls, fields in held["values"].items():
            for k, v in fields.items():
                h.append(f"<tr><th>{_e(code(cls, lang))}</th><td>{_e(k)}</td><td>{_e(v)}</td></tr>")
        h.append("</table>")
    if held["anonymous"]:
        h.append(f"<p>{_e(word('anonymous', lang))}:</p><table>")
        for k, v in held["anonymous"].items():
            shown = ", ".join(map(str, v)) if isinstance(v, list) else v
            h.append(f"<tr><th>{_e(_field_name(k, lang))}</th><td>{_e(shown)}</td></tr>")
        h.append("</table>")
    if held["events"]:
        h.append(f"<p>{_e(word('events', lang))}: " + _e(", ".join(
            f"{n} {code(k, lang)}" for k, n in held["events"].items())) + "</p>")
    for section in ("recipients", "shares", "reads"):
        h += _html_lines(c[section], section, lang)
    h.append(f"<h3>{_e(word('consents', lang))}</h3>")
    if not c["consents"]:
        h.append(f"<p>{_e(word('none', lang))}</p>")
    else:
        h.append(f"<table><tr><th>{_e(word('when', lang))}</th><th>{_e(word('who', lang))}</th>"
                 f"<th>{_e(word('what', lang))}</th><th>{_e(word('state', lang))}</th>"
                 f"<th>{_e(word('purpose', lang))}</th></tr>")
        for k in c["consents"]:
            state = code(k["state"], lang)
            if k["valid_until"]:
                state += f" ({word('valid_until', lang)} {k['valid_until']})"
            if k["revoked"]:
                state += f" ({word('revoked_at', lang)} {k['revoked']})"
            h.append(f"<tr><td>{_e(k['recorded'])}</td><td>{_e(k['by']['organisation'])}</td>"
                     f"<td>{_e(_classes(k['classes'], lang))}</td><td>{_e(state)}</td>"
                     f"<td>{_e(k.get('purpose', ''))}</td></tr>")
        h.append("</table>")
    for section in ("refusals", "lookups", "acts"):
        h += _html_lines(c[section], section, lang)
    h.append("</section>")
    return h


def _html_lines(lines: list[Mapping[str, Any]], section: str, lang: str) -> list[str]:
    h = [f"<h3>{_e(word(section, lang))} ({len(lines)})</h3>"]
    if not lines:
        return h + [f"<p>{_e(word('none', lang))}</p>"]
    h.append(f"<table><tr><th>{_e(word('when', lang))}</th><th>{_e(word('who', lang))}</th>"
             f"<th>{_e(word('what', lang))}</th><th>{_e(word('basis', lang))}</th>"
             f"<th>{_e(word('purpose', lang))}</th><th>{_e(word('entry', lang))}</th></tr>")
    for line in lines:
        h.append(f"<tr><td>{_e(line['time'])}</td><td>{_e(_who(line))}</td>"
                 f"<td>{_e(_what(line, lang))}</td><td>{_e(code(line['basis'], lang))}</td>"
                 f"<td>{_e(line.get('purpose', ''))}</td><td>#{_e(line['index'])}</td></tr>")
    return h + ["</table>"]


__all__ = ["WORDS", "CODES", "CSP", "word", "code", "render_text", "render_html"]
