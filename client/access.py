"""The person's right of access through one contact point (AVG art. 15; Besluit
gegevensverwerking door samenwerkingsverbanden; design flow 10; docs/protocol.md §15.7;
ADR 0033).

:meth:`Access.report` is what the coordinator's client does when a person asks the
network's contact point what is held about them:

1. the BSN (11-proef) and the date of birth are checked here, before any request;
2. for every network this partner coordinates it syncs, derives the person's blind-index
   tokens under every match key it holds (one per epoch) and asks the server which cases
   carry them (``POST .../lookups``) -- only the tokens leave this process, never the BSN;
3. it believes an answer only with its audit receipt, whose ``lookup`` entry must name
   exactly the cases answered; a case matched only by a token of another epoch than the
   one in its signed header is a collision and is dropped, and so is a case whose
   ``official`` identity this partner holds and which names another BSN or date of birth;
4. for every case found it builds, from what it verified itself (the case's signed
   header, its folded anonymous layer, the identity this partner holds, and the
   *verified* audit log), what is held (classes; values only where this partner holds
   them), who received identity and on what basis, who was shown the anonymous layer,
   every read, the consents and their state, refusals, lookups and other acts, with the
   purposes sealed to this reader opened (ADR 0029).

The result is one language-neutral ``access-report`` (protocol/schemas/access-report.json);
:mod:`schakel.client.access_render` renders it as Dutch or English text and HTML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from schakel.protocol import access as rules
from schakel.protocol import schema
from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.objects.audit import AuditEntry
from schakel.protocol.objects.base import parse_timestamp

from schakel.client.audit import Audit
from schakel.client.feed import Feed
from schakel.client.fold import case_view, epoch_keys, epochs_held, names
from schakel.client.session import Session

#: The anonymous layer's structured fields a report lists (never its free text).
ANONYMOUS_FIELDS = ("age_band", "neighbourhood", "domains", "severity", "care_status", "source")
#: The event lists of the folded anonymous layer, counted in the report.
EVENT_LISTS = ("analysis", "actions", "feedback", "notes", "statuses")
RELEASES = ("release", "bemoeizorg-release")
LANGUAGES = ("nl", "en")


class Access:
    """Access requests answered by this partner as the contact point (module docstring)."""

    def __init__(self, session: Session, feed: Feed, audit: Audit) -> None:
        self.session, self.feed, self.audit = session, feed, audit

    async def coordinated(self) -> list[str]:
        """The networks this partner trusts and coordinates now (verified), sorted."""
        out = []
        for network in sorted(self.session.config.trusted):
            tv = await self.session.trusted(network)
            if tv.is_coordinator(self.session.key_id):
                out.append(network)
        return out

    async def report(self, *, bsn: str, birth_date: str, family_name: str | None = None,
                     lang: str = "nl", networks: Iterable[str] | None = None
                     ) -> dict[str, Any]:
        """The access report of the person with ``bsn`` and ``birth_date`` over every
        network this partner coordinates (or ``networks``, each of which it must
        coordinate).  ``family_name`` adds the name + date-of-birth token, which finds
        cases created without a BSN.  Validated before anything is sent; the BSN itself
        is never sent and the report carries it masked."""
        s = self.session
        if lang not in LANGUAGES:
            raise MalformedError("the report is written in nl or en", details={"field": "lang"})
        bsn = rules.check_bsn(bsn)
        birth_date = rules.check_birth_date(birth_date, today=s.now().date())
        if family_name is not None and not family_name.strip():
            family_name = None
        chosen = await self.coordinated() if networks is None else sorted(set(networks))
        sections = []
        cases: list[dict[str, Any]] = []
        for network in chosen:
            part, found = await self._network(network, bsn, birth_date, family_name)
            sections.append(part)
            cases += found
        report: dict[str, Any] = {
            "type": "access-report", "version": 1, "lang": lang, "produced": s.stamp(),
            "contact_point": {"partner": s.key_id, "organisation": s.name,
                              "acting_user": s.acting_user},
            "subject": {"bsn": rules.mask_bsn(bsn), "date_of_birth": birth_date,
                        "family_name_used": family_name is not None},
            "networks": sections, "cases": cases}
        schema.validate("access-report", report)
        return report

    # ------------------------------------------------------------------ one network

    async def _network(self, network: str, bsn: str, birth_date: str,
                       family_name: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        s = self.session
        tv = await s.trusted(network)
        if not tv.is_coordinator(s.key_id):
            raise PolicyViolation(f"only the coordinator of network {network} answers access "
                                  f"requests for it", details={"reason": "lookup-requires-"
                                                               "coordinator",
                                                               "network": network})
        await self.audit.monitor(network).observe(tv.tree_head)
        await self.feed.pull(network, tv)
        verifier = s.verifier(network, tv)
        with s.state.transaction():
            await verifier.fetch_epochs()
        keys = {e: k[1] for e in epochs_held(s.state, network)
                if (k := epoch_keys(s.state, network, e)) is not None}
        bi = tv.policy["blind_index"]
        tokens = rules.lookup_tokens(keys, bsn=bsn, birth_date=birth_date,
                                     family_name=family_name, opslimit=bi["opslimit"],
                                     memlimit=bi["memlimit"], size=bi["token_bytes"])
        matched: dict[str, list[str]] = {}
        lookups = []
        complete = True
        for batch in rules.batches(tokens):
            answer, index = await self._lookup(network, batch)
            lookups.append(index)
            complete = complete and answer["complete"]
            for item in answer["matches"]:
                case = item["case"]
                await verifier.ensure_case(case)
                header = s.header(network, case)
                kinds = rules.epoch_of_match(batch, item["tokens"], header.epoch)
                if kinds:
                    matched[case] = sorted(set(matched.get(case, [])) | set(kinds))
        member_names = names(s.state, network)
        entries = [AuditEntry.from_json(e["entry"]) for e in await self.audit.entries(network)]
        found, rejected = [], 0
        for case in matched:
            confirmed = self._confirmed(network, case, bsn, birth_date)
            if confirmed is False:
                rejected += 1
                continue
            found.append(self._case(network, tv.name, case, matched[case], bool(confirmed),
                                    entries, member_names))
        part = {"network": network, "name": tv.name, "kind": tv.kind,
                "epochs": len(keys), "tokens": len(tokens), "lookups": lookups,
                "cases": len(found), "rejected": rejected, "complete": complete}
        return part, found

    async def _lookup(self, network: str, batch: list[rules.LookupToken]
                      ) -> tuple[dict[str, Any], int]:
        """One ``POST .../lookups``, believed only with its receipt: the ``lookup`` entry
        by this partner naming exactly the cases answered (docs/protocol.md §15.7)."""
        s = self.session
        answer = await s.conn.post(s.path(network, "/lookups"), {
            "tokens": [t.to_json() for t in batch], "purpose": "access-request"})
        entry = await self.audit.monitor(network).check_receipt(
            answer.get("receipt") if isinstance(answer, dict) else None)
        with s.verifying(network, malformed="receipt-invalid"):
            matches = answer["matches"]
            if not isinstance(matches, list) or not isinstance(answer["complete"], bool):
                raise TypeError("matches")
            answered = [str(m["case"]) for m in matches]
            for m in matches:
                schema.validate_def("common", "id", m["case"])
                if not isinstance(m["tokens"], list) or not m["tokens"]:
                    raise TypeError("tokens")
        if entry.action != "lookup" or entry.actor.partner != s.key_id or \
                sorted(entry.cases or ()) != sorted(answered) or \
                len(set(answered)) != len(answered):
            raise s.misbehaving(network, "receipt-invalid", "the lookup's audit entry does "
                                "not record the cases the server answered", index=entry.index)
        return answer, entry.index

    def _confirmed(self, network: str, case: str, bsn: str, birth_date: str) -> bool | None:
        """True when this partner holds the case's ``official`` identity and it names this
        BSN (and date of birth, if it holds one); False when it names another person;
        None when this partner holds no official identity of the case."""
        raw = self.session.state.get_secret("identity", (network, case, "official"))
        if raw is None:
            return None
        official = json.loads(raw)
        if official.get("bsn") is None and official.get("date_of_birth") is None:
            return None
        if official.get("bsn") is not None and official["bsn"] != bsn:
            return False
        return official.get("date_of_birth") in (None, birth_date)

    # ------------------------------------------------------------------ one case

    def _case(self, network: str, network_name: str, case: str, kinds: list[str],
              confirmed: bool, entries: list[AuditEntry],
              member_names: Mapping[str, str]) -> dict[str, Any]:
        s = self.session
        header = s.header(network, case)
        view = case_view(s.state, network, case, dict(member_names))
        about = [e for e in entries if e.case == case or case in (e.cases or ())]
        purposes = {e.index: text for e in about
                    if (text := self._purpose(network, e)) is not None}
        grant_purpose = {e.ref: purposes[e.index] for e in about
                         if e.action == "grant" and e.ref and e.index in purposes}
        values = {}
        for cls in header.classes or ():
            raw = s.state.get_secret("identity", (network, case, cls))
            if raw is not None:
                values[cls] = {k: _shown(k, v) for k, v in json.loads(raw).items()}
        anonymous: dict[str, Any] = {}
        events: dict[str, int] = {}
        status = "open"
        if view is not None:
            status = view.status
            anonymous = {k: view.state[k] for k in ANONYMOUS_FIELDS if k in view.state}
            events = {k: len(view.state.get(k) or ()) for k in EVENT_LISTS}
        item: dict[str, Any] = {
            "network": network, "network_name": network_name, "case": case,
            "match": "confirmed" if confirmed else "unconfirmed", "matched_on": kinds,
            "created": header.created, "status": status,
            "owner": {"partner": header.owner,
                      "organisation": member_names.get(header.owner, header.owner)},
            "held": {"classes": sorted(header.classes or ()), "values": values,
                     "anonymous": anonymous, "events": events},
            "recipients": [], "shares": [], "reads": [], "consents": [], "refusals": [],
            "lookups": [], "acts": []}
        consents: dict[str, dict[str, Any]] = {}
        for e in about:
            line = _line(e)
            if e.index in purposes:
                line["purpose"] = purposes[e.index]
            if e.action in RELEASES and e.outcome == "allow":
                if e.action == "release" and e.ref in grant_purpose:
                    line["purpose"] = grant_purpose[e.ref]
                item["recipients"].append(line)
            elif e.action == "share":
                line["to"] = _party(e.subject, member_names)
                item["shares"].append(line)
            elif e.action == "read":
                item["reads"].append(line)
            elif e.action == "deny":
                item["refusals"].append(line)
            elif e.action == "lookup":
                item["lookups"].append(line)
            elif e.action == "consent" and e.ref:
                consents[e.ref] = self._consent(network, e.ref, e, purposes.get(e.index))
            elif e.action == "consent-revoke" and e.ref in consents:
                consents[e.ref].update(state="revoked", revoked=e.time)
            else:
                if e.subject:
                    line["to"] = _party(e.subject, member_names)
                item["acts"].append(line)
        item["consents"] = list(consents.values())
        return item

    def _purpose(self, network: str, entry: AuditEntry) -> str | None:
        s = self.session
        with s.verifying(network, malformed="audit-entry-rewritten", index=entry.index):
            return entry.open_purpose(s.key_id, s.keys.box_secret)

    def _consent(self, network: str, consent: str, entry: AuditEntry,
                 purpose: str | None) -> dict[str, Any]:
        """A consent as the log records it, with its validity from the signed consent
        when this partner holds it (it recorded it): ``in-force``, ``expired``,
        ``not-yet-valid``, ``revoked`` (set by its revocation entry), or ``recorded``
        (the validity is the recorder's; the log says only that it was not revoked)."""
        out: dict[str, Any] = {"consent": consent, "index": entry.index,
                               "recorded": entry.time,
                               "by": {"organisation": entry.actor.organisation,
                                      "acting_user": entry.actor.acting_user},
                               "classes": list(entry.classes or ()), "state": "recorded",
                               "valid_until": None, "revoked": None}
        if purpose is not None:
            out["purpose"] = purpose
        doc = self.session.state.get_doc("consent", (network, consent))
        if doc is not None:
            signed = doc["envelope"]["signed"]
            now = self.session.now()
            out["valid_until"] = signed["valid_until"]
            if parse_timestamp(signed["valid_until"]) <= now:
                out["state"] = "expired"
            elif parse_timestamp(signed["valid_from"]) > now:
                out["state"] = "not-yet-valid"
            else:
                out["state"] = "in-force"
        return out


def _shown(name: str, value: Any) -> str:
    """An identity field as the report shows it: a BSN masked as the report's subject is
    (ADR 0033 §5: a lost printout does not carry the full number), anything else as text."""
    if name == "bsn" and isinstance(value, str):
        try:
            return rules.mask_bsn(value)
        except MalformedError:
            return "*" * len(value)
    return _text(value)


def _text(value: Any) -> str:
    """An identity field as one line of text (care contacts are lists of objects)."""
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)


def _party(keyid: str | None, member_names: Mapping[str, str]) -> dict[str, str]:
    return {"partner": keyid or "", "organisation": member_names.get(keyid or "", keyid or "")}


def _line(e: AuditEntry) -> dict[str, Any]:
    """What every listed act has: the verified entry's index, time, actor, action, basis,
    classes, reason and flags."""
    return {"index": e.index, "time": e.time, "action": e.action,
            "partner": e.actor.partner, "organisation": e.actor.organisation,
            "acting_user": e.actor.acting_user, "role": e.actor.role, "basis": e.basis,
            "classes": list(e.classes or ()), "reason": e.reason, "emergency": e.emergency}


__all__ = ["Access", "LANGUAGES"]
