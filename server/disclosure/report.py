"""The subject access report (design flow 10; docs/protocol.md §15 §15.2): for one case,
every release of its identity, every refused attempt and every read of its data (what the
server served: events, headers, identity records) -- who, when, which classes, on what
basis -- as JSON and as a readable Dutch/English text.

It is built from the audit log only (``schakel.server.audit.case_entries``): a release the log did
not record does not exist (protocol.md §7), and the log never holds identity, so neither
does the report.  Entries whose body was erased after retention are counted, not listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schakel.server.audit import case_entries, signed_size
from schakel.server.storage import Db

RELEASE_ACTIONS = ("release", "bemoeizorg-release")
BASIS_TEXT = {"consent": "toestemming / consent",
              "bemoeizorg": "bemoeizorg (noodprocedure / emergency procedure)",
              "policy": "beleid / policy", "none": "geen / none"}


def _who(index: int, entry: dict[str, Any]) -> dict[str, Any]:
    """Who acted when, and on which classes: the fields every line of the report has."""
    actor = entry["actor"]
    who = {"index": index, "time": entry["time"], "partner": actor["partner"],
           "organisation": actor["organisation"], "acting_user": actor["acting_user"],
           "classes": list(entry.get("classes", []))}
    for optional in ("party", "on_behalf_of"):       # protocol.md §A.1: as the entry has them
        if optional in actor:
            who[optional] = actor[optional]
    return who


PARTY_TEXT = {"formal": "formeel / formal", "informal": "informeel / informal"}


def _actor_line(n: int, item: dict[str, Any]) -> str:
    """``n. time  organisation (key id), user <acting user>`` and, when the entry has
    them, the user's party and the organisations acted on behalf of."""
    line = (f"  {n}. {item['time']}  {item['organisation']} ({item['partner']}), "
            f"medewerker / user {item['acting_user']}")
    if "party" in item:
        line += f" ({PARTY_TEXT.get(item['party'], item['party'])})"
    if item.get("on_behalf_of"):
        line += f", namens / on behalf of: {', '.join(item['on_behalf_of'])}"
    return line


def _read(index: int, entry: dict[str, Any]) -> dict[str, Any]:
    return {**_who(index, entry), "served": entry["reason"]}


def _purpose(index: int, entry: dict[str, Any]) -> dict[str, Any]:
    """An act whose entry carries its purpose sealed: the server cannot read it; the
    coordinator's or auditor's client opens its own copy."""
    return {**_who(index, entry), "action": entry["action"], "subject": entry.get("subject"),
            "ref": entry.get("ref"), "purpose": entry["purpose"]}


def _item(index: int, entry: dict[str, Any], *, reason: bool) -> dict[str, Any]:
    item = {**_who(index, entry), "basis": entry["basis"], "ref": entry.get("ref")}
    if reason:
        item["action"] = entry["action"]
        item["reason"] = entry["reason"]
    return item


def _lines(title: str, items: list[dict[str, Any]], *, denials: bool) -> Iterable[str]:
    yield f"{title}: {len(items)}"
    if not items:
        yield "  geen / none"
    for n, item in enumerate(items, start=1):
        classes = ", ".join(item["classes"]) or "-"
        yield _actor_line(n, item)
        yield (f"     klassen / classes: {classes}; grondslag / basis: "
               f"{BASIS_TEXT.get(item['basis'], item['basis'])}"
               + (f" ({item['ref']})" if item["ref"] else "") + f"; logregel / entry #{item['index']}")
        if denials:
            yield f"     geweigerd / refused: {item['reason']}"


def _read_lines(reads: list[dict[str, Any]]) -> Iterable[str]:
    yield f"Inzage door partners / reads of the case's data: {len(reads)}"
    if not reads:
        yield "  geen / none"
    for n, item in enumerate(reads, start=1):
        identity = ", ".join(item["classes"])
        yield _actor_line(n, item)
        yield (f"     opgehaald / served: {item['served']}"
               + (f"; identiteit / identity: {identity}" if identity else "")
               + f"; logregel / entry #{item['index']}")


def access_report(db: Db, network: str, case: str, *, network_name: str,
                  produced: str) -> dict[str, Any]:
    """The report of ``case``: ``{"case", "size", "releases", "denials", "reads",
    "purposes", "erased", "text"}``.  ``purposes`` are the entries carrying a sealed
    purpose, which only the reader's client opens; ``size`` is the log's signed size the
    report was built from (a client compares it with the entries below that size, so that
    an entry appended after the report is not missing from it)."""
    size = signed_size(db, network)
    releases: list[dict[str, Any]] = []
    denials: list[dict[str, Any]] = []
    reads: list[dict[str, Any]] = []
    purposes: list[dict[str, Any]] = []
    erased = 0
    entries = case_entries(db, network, case)
    for row in entries:
        entry = row["entry"]
        if entry is None:
            erased += 1
        elif entry["action"] in RELEASE_ACTIONS and entry["outcome"] == "allow":
            releases.append(_item(row["index"], entry, reason=False))
        elif entry["action"] == "deny":
            denials.append(_item(row["index"], entry, reason=True))
        elif entry["action"] == "read":
            reads.append(_read(row["index"], entry))
        if entry is not None and "purpose" in entry:
            purposes.append(_purpose(row["index"], entry))
    text = "\n".join([
        "Inzageverslag / subject access report",
        f"Netwerk / network: {network_name} ({network})",
        f"Casus (pseudoniem) / case (pseudonym): {case}",
        f"Opgesteld / produced: {produced}, uit het auditlog / from the audit log "
        f"({len(entries)} regels / entries over deze casus / about this case"
        + (f", waarvan {erased} gewist na de bewaartermijn / {erased} erased after retention"
           if erased else "") + ")",
        "",
        *_lines("Verstrekkingen / releases", releases, denials=False),
        "",
        *_lines("Weigeringen / refused requests", denials, denials=True),
        "",
        *_read_lines(reads),
    ]) + "\n"
    return {"case": case, "size": size, "releases": releases, "denials": denials, "reads": reads,
            "purposes": purposes, "erased": erased, "text": text}


__all__ = ["RELEASE_ACTIONS", "access_report"]
