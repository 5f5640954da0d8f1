"""Almere: the Integraal Netwerk Stedenwijk (report §4.1 schema 2, §4.2.3, §4.3.1, annex 1),
played by ``schakel demo --practice almere``.

A neighbourhood network that no longer meets: "korte lijnen", the coordinator resolves a
signal with the one or two core organisations it concerns.  Schakel's answer is the case
for part of the kern (ADR 0031): social work brings in a household's rent arrears for
the coordinator and debt counselling only.  The other core members sync and find nothing
of it: not in their list, not by its id, not in their figures; the privacy officer gets
no access report for it either.  The coordinator and debt counselling work it
bilaterally; when her health turns out to be at stake the owner widens it to the district
nurses with a reason, who then read its whole history, and the privacy officer finds the
widening in the audit log and opens the reason sealed to it.  When debt counselling
leaves the network, the case's new key is sealed to the remaining audience only.  Every
person, address and organisation except the network and its coordinator is invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schakel.cli.demo.stage import Cast, Org, Practice, Scene, org
from schakel.client.errors import ServerRefused
from schakel.client.fold import epoch_keys, latest_epoch
from schakel.protocol import envelopes
from schakel.protocol.crypto import BoxSecretKey
from schakel.protocol.errors import DecryptionError, ProtocolError
from schakel.protocol.objects.audit import AuditEntry
from schakel.protocol.objects.cases import AudienceKey, CaseHeader, CaseRekey

STEDENWIJK = "Integraal Netwerk Stedenwijk"
COVENANT = ("Convenant Integraal Netwerk Stedenwijk. Wij werken met korte lijnen: een melding "
            "bespreekt de coordinator alleen met de partners die het aangaat, en wie een casus "
            "leest staat in het auditlog.")

#: The tenant with rent arrears (invented), sealed per class.
TENANT = {"name": {"given_names": "Ingrid", "family_name": "Koopmans"},
          "address": {"street": "Baljuwstraat", "house_number": "27", "postcode": "1325 KT",
                      "city": "Almere"}}
ARREARS_INTAKE = {"kind": "intake", "age_band": "45-54", "neighbourhood": "Stedenwijk",
                  "domains": ["financial", "eviction"], "severity": "high",
                  "care_status": "misses-care", "source": "partner", "complex": False,
                  "summary": "Vier maanden huurachterstand, de verhuurder dreigt met "
                             "ontruiming. Opent haar post niet meer. Wil niet dat de hele "
                             "wijk ervan weet."}
#: A case the whole kern reads, brought in for an ad hoc meeting (report §4.3.1).
WHOLE_KERN_INTAKE = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Stedenwijk",
                     "domains": ["loneliness", "self-care"], "severity": "medium",
                     "care_status": "avoids-care", "source": "partner", "complex": True,
                     "summary": "Oudere man, weigert thuiszorg en vrijwilligers. Te ingewikkeld "
                                "voor een korte lijn: graag ad hoc met de hele kern."}
ANALYSIS = ("Korte lijn met de schuldhulp: eerst rust, dan een betalingsregeling met de "
            "verhuurder. De wijk hoeft hier niets van te weten.")
ARRANGEMENT = {"kind": "action", "help_type": "formal", "relation": "complementary",
               "description": "Schuldhulp belt de verhuurder en zet een betalingsregeling op.",
               "informal_not_possible": "Een betalingsregeling en het stoppen van de "
                                        "ontruiming vragen een schuldhulpverlener."}
WIDEN_REASON = ("Zij spuit haar insuline niet meer sinds de brief van de verhuurder; de "
                "wijkverpleging moet weten wat er speelt.")
NURSE_VISIT = {"kind": "action", "help_type": "formal", "relation": "complementary",
               "description": "Wijkverpleging komt dagelijks voor de insuline.",
               "informal_not_possible": "Insuline spuiten en de suiker controleren is "
                                        "verpleegkundig werk."}
AFTER_REMOVAL = ("Betalingsregeling loopt; de schuldhulp is uit het netwerk, de "
                 "maatschappelijk werker volgt haar verder.")


@dataclass
class AlmereCast(Cast):
    """The coordinator (the report's De Schoor, welfare and elderly work), four core
    partners (the volunteer point informal, as the report's umbrella organisation for
    volunteering is), and the municipality's privacy officer in the shell."""

    schoor: Org = org("schoor", "De Schoor", "ouderenwerker-stedenwijk")
    maatschappelijk_werk: Org = org("maatschappelijk-werk", "Maatschappelijk Werk Almere-Stad",
                                    "mw-stedenwijk-1")
    schuldhulp: Org = org("schuldhulp", "Schuldhulp Almere", "schuldhulpverlener-1")
    wijkverpleging: Org = org("wijkverpleging", "Wijkverpleging Stedenwijk",
                              "wijkverpleegkundige-1")
    vrijwilligerspunt: Org = org("vrijwilligerspunt", "Vrijwilligerspunt Almere",
                                 "consulent-vrijwillige-inzet")
    privacy: Org = org("privacy", "Privacyfunctionaris Gemeente Almere", "privacy-officer-1")


@dataclass
class Stedenwijk(Scene):
    """The Almere practice as it is played: its cast and the ids its acts make."""

    c: AlmereCast = field(default_factory=AlmereCast)
    network: str = ""
    whole_kern_case: str = ""
    arrears_case: str = ""
    served: dict[str, Any] | None = None      # the case as the server serves it


async def create_homes(s: Stedenwijk) -> None:
    """Every organisation creates its own home; the texts of the cases are registered as
    what the server must never hold."""
    s.t.section("0. Every organisation creates its own home: keys, keystore, local state")
    await s.stage.create_homes("almere", s.c.all())
    s.stage.keep_secret("the tenant's name or street", "Ingrid", "Koopmans", "Baljuwstraat")
    s.stage.keep_secret("the anonymous layer's text or the reason for widening",
                        str(ARREARS_INTAKE["summary"])[:30],
                        str(WHOLE_KERN_INTAKE["summary"])[:30], ANALYSIS[:30],
                        AFTER_REMOVAL[:30], WIDEN_REASON[:30])


async def found(s: Stedenwijk) -> None:
    """Act 1: De Schoor founds the neighbourhood network: social work, debt counselling,
    the district nurses and the volunteer point in its core, the privacy officer in its
    shell.  No meeting is scheduled: the network has none (report §4.3.1)."""
    t, co = s.t, s.c.schoor
    t.section(f"1. {STEDENWIJK}: De Schoor founds the network")
    s.network = await co.p.networks.create(name=STEDENWIJK, kind="neighbourhood",
                                           covenant=COVENANT,
                                           server_fingerprint=s.server_fingerprint)
    s.stage.founded(s.network, STEDENWIJK, COVENANT, coordinator=co, auditor=s.c.privacy)
    t.note(f"network {s.network}; fingerprint {co.p.fingerprint}", co.name)
    for o, ring, party, roles in (
            (s.c.maatschappelijk_werk, "core", "formal", ("professional-secrecy",)),
            (s.c.schuldhulp, "core", "formal", ()),
            (s.c.wijkverpleging, "core", "formal", ()),
            (s.c.vrijwilligerspunt, "core", "informal", ()),
            (s.c.privacy, "shell", "formal", ("auditor",))):
        await s.join(s.network, co, o, ring=ring, party=party, roles=roles)
    s.whole_kern_case = await t.holds(
        "the district nurses bring in a case for the whole kern, too complicated for a "
        "short line (an ad hoc meeting)",
        lambda: s.c.wijkverpleging.p.cases.create(s.network, WHOLE_KERN_INTAKE))
    await s.sync(s.network, s.c.vrijwilligerspunt)
    t.check(s.readable_case(s.c.vrijwilligerspunt, s.network, s.whole_kern_case) is not None,
            "every core member reads that one, the volunteer point too")


async def short_line(s: Stedenwijk) -> None:
    """Act 2: social work brings in the tenant's rent arrears for the coordinator and
    debt counselling only (a subset case, ADR 0031): the coordinator is always in; the
    case key is sealed to each of the three, not wrapped under the network's epoch key."""
    t, mw, co, debt = s.t, s.c.maatschappelijk_werk, s.c.schoor, s.c.schuldhulp
    t.section("2. A short line: social work brings in a case for the coordinator and debt "
              "counselling only")
    s.arrears_case = await t.holds(
        "social work brings in the rent arrears, its audience debt counselling (the "
        "coordinator is always in); her name and address sealed per class",
        lambda: mw.p.cases.create(s.network, ARREARS_INTAKE, identity=TENANT,
                                  audience=[debt.p.key_id]))
    await s.sync(s.network, co, debt)
    view = s.readable_case(debt, s.network, s.arrears_case)
    t.check(view is not None
            and set(view.audience or ()) == {mw.p.key_id, co.p.key_id, debt.p.key_id},
            "the signed header names its audience: social work, De Schoor, debt counselling")
    t.check(view is not None and view.state.get("domains") == ["financial", "eviction"],
            "debt counselling reads the case")
    if view is not None:
        t.note(f"reads: {view.state['age_band']}, {view.state['neighbourhood']}, "
               f"\"{view.state['summary']}\"", debt.name)
    t.check(s.readable_case(co, s.network, s.arrears_case) is not None,
            "De Schoor, the coordinator, reads it")
    t.check(not debt.p.identity.get(s.network, s.arrears_case)
            and not co.p.identity.get(s.network, s.arrears_case),
            "...neither holds who she is: her name needs her consent and a release")


async def outside(s: Stedenwijk) -> None:
    """Act 3: the district nurses and the volunteer point, core members outside the
    audience, sync and find nothing: not in their list, not by its id (answered as for a
    case that does not exist), not in their figures.  They hold every epoch key of the
    network and still open none of the case's sealed keys.  The privacy officer gets no
    access report for it, and the coordinator cannot bring a core member in by a share."""
    t = s.t
    nurses, volunteers, co = s.c.wijkverpleging, s.c.vrijwilligerspunt, s.c.schoor
    t.section("3. The rest of the kern: nothing to see, not even that it exists")
    await s.sync(s.network, nurses, volunteers)
    for o in (nurses, volunteers):
        listed = {v.case for v in o.p.cases.all(s.network)}
        t.check(s.whole_kern_case in listed and s.arrears_case not in listed,
                f"{o.name} syncs: its list holds the whole-kern case, not the rent arrears",
                why=f"listed {sorted(listed)}")
    missing = "A" * 22
    for case, what in ((s.arrears_case, "the volunteer point asks the server for the case by "
                                        "its id"),
                       (missing, "...and for a case id nobody ever used")):
        await t.refused(what, lambda case=case: volunteers.p.session.conn.get(
            f"/v1/networks/{s.network}/cases/{case}"), code="not_found")
    answers = [await _answer(volunteers, s.network, case) for case in (s.arrears_case, missing)]
    t.check(answers[0] is not None and answers[0] == answers[1],
            "both answers are the same 404, word for word: no oracle for what exists",
            why=f"{answers}")
    await t.refused("the volunteer point appends an event to the case anyway",
                    lambda: volunteers.p.session.conn.post(
                        f"/v1/networks/{s.network}/cases/{s.arrears_case}/events",
                        {"event": {"signed": {}, "signatures": []}}), code="not_found")
    await s.sync(s.network, co)
    mine = volunteers.p.reports.aggregate(s.network, min_cell=1)["cases"]
    theirs = co.p.reports.aggregate(s.network, min_cell=1)["cases"]
    t.check((mine, theirs) == (1, 2),
            f"the figures the volunteer point computes count {mine} case; De Schoor's count "
            f"{theirs}", why=f"{mine} and {theirs}")
    header = await _served_header(s)
    state = volunteers.p.session.state
    epoch = latest_epoch(state, s.network)
    held = epoch > 0 and epoch_keys(state, s.network, epoch) is not None
    boxes = volunteers.p.session.keys.box_secret
    opened = [k for k in (header.audience_keys if header else ()) if _opens(k, boxes, s)]
    t.check(held and header is not None and header.wrapped_case_key is None
            and len(header.audience_keys or ()) == 3 and not opened,
            "were the server to serve it anyway: the volunteer point holds the network's epoch "
            "key, "
            "and none of the case's three sealed keys opens with its own")
    await t.refused("the privacy officer (outside the audience) asks for the case's access "
                    "report", lambda: s.c.privacy.p.reports.access(s.network, s.arrears_case),
                    code="not_found")
    await t.refused("De Schoor tries to let the volunteer point in by a share (that would "
                    "skip the owner and the audit entry)",
                    lambda: co.p.cases.share(s.network, s.arrears_case,
                                             volunteers.p.key_id, reason="Meedenken."),
                    reason="partner-not-in-audience")


async def _answer(o: Org, network: str, case: str) -> tuple[int, str, str] | None:
    """The server's refusal of ``GET .../cases/{case}`` to ``o``: status, code, message."""
    try:
        await o.p.session.conn.get(f"/v1/networks/{network}/cases/{case}")
    except ServerRefused as exc:
        return (exc.status, str(exc.code), str(exc.message))
    return None


async def _served_header(s: Stedenwijk) -> CaseHeader | None:
    """The case's signed header as the server serves it to the coordinator."""
    served = await s.c.schoor.p.session.conn.get(
        f"/v1/networks/{s.network}/cases/{s.arrears_case}")
    return CaseHeader.from_json(served["header"]["signed"])


def _opens(key: AudienceKey, box_secret: BoxSecretKey, s: Stedenwijk) -> bool:
    """Whether ``box_secret`` opens ``key``, one sealed case key of the Almere case."""
    try:
        key.open(box_secret, network=s.network, case=s.arrears_case)
    except (DecryptionError, ProtocolError):
        return False
    return True


async def bilateral(s: Stedenwijk) -> None:
    """Act 4: the coordinator and debt counselling resolve it between them (report
    §4.3.1, "korte-lijn-bilateraaltjes"): an analysis, an arrangement with the landlord;
    the owner reads both, and the rest of the kern still has nothing."""
    t, mw, co, debt = s.t, s.c.maatschappelijk_werk, s.c.schoor, s.c.schuldhulp
    t.section("4. The coordinator works it bilaterally, no meeting")
    await t.holds("De Schoor writes its analysis on the case",
                  lambda: co.p.cases.add_event(s.network, s.arrears_case,
                                               {"kind": "analysis", "text": ANALYSIS}))
    await s.sync(s.network, debt)
    await t.holds("debt counselling records the arrangement (formal help, with the reason "
                  "informal help cannot do it)",
                  lambda: debt.p.cases.add_event(s.network, s.arrears_case,
                                                 {**ARRANGEMENT, "by": debt.p.key_id}))
    await s.sync(s.network, mw, s.c.vrijwilligerspunt)
    view = s.readable_case(mw, s.network, s.arrears_case)
    kinds = [e.plaintext.get("kind") for e in view.events if e.plaintext] if view else []
    t.check(kinds == ["intake", "analysis", "action"] and view is not None
            and not view.breaches,
            "social work reads the intake, De Schoor's analysis and the arrangement",
            why=f"{kinds}")
    t.check(s.arrears_case not in {v.case for v in s.c.vrijwilligerspunt.p.cases.all(s.network)},
            "the volunteer point's sync still brings nothing of it")


async def widen(s: Stedenwijk) -> None:
    """Act 5: her health is at stake; social work, the owner, widens the case to the
    district nurses with a reason.  They read the whole history; the privacy officer
    finds one ``audience-widen`` entry and opens the reason sealed to it; the volunteer
    point still sees nothing."""
    t, mw, co, nurses = s.t, s.c.maatschappelijk_werk, s.c.schoor, s.c.wijkverpleging
    t.section("5. Social work widens the case to the district nurses, with a reason")
    await t.refused("De Schoor widens it itself (the owner answers for who reads a case)",
                    lambda: co.p.cases.widen(s.network, s.arrears_case, [nurses.p.key_id],
                                             reason=WIDEN_REASON),
                    reason="not-case-owner")
    await t.refused("social work widens it to the privacy officer, a shell partner",
                    lambda: mw.p.cases.widen(s.network, s.arrears_case,
                                             [s.c.privacy.p.key_id], reason=WIDEN_REASON),
                    reason="audience-not-core")
    added = await t.holds("social work widens it to the district nurses: every key version "
                          "sealed to them, the reason sent along",
                          lambda: mw.p.cases.widen(s.network, s.arrears_case,
                                                   [nurses.p.key_id], reason=WIDEN_REASON))
    t.check(added == [nurses.p.key_id], "one member added: the district nurses")
    await s.sync(s.network, nurses, s.c.vrijwilligerspunt)
    view = s.readable_case(nurses, s.network, s.arrears_case)
    kinds = [e.plaintext.get("kind") for e in view.events if e.plaintext] if view else []
    t.check(kinds == ["intake", "analysis", "action"],
            "the district nurses read the whole history: the intake, the analysis, the "
            "arrangement", why=f"{kinds}")
    await t.holds("they record their daily visit on it",
                  lambda: nurses.p.cases.add_event(s.network, s.arrears_case,
                                                   {**NURSE_VISIT, "by": nurses.p.key_id}))
    t.check(s.arrears_case not in {v.case for v in s.c.vrijwilligerspunt.p.cases.all(s.network)},
            "the volunteer point syncs again: still nothing of it")
    await _auditor_reads_the_widening(s)


async def _auditor_reads_the_widening(s: Stedenwijk) -> None:
    t, a = s.t, s.c.privacy
    entries = await t.holds("the privacy officer reads the audit log, each entry verified",
                            lambda: a.p.audit.entries(s.network))
    widened = [AuditEntry.from_json(e["entry"]) for e in entries or []
               if e.get("entry") and e["entry"].get("action") == "audience-widen"]
    entry = widened[0] if len(widened) == 1 else None
    t.check(entry is not None and entry.case == s.arrears_case
            and entry.subject == s.c.wijkverpleging.p.key_id
            and entry.actor.partner == s.c.maatschappelijk_werk.p.key_id,
            f"one audience-widen entry{f' ({entry.index})' if entry else ''}: the case, the "
            f"district nurses as subject, social work as actor", why=f"{len(widened)} entries")
    if entry is None:
        return
    t.check(WIDEN_REASON not in str(entry.to_json()),
            "the reason is not in the entry in the clear")
    reason = entry.open_purpose(a.p.key_id, a.p.session.keys.box_secret)
    t.check(reason == WIDEN_REASON, "the privacy officer opens the reason sealed to it")
    if reason:
        t.note(f"reads: \"{reason}\"", a.name)


async def removal(s: Stedenwijk) -> None:
    """Act 6: debt counselling leaves the network.  The coordinator's removal rekeys
    every open case; the subset case's new key is sealed to its remaining audience only,
    and the server takes no other set.  What is written afterwards the removed partner
    cannot open, even with the rekey in hand."""
    t, co, mw, debt, nurses = (s.t, s.c.schoor, s.c.maatschappelijk_werk, s.c.schuldhulp,
                               s.c.wijkverpleging)
    t.section("6. Debt counselling leaves the network: the case is rekeyed without it")
    await s.sync(s.network, co)
    await t.holds("De Schoor removes debt counselling (its work moves to the new wijkteam); "
                  "its client rekeys every open case",
                  lambda: co.p.networks.remove(s.network, debt.p.key_id,
                                               reason="Schuldhulp gaat op in het wijkteam."))
    served = await co.p.session.conn.get(f"/v1/networks/{s.network}/cases/{s.arrears_case}")
    rekeys = [CaseRekey.from_json(r["signed"]) for r in served.get("rekeys", [])]
    rekey = rekeys[-1] if rekeys else None
    t.check(rekey is not None and rekey.case_key_version == 2
            and rekey.recipients == {mw.p.key_id, co.p.key_id, nurses.p.key_id},
            "key version 2 is sealed to social work, De Schoor and the district nurses: not "
            "to debt counselling", why=f"{rekey and sorted(rekey.recipients)}")
    box = debt.p.session.keys.box_secret
    t.check(rekey is not None and not [k for k in rekey.audience_keys or ()
                                       if _opens(k, box, s)],
            "none of its sealed keys opens with debt counselling's box key")
    await t.refused("debt counselling syncs the network", lambda: debt.p.sync(s.network),
                    error=ProtocolError)
    await s.sync(s.network, mw)
    await t.holds("social work writes on the case under the new key",
                  lambda: mw.p.cases.add_event(s.network, s.arrears_case,
                                               {"kind": "note", "text": AFTER_REMOVAL}))
    await s.sync(s.network, nurses)
    view = s.readable_case(nurses, s.network, s.arrears_case)
    t.check(view is not None and view.case_key_version == 2
            and view.events[-1].plaintext == {"kind": "note", "text": AFTER_REMOVAL},
            "the district nurses read it (version 2)")
    s.served = await co.p.session.conn.get(
        f"/v1/networks/{s.network}/cases/{s.arrears_case}")
    before, after = _kept_key_opens(s, 1), _kept_key_opens(s, 2)
    t.check((before, after) == (True, False),
            "the version 1 key debt counselling kept opens what was written before it left, "
            "not the note written after (served to it anyway)", why=f"{before}, {after}")


def _kept_key_opens(s: Stedenwijk, version: int) -> bool | None:
    """Whether the case key debt counselling kept (version 1) decrypts the last event
    written under ``version``, as the server serves it; None when there is none."""
    events = [e["signed"] for e in (s.served or {}).get("events", [])
              if e["signed"].get("case_key_version") == version]
    if not events:
        return None
    event = events[-1]
    kept = s.c.schuldhulp.p.session.case_key(s.network, s.arrears_case, 1)
    try:
        envelopes.decrypt_json(kept, event["ciphertext"], envelopes.event_context(
            s.network, s.arrears_case, event["event"], version=version))
    except DecryptionError:
        return False
    return True


def instructions(s: Stedenwijk) -> str:
    """Commands to try against the Almere network the demo left running."""
    return f"""
    # Almere, {STEDENWIJK}: De Schoor, the coordinator (in every case's audience)
    export SCHAKEL_HOME={s.c.schoor.home}
    schakel case list {s.network}
    schakel case show {s.network} {s.arrears_case}
    schakel audit log {s.network}

    # the volunteer point (core, outside the audience): the whole-kern case only
    export SCHAKEL_HOME={s.c.vrijwilligerspunt.home}
    schakel case list {s.network}
"""


def recap(s: Stedenwijk) -> list[str]:
    cases = len(s.c.schoor.p.cases.all(s.network)) if s.network and s.c.schoor.partner else 0
    return [f"Almere: {len(s.c.all())} organisations, 1 network, {cases} cases, one of them "
            f"for part of the kern, widened once and rekeyed without the partner that left"]


#: What the report says of the Integrale Netwerken Almere, narrated.
REPORT = (
    "Almere's Integraal Netwerk Stedenwijk is a neighbourhood network (report §4.1, schema 2), "
    "coordinated by a social-cultural worker in elderly work of De Schoor (annex 1). The "
    "Integrale Netwerken Almere grew out of signalling networks and had existed for seven "
    "years; informal help is represented by a professional of the local umbrella "
    "organisation for volunteering (§4.2.3).",
    "They no longer meet periodically: the meeting \"heeft zich in de loop der tijd in "
    "feite overbodig gemaakt\". New signals \"worden door de coördinator in overleg met "
    "relevante kernorganisaties van het samenwerkingsverband onderling opgelost\"; for a "
    "problem too complicated, core partners meet ad hoc (§4.3.1).",
    "The report names the price of these \"korte-lijn-bilateraaltjes\": it is not always "
    "clear whether informal help was involved, and \"ook komt het voor dat casuïstiek "
    "buiten het zicht blijft van het netwerkoverleg\" (§4.3.1).",
    "Played here: a case for the coordinator and one partner only, invisible to the rest "
    "of the kern; worked bilaterally; widened by its owner to a third partner with a "
    "reason the privacy officer can read; rekeyed without a partner that left.",
)

PRACTICE = Practice(
    name="almere",
    title=f"Almere: {STEDENWIJK}",
    report=REPORT,
    scene=Stedenwijk,
    acts=(create_homes, found, short_line, outside, bilateral, widen, removal),
    instructions=instructions,
    recap=recap,
)


__all__ = ["PRACTICE", "AlmereCast", "Stedenwijk", "STEDENWIJK", "TENANT"]
