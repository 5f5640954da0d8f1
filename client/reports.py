"""Reports from the partner's side (docs/protocol.md §15.1, §15.2; flows 10 and 11).

* :meth:`Reports.access` is the subject access report the network's single
  contact point answers a person with (Besluit gegevensverwerking door
  samenwerkingsverbanden, design flow 10).  The server builds it from its log; the
  client believes it only after matching it, both ways, against the *verified* log:
  every release, denial, read and sealed purpose it lists is a verified entry saying the
  same thing, and every such verified entry of the case is listed.  A server that leaves a
  release out of a person's report is caught, not just one that invents one.  The
  purposes sealed to this partner are opened and shown (protocol.md §15.6).
* :meth:`Reports.aggregate` gives municipalities their figures (flow 11) from
  the anonymous layers this partner folded locally — no server, no case ids, and every
  cell smaller than ``min_cell`` suppressed, with complementary suppression where a
  suppressed cell could be recomputed from a total.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from schakel.protocol.objects.audit import AuditEntry
from schakel.protocol.objects.base import parse_timestamp

from schakel.client.audit import Audit
from schakel.client.cases import Cases
from schakel.client.session import Session
from schakel.client.views import CaseView

RELEASE_ACTIONS = ("release", "bemoeizorg-release")
#: The report's lists and which verified entries of the case each one lists
#: (protocol.md §15.2).
SECTIONS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "releases": lambda e: e.get("action") in RELEASE_ACTIONS and e.get("outcome") == "allow",
    "denials": lambda e: e.get("action") == "deny",
    "reads": lambda e: e.get("action") == "read",
    "purposes": lambda e: "purpose" in e,
}
HELP_TYPES = ("informal", "formal", "combined")


class Reports:
    """Subject access reports and aggregate figures (module docstring)."""

    def __init__(self, session: Session, cases: Cases, audit: Audit) -> None:
        self.session, self.cases, self.audit = session, cases, audit

    # ------------------------------------------------------------------ access

    async def access(self, network: str, case: str) -> dict[str, Any]:
        """The subject access report of ``case`` (coordinator or auditor), checked
        against the verified audit log (module docstring) below the report's ``size``,
        which must be at least the log's size when the report was asked for.  A report
        that disagrees with the log is recorded server misbehaviour
        (``audit-entry-rewritten``).  Each purpose sealed to this partner is opened into
        ``purpose_text`` and added to ``text``."""
        s = self.session
        before = await self.audit.monitor(network).refresh()
        report = await s.conn.get(s.path(network, f"/cases/{case}/access-report"))
        verified = {e["index"]: e["entry"] for e in await self.audit.entries(network)}
        with s.verifying(network, malformed="audit-entry-rewritten", case=case):
            if report["case"] != case:
                raise KeyError("case")
            size = int(report["size"])
            listed = {kind: {int(item["index"]): dict(item) for item in report[kind]}
                      for kind in SECTIONS}
        floor = before.size if before is not None else 0
        if size < floor:
            raise s.misbehaving(network, "audit-entry-rewritten",
                                f"the access report covers {size} log entries; the log had "
                                f"{floor} before it was asked for", case=case, size=size)
        # Entries appended after the report was built (a partner's sync logs a read) are
        # not expected in it; those below its size are, both ways.
        about = {i: e for i, e in verified.items() if i < size
                 and (e.get("case") == case or case in (e.get("cases") or ()))}
        problems: list[str] = []
        for kind, belongs in SECTIONS.items():
            for index, item in listed[kind].items():
                problems += _mismatch(index, item, about.get(index), belongs)
            for index, entry in about.items():
                if belongs(entry) and index not in listed[kind]:
                    problems.append(f"{kind[:-1]} entry {index} is missing from the report")
        if problems:
            raise s.misbehaving(network, "audit-entry-rewritten",
                                "the access report does not match the verified audit log: "
                                + "; ".join(problems[:5]), case=case, count=len(problems))
        lines = []
        for index, item in listed["purposes"].items():
            with s.verifying(network, malformed="audit-entry-rewritten", case=case):
                text = AuditEntry.from_json(about[index]).open_purpose(s.key_id,
                                                                       s.keys.box_secret)
            if text is not None:
                item["purpose_text"] = text
                lines.append(f"  #{index} ({item['action']}): {text}")
        if lines:
            report["text"] = (str(report["text"]) + "\nDoel van de handeling / purpose of the "
                              "act (verzegeld / sealed):\n" + "\n".join(lines) + "\n")
        return {**report, **{kind: list(items.values()) for kind, items in listed.items()},
                "verified": {"entries": sum(len(listed[k]) for k in ("releases", "denials",
                                                                     "reads")),
                             "log_entries": len(verified)}}

    # ------------------------------------------------------------------ aggregates

    def aggregate(self, network: str, *, min_cell: int = 5) -> dict[str, Any]:
        """Figures for the municipality from the cases this partner folded (flow 11):
        cases by problem domain, neighbourhood, source and help type (informal, formal,
        combined, none yet), and the median days from a case's creation to its first
        action.  Every count below ``min_cell`` is shown as ``"<min_cell>"``; where one
        suppressed cell of a breakdown that sums to the published total could be
        recomputed, the next smallest cell is suppressed too.  No case ids, no free
        text."""
        if min_cell < 1:
            raise ValueError("min_cell is at least 1")
        folded = self.cases.all(network)
        views = [v for v in folded if v.kind == "case" and v.state.get("age_band")]
        consults = [v for v in folded if v.kind == "consult"]
        total = len(views)
        domains: Counter[str] = Counter()
        for v in views:
            domains.update(set(v.state.get("domains") or ()))
        by_neighbourhood = Counter(str(v.state.get("neighbourhood")) for v in views)
        by_source = Counter(str(v.state.get("source")) for v in views)
        by_status = Counter(str(v.status) for v in views)
        by_help = Counter(_help_type(v.state.get("actions") or ()) for v in views)
        days = [d for d in (_days_to_first_action(v) for v in views) if d is not None]
        cell = _cell(min_cell)
        return {
            "network": network,
            "min_cell": min_cell,
            "cases": cell(total),
            "consults": cell(len(consults)),
            # A case counts once in every domain it has: no total, no complement.
            "by_domain": {k: cell(n) for k, n in sorted(domains.items())},
            "by_neighbourhood": _suppress(by_neighbourhood, min_cell, total),
            "by_source": _suppress(by_source, min_cell, total),
            "by_status": _suppress(by_status, min_cell, total),
            "by_help_type": _suppress(by_help, min_cell, total),
            "cases_with_action": cell(len(days)),
            "median_days_to_first_action": (round(statistics.median(days), 1)
                                            if len(days) >= min_cell else f"<{min_cell}"),
        }


# --------------------------------------------------------------------------- helpers


def _mismatch(index: int, item: Mapping[str, Any], entry: Mapping[str, Any] | None,
              belongs: Callable[[Mapping[str, Any]], bool]) -> list[str]:
    """What a report line claims that the verified entry at its index does not say."""
    if entry is None:
        return [f"entry {index} is not a verified entry of this case"]
    if not belongs(entry):
        return [f"entry {index} is a {entry.get('action')}, not what the report lists"]
    actor = entry.get("actor") or {}
    claims = {"partner": actor.get("partner"), "acting_user": actor.get("acting_user"),
              "organisation": actor.get("organisation"), "party": actor.get("party"),
              "on_behalf_of": actor.get("on_behalf_of"), "time": entry.get("time"),
              "basis": entry.get("basis"), "ref": entry.get("ref"),
              "classes": sorted(entry.get("classes") or [])}
    wrong = []
    for name, value in claims.items():
        stated = item.get(name)
        if name == "classes":
            stated = sorted(stated or [])
        if name in item and stated != value:
            wrong.append(name)
    for name, field in (("reason", "reason"), ("served", "reason"), ("action", "action"),
                        ("subject", "subject"), ("purpose", "purpose")):
        if name in item and item[name] != entry.get(field):
            wrong.append(name)
    return [f"entry {index}: {', '.join(wrong)} differ"] if wrong else []


def _cell(min_cell: int) -> Callable[[int], int | str]:
    def cell(n: int) -> int | str:
        return n if n >= min_cell else f"<{min_cell}"
    return cell


def _suppress(counts: Mapping[str, int], min_cell: int, total: int) -> dict[str, int | str]:
    """Primary suppression of cells below ``min_cell`` and complementary suppression:
    a breakdown of ``total`` (each case in exactly one cell) with a single suppressed
    cell would give it away by subtraction from the published total, so the smallest
    published cell is suppressed as well."""
    out: dict[str, int | str] = {}
    hidden = {k for k, n in counts.items() if n < min_cell}
    shown = sorted((n, k) for k, n in counts.items() if k not in hidden)
    if len(hidden) == 1 and shown and total >= min_cell:
        hidden.add(shown[0][1])
    for k in sorted(counts):
        out[k] = f"<{min_cell}" if k in hidden else counts[k]
    return out


def _help_type(actions: Iterable[Mapping[str, Any]]) -> str:
    """The case's help so far: only informal, only formal, combined (a combined action,
    or both kinds), or none."""
    kinds = {str(a.get("help_type")) for a in actions if isinstance(a, Mapping)}
    kinds &= set(HELP_TYPES)
    if not kinds:
        return "none"
    if "combined" in kinds or kinds == {"informal", "formal"}:
        return "combined"
    return kinds.pop()


def _days_to_first_action(view: CaseView) -> float | None:
    """Days from the case's creation to its first action event (by the author's
    ``created`` time), or None without actions."""
    times = [e.created for e in view.events
             if isinstance(e.plaintext, Mapping) and e.plaintext.get("kind") == "action"]
    if not times:
        return None
    start = parse_timestamp(view.created)
    first = min(parse_timestamp(t) for t in times)
    return max(0.0, (first - start).total_seconds() / 86400)


__all__ = ["Reports"]
