"""Amersfoort: the Buurtnetwerk 55+ Soesterkwartier (report §4.1 schema 2, §4.2.2, §4.2.3,
§4.3, §4.4, §4.5.2), played by ``schakel demo --practice amersfoort``.

An open network: volunteers sit in its core next to professionals, a GP's practice and a
housing corporation in its shell, and consent is what lets a name travel.  The
coordinator founds it, a home care nurse asks an anonymous question, a volunteer driver
sends a signal without an account, social work brings in an isolated man whose name and
address reach the church visiting service, and whose BSN does not; the privacy officer
reads his subject access report.  Then the man exercises his rights through the regie,
which also coordinates the Buurtnetwerk 55+ Randenbroek/Schuilenburg
(:mod:`schakel.cli.demo.amersfoort_rights`): one access report over both networks, a
rectification of his address, and in the end the erasure of his identity.  Every person,
address and phone number is invented.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import timedelta

from schakel.cli.demo import amersfoort_rights
from schakel.cli.demo.stage import PASSPHRASE, Cast, Org, Practice, Scene, org
from schakel.cli.demo.tally import short
from schakel.client.card import anonymous_signal, anonymous_status, read_card
from schakel.client.partner import Partner
from schakel.protocol import pii
from schakel.protocol.crypto import random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ProtocolError
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.disclosure import Grant, GrantBasis

NEIGHBOURHOOD = "Buurtnetwerk 55+ Soesterkwartier"
COVENANT = ("Convenant Buurtnetwerk 55+ Soesterkwartier. Wij bespreken casussen anoniem; namen "
            "delen wij alleen met toestemming van de bewoner, en alleen met wie ze nodig heeft.")

#: The isolated elderly man (invented).
MAN = {"name": {"given_names": "Hendrik", "family_name": "de Vries"},
       "address": {"street": "Soesterweg", "house_number": "12", "postcode": "3812 AB",
                   "city": "Amersfoort"},
       "official": {"bsn": "111222333", "date_of_birth": "1946-05-04"}}
MAN_INTAKE = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Soesterkwartier",
              "domains": ["loneliness", "self-care"], "severity": "medium",
              "care_status": "avoids-care", "source": "anonymous-signal", "complex": False,
              "summary": "Woont alleen sinds zijn vrouw overleed, komt de deur nauwelijks uit "
                         "en eet slecht. Wil wel bezoek, geen 'instanties'."}
CONSULT_INTAKE = {"kind": "intake", "age_band": "85+", "neighbourhood": "Soesterkwartier",
                  "domains": ["self-care"], "severity": "low", "care_status": "misses-care",
                  "source": "partner", "complex": False,
                  "summary": "Consultatieve vraag: een mevrouw vergeet haar medicijnen en wil "
                             "geen hulp van buiten. Hoe krijgen we haar in beeld zonder haar "
                             "te overvallen?"}
#: Social work's first draft of the man's intake: his name and his daughter's number in it.
DRAFT_SUMMARY = ("Meneer de Vries woont alleen sinds zijn vrouw overleed en eet slecht. "
                 "Dochter: 06-12345678.")
DRIVER_CONCERN = ("Ik rij voor de vrijwillige vervoersdienst. Een oudere meneer aan de "
                  "Soesterweg laat al weken niemand binnen, de brievenbus puilt uit en hij "
                  "zegt dat hij niet meer eet.")


@dataclass
class AmersfoortCast(Cast):
    """The network's organisations: the coordinator, five core partners (two of them
    informal), a housing corporation, a GP's practice and the municipality's privacy
    officer in the shell."""

    welzijn: Org = org("welzijn", "Welzijn Amersfoort", "opbouwwerker-soesterkwartier")
    maatschappelijk_werk: Org = org("maatschappelijk-werk", "Maatschappelijk Werk Amersfoort",
                                    "mw-casemanager-1")
    thuiszorg: Org = org("thuiszorg", "Thuiszorg Amersfoort", "wijkverpleging-1")
    mee: Org = org("mee", "MEE Amersfoort", "clientondersteuner-1")
    bezoekwerk: Org = org("bezoekwerk", "Kerkelijk Bezoekwerk Soesterkwartier",
                          "bezoekwerk-coordinator")
    vrijwilligers: Org = org("vrijwilligers", "Vrijwilligerscentrale Amersfoort",
                             "vrijwilligers-1")
    woningcorporatie: Org = org("woningcorporatie", "Woningcorporatie Eemland Wonen",
                                "huismeester-1")
    huisarts: Org = org("huisarts", "Huisartsenpraktijk Soesterkwartier",
                        "praktijkondersteuner-1")
    privacy: Org = org("privacy", "Privacyfunctionaris Gemeente Amersfoort",
                       "privacy-officer-1")


@dataclass
class Soesterkwartier(Scene):
    """The Amersfoort practice as it is played: its cast and the ids its acts make."""

    c: AmersfoortCast = field(default_factory=AmersfoortCast)
    nb: str = ""
    consult_case: str = ""
    man_case: str = ""
    church_grant: str = ""          # the visiting service's grant of his name and address
    rb: str = ""                    # the Buurtnetwerk 55+ Randenbroek/Schuilenburg
    former_case: str = ""           # his case there, from before he moved


async def create_homes(s: Soesterkwartier) -> None:
    """Every organisation creates its own home: its key pair, its keystore under the
    passphrase, its local state.  Nobody holds anyone else's keys."""
    s.t.section("0. Every organisation creates its own home: keys, keystore, local state")
    await s.stage.create_homes("amersfoort", s.c.all())
    s.stage.keep_secret("the man's name, street or BSN",
                        "Hendrik", "de Vries", "Soesterweg", "111222333")
    s.stage.keep_secret("the anonymous layer's text or the driver's concern",
                        str(MAN_INTAKE["summary"])[:30], str(CONSULT_INTAKE["summary"])[:30],
                        DRIVER_CONCERN[:30])


async def found_neighbourhood(s: Soesterkwartier) -> None:
    """Act 1: Welzijn Amersfoort founds the network on the server fingerprint the operator
    gave it, and admits eight partners: five to its core, three to its shell (report
    §4.2.2, §4.2.3).

    Every partner checks the coordinator's fingerprint it heard aloud; the coordinator
    checks each partner's.  A swapped bundle, a wrong server fingerprint, a workstation
    trusting another coordinator and an older covenant text are all refused."""
    t, w = s.t, s.c.welzijn
    t.section(f"1. {NEIGHBOURHOOD}: the coordinator founds the network")
    t.note(f"the server's operator gives the server fingerprint that `schakel server init` "
           f"printed: {s.server_fingerprint}", w.name)
    await t.refused("founding the network with a server fingerprint of one wrong digit "
                    "(another server's keys would not have it either)",
                    lambda: w.p.networks.create(
                        name=NEIGHBOURHOOD, kind="neighbourhood",
                        covenant=COVENANT,
                        server_fingerprint=_one_digit_off(s.server_fingerprint)),
                    code="untrusted_key")
    s.nb = await w.p.networks.create(name=NEIGHBOURHOOD, kind="neighbourhood",
                                    covenant=COVENANT,
                                    server_fingerprint=s.server_fingerprint)
    s.stage.founded(s.nb, NEIGHBOURHOOD, COVENANT, coordinator=w, auditor=s.c.privacy)
    t.note(f"network {s.nb}: the server's log and gate keys, checked against the "
           f"server fingerprint, are in its signed genesis", w.name)
    t.note(f"reads its fingerprint aloud at the covenant ceremony: {w.p.fingerprint}", w.name)
    t.note("the policy: consent is decisive; informal partners get at most name, address "
           "and contact; no bemoeizorg", w.name)
    await t.refused("a bundle swapped on its way to the coordinator (the fingerprint read "
                    "aloud does not match)",
                    lambda: w.p.networks.admit(s.nb, s.c.mee.p.bundle(), ring="core",
                                      party="formal",
                                      fingerprint=s.c.thuiszorg.p.fingerprint),
                    code="untrusted_key")
    for o, ring, party, roles in (
            (s.c.maatschappelijk_werk, "core", "formal", ("professional-secrecy",)),
            (s.c.thuiszorg, "core", "formal", ()),
            (s.c.mee, "core", "formal", ()),
            (s.c.bezoekwerk, "core", "informal", ()),
            (s.c.vrijwilligers, "core", "informal", ()),
            (s.c.woningcorporatie, "shell", "formal", ()),
            (s.c.privacy, "shell", "formal", ("auditor",))):
        await s.join(s.nb, w, o, ring=ring, party=party, roles=roles)
    await s.join(s.nb, w, s.c.huisarts, ring="shell", party="formal",
                 before_trust=lambda: _wrong_fingerprint(s))
    await w.p.sync(s.nb)
    members = await t.holds("the coordinator lists the members, each verified up to its key",
                            lambda: w.p.networks.members(s.nb))
    if members is not None:
        core = sum(1 for m in members if m["ring"] == "core" and m["current"])
        shell = sum(1 for m in members if m["ring"] == "shell" and m["current"])
        t.check((core, shell) == (6, 3), f"{core} core partners (the coordinator included) and "
                                         f"{shell} shell partners")
    await t.refused("the volunteer centre tries to accept an older covenant text",
                    lambda: s.c.vrijwilligers.p.networks.accept_covenant(
                        s.nb, COVENANT + " (concept 2012)"),
                    code="context_mismatch")


def _one_digit_off(fingerprint: str) -> str:
    """``fingerprint`` with its last digit changed: a misheard or another server's."""
    return fingerprint[:-1] + str((int(fingerprint[-1]) + 1) % 10)


async def _wrong_fingerprint(s: Soesterkwartier) -> None:
    """A second workstation of the GP's practice (a copy of its home, before it trusted
    the network) is configured with the wrong fingerprint — MEE's, a real one of
    another organisation.  Its client must refuse the genesis the server hands it, and
    must refuse to swap the anchor afterwards."""
    t = s.t
    copy = s.homes / "amersfoort" / "huisarts-tweede-werkplek"
    shutil.copytree(s.c.huisarts.home, copy)
    second = await Partner.open(copy, PASSPHRASE)
    try:
        second.trust(s.nb, s.c.mee.p.fingerprint)
        await t.refused("a workstation configured with a wrong fingerprint (MEE's, a real "
                        "one of another organisation) syncs the network", lambda: second.sync(s.nb),
                        reason="genesis-untrusted")
        await t.refused("...nor can it quietly replace the anchor afterwards",
                        lambda: second.trust(s.nb, s.c.welzijn.p.fingerprint),
                        code="untrusted_key")
    finally:
        await second.close()
        shutil.rmtree(copy, ignore_errors=True)


async def consult(s: Soesterkwartier) -> None:
    """Act 2: home care asks a consultative question, naming nobody (report §4.3.2).

    Every core partner reads it, the informal church visiting service too; MEE answers.
    The GP's practice in the shell reads it only once the coordinator shares it."""
    t = s.t
    t.section("2. An anonymous consult: home care asks the network for advice")
    s.consult_case = await t.holds(
        "home care posts a consultative question (anonymous layer only, no identity)",
        lambda: s.c.thuiszorg.p.cases.consult(s.nb, CONSULT_INTAKE))
    await s.sync(s.nb, s.c.bezoekwerk, s.c.mee)
    view = s.readable_case(s.c.bezoekwerk, s.nb, s.consult_case)
    t.check(view is not None and view.kind == "consult" and view.state.get("summary")
            == CONSULT_INTAKE["summary"],
            "the church visiting service (informal, core) reads the question")
    if view is not None:
        t.note(f"reads: {view.state['age_band']}, {', '.join(view.state['domains'])}, "
               f"\"{short(view.state['summary'], 70)}\"", s.c.bezoekwerk.name)
    await t.holds("MEE answers on the consult with a note",
                  lambda: s.c.mee.p.cases.add_event(s.nb, s.consult_case, {
                      "kind": "note", "text": "Via de huisarts een 'toevallig' huisbezoek "
                                              "van de praktijkondersteuner plannen."}))
    await t.holds("the coordinator shares the consult with the GP's practice (shell)",
                  lambda: s.c.welzijn.p.cases.share(s.nb, s.consult_case,
                                              s.c.huisarts.p.key_id,
                                              reason="medicatievraag"))
    await s.sync(s.nb, s.c.huisarts)
    view = s.readable_case(s.c.huisarts, s.nb, s.consult_case)
    t.check(view is not None and len(view.state.get("notes", [])) == 1,
            "the GP's practice now reads the consult and MEE's note")


async def driver_signal(s: Soesterkwartier) -> None:
    """Act 3: a volunteer driver, with no account and no keys, signals a concern with the
    network's card and the coordinator's fingerprint on its flyer (report §4.5.2).

    The coordinator reads the concern but not who sent it, and neither does the server;
    the church visiting service cannot list signals at all.  The driver reads back the
    coordinator's answer with his receipt, and learns nothing about the man."""
    t, w = s.t, s.c.welzijn
    t.section("3. A volunteer driver's anonymous signal, and the feedback he reads back")
    published = await t.holds(
        "the coordinator publishes the network's card: intake keys, server, who may signal",
        lambda: w.p.cards.publish(s.nb, valid_until=w.p.session.now() + timedelta(days=365),
                                  signaller_kinds=("resident", "neighbour", "volunteer-driver")))
    if published is None:
        return
    card = await t.holds("the driver's client checks the card against the coordinator's "
                         "fingerprint on the flyer",
                         lambda: read_card(published, fingerprint=str(w.p.fingerprint)))
    t.note("has no keys and no account: only the network's card and the coordinator's "
           "fingerprint on the flyer", "volunteer driver")
    if card is None:
        return
    ticket = await t.holds(
        "the driver sends an anonymous signal, sealed to the coordinator; he keeps a receipt",
        lambda: anonymous_signal(card, DRIVER_CONCERN, urgency="medium",
                                 signaller_kind="volunteer-driver"))
    signals = await t.holds("the coordinator opens its signals",
                            lambda: w.p.signals.received(s.nb))
    mine = [m for m in signals or [] if ticket is not None and m.signal == ticket.signal]
    t.check(bool(mine) and mine[0].content.get("concern") == DRIVER_CONCERN
            and mine[0].sender is None,
            "the coordinator reads the concern; the server and the coordinator do not know "
            "who sent it")
    await t.refused("the church visiting service tries to list the network's signals",
                    lambda: s.c.bezoekwerk.p.signals.received(s.nb), error=ProtocolError)
    if ticket is None:
        return
    await t.holds("the coordinator answers: taken up, with a message sealed to the driver",
                  lambda: w.p.signals.feedback(s.nb, ticket.signal, "taken-up",
                                       "Dank u wel! Maatschappelijk werk gaat langs; u hoort "
                                       "niets over hem, maar er wordt voor hem gezorgd."))
    status = await t.holds("the driver reads the status with his receipt",
                           lambda: anonymous_status(ticket, card))
    if status is not None:
        t.check(status.status == "taken-up" and any("gaat langs" in m for m in status.messages),
                f"he sees \"{status.status}\" and the coordinator's message")


async def elderly_man(s: Soesterkwartier) -> None:
    """Act 4: social work brings in an isolated man, and with his consent his name and
    address reach the church visiting service that will visit him (report §4.3.2, §4.4.1).

    The PII guard stops his name and his daughter's number in the anonymous layer before
    anything is sent.  The visiting service reads the anonymous layer, then his name and
    address once granted and released, never his BSN: its own client refuses that grant,
    and so does the server, which audits the denial.  The coordinator who grants reads
    nothing; the GP's practice in the shell holds nothing of a case not shared with it.
    Home care's formal help must say, in words, why informal help is not enough."""
    t, mw, church = s.t, s.c.maatschappelijk_werk, s.c.bezoekwerk
    t.section("4. Social work brings in the isolated man, with his consent")
    draft = {**MAN_INTAKE, "summary": DRAFT_SUMMARY}
    await s.sync(s.nb, s.c.welzijn)
    before = len(s.c.welzijn.p.cases.all(s.nb))
    refusal = await t.refused("the PII guard reads the anonymous layer before anything is "
                              "sent", lambda: mw.p.cases.create(s.nb, draft, identity=MAN),
                              code="policy_violation")
    _show_where(s, refusal, DRAFT_SUMMARY, mw)
    await s.sync(s.nb, s.c.welzijn)
    t.check(len(s.c.welzijn.p.cases.all(s.nb)) == before,
            "nothing reached the server: the coordinator's sync finds no new case")
    t.note("writes \"woont alleen\" without his name and moves the number out of the story "
           "(both are in the sealed identity)", mw.name)
    s.man_case = await t.holds(
        "the case is created: anonymous intake, identity sealed per class",
        lambda: mw.p.cases.create(s.nb, MAN_INTAKE, identity=MAN))
    await s.sync(s.nb, church, s.c.thuiszorg, s.c.huisarts, s.c.welzijn)
    view = s.readable_case(church, s.nb, s.man_case)
    t.check(view is not None and view.state.get("age_band") == "75-84",
            "the church visiting service reads the anonymous layer")
    if view is not None:
        t.note(f"reads: {view.state['age_band']}, {view.state['neighbourhood']}, "
               f"{', '.join(view.state['domains'])}, {view.state['care_status']}", church.name)
    t.check(not church.p.identity.get(s.nb, s.man_case),
            "...but not who he is: it holds no identity before a release")
    await t.holds("it offers a weekly visit (an informal action on the case)",
                  lambda: _church_action(s))
    await _formal_help(s, s.c.thuiszorg)
    t.check(s.readable_case(s.c.huisarts, s.nb, s.man_case) is None,
            "the GP's practice (shell) holds nothing of a case that was not shared with it")
    await t.refused("the GP's practice asks the server for the case anyway",
                    lambda: s.c.huisarts.p.session.conn.get(
                        f"/v1/networks/{s.nb}/cases/{s.man_case}"), code="forbidden")

    consent = await t.holds(
        "he agrees: social work records his consent (name, address, BSN; formal and "
        "informal partners; one year)",
        lambda: mw.p.disclosure.record_consent(
            s.nb, s.man_case, classes=("name", "address", "official"),
            parties=("formal", "informal"), purpose="bezoek en afstemming van zorg",
            valid_days=365, evidence=b"toestemmingsformulier, ondertekend 2026"))
    grant = await t.holds("the coordinator grants the visiting service name and address",
                          lambda: s.c.welzijn.p.disclosure.grant(
                              s.nb, s.man_case, consent=consent,
                              grantee=church.p.key_id, classes=("name", "address"),
                              reason="wekelijks bezoek"))
    s.church_grant = grant or ""
    released = await t.holds("the visiting service releases them (audit entry first, "
                             "receipt verified)", lambda: church.p.disclosure.release(s.nb, grant))
    if released is not None:
        s.releases.append("consent")
        name, address = released.classes.get("name", {}), released.classes.get("address", {})
        t.check(name == MAN["name"] and address == MAN["address"],
                f"it now reads: {name.get('given_names')} {name.get('family_name')}, "
                f"{address.get('street')} {address.get('house_number')}")
    t.check("official" not in church.p.identity.get(s.nb, s.man_case),
            "it does not hold his BSN or date of birth")
    t.check(not s.c.welzijn.p.identity.get(s.nb, s.man_case),
            "the coordinator granted it but holds no identity itself: granting is not reading")
    await t.refused(
        "the coordinator grants the visiting service his BSN too (its own client says no)",
        lambda: s.c.welzijn.p.disclosure.grant(s.nb, s.man_case, consent=consent,
                                    grantee=church.p.key_id, classes=("official",),
                                    reason="aanvraag voorziening"),
        reason="informal-class-not-allowed")
    if consent is not None:
        await _server_refuses_official(s, consent)


def _show_where(s: Soesterkwartier, refusal: BaseException | None, text: str, writer: Org) -> None:
    """What the refusal shows the writer: each finding's kind and place, and the
    summary with placeholders (docs/protocol.md §8.2)."""
    details = getattr(refusal, "details", None) or {}
    found = [pii.Finding(kind=f["kind"], start=f["start"], end=f["end"])
             for f in details.get("findings") or [] if f.get("path") == "summary"]
    for f in found:
        s.t.note(f"is shown: {f.label} at \"{text[f.start:f.end]}\" \u2192 "
                 f"{f.placeholder}", writer.name)
    rewrite = pii.redact(text, found) if found else text
    s.t.check(bool(found) and "06-12345678" not in rewrite and "[telefoon]" in rewrite,
              f"the refusal says where and what, and suggests: \"{short(rewrite, 90)}\"")


async def _church_action(s: Soesterkwartier) -> int:
    return await s.c.bezoekwerk.p.cases.add_event(s.nb, s.man_case, {
        "kind": "action", "description": "Wekelijks bezoek door een vrijwilliger.",
        "help_type": "informal", "relation": "complementary",
        "by": s.c.bezoekwerk.p.key_id})


async def _formal_help(s: Soesterkwartier, care: Org) -> None:
    """Informal where possible, professional where necessary: a formal action says why
    informal help is not possible, in words, and every member's client judges it again
    when it reads the case (docs/protocol.md §7)."""
    t = s.t
    nursing = {"kind": "action", "description": "Wijkverpleging komt twee keer per week.",
               "help_type": "formal", "relation": "complementary", "by": care.p.key_id}
    await t.refused("home care adds formal help with 'nvt' as the reason informal help is "
                    "not possible",
                    lambda: care.p.cases.add_event(s.nb, s.man_case,
                                             {**nursing, "informal_not_possible": "nvt"}),
                    reason="formal-action-reason-says-nothing")
    await t.holds("...and with the reason in words (an open leg wound needs a nurse)",
                  lambda: care.p.cases.add_event(s.nb, s.man_case, {
                      **nursing, "informal_not_possible": "Open been vraagt wondzorg door "
                                                          "een verpleegkundige."}))
    await s.sync(s.nb, s.c.welzijn)
    view = s.readable_case(s.c.welzijn, s.nb, s.man_case)
    t.check(view is not None and len(view.state["actions"]) == 2 and not view.breaches,
            "the coordinator's client judges both actions again as it reads the case: "
            "informal and formal help combined, no policy breach")


async def _server_refuses_official(s: Soesterkwartier, consent: str) -> None:
    """The client refused early and sent nothing.  A client that skips the check (an
    old version, a hostile one) meets the server's own ``policy.decide``, which
    writes the denial to the audit log before it answers."""
    t, w = s.t, s.c.welzijn
    grant = Grant(network=s.nb, grant=b64e(random_bytes(16)), case=s.man_case,
                  grantee=s.c.bezoekwerk.p.key_id, classes=("official",),
                  basis=GrantBasis(consent=consent),
                  acting_user=w.p.acting_user, at=format_timestamp(w.p.session.now()),
                  reason="aanvraag voorziening").sign(w.p.session.keys.signer)
    refusal = await t.refused(
        "a client that skips that check sends the grant anyway: the server refuses it too",
        lambda: w.p.session.conn.post(f"/v1/networks/{s.nb}/grants", {"grant": grant}),
        reason="informal-class-not-allowed")
    index = (getattr(refusal, "details", None) or {}).get("audit_index")
    entries = await t.holds("the coordinator reads the audit log, each entry verified",
                            lambda: w.p.audit.entries(s.nb))
    denial = [e for e in entries or [] if e.get("index") == index]
    t.check(bool(denial) and denial[0]["entry"].get("action") == "deny"
            and denial[0]["entry"].get("reason") == "informal-class-not-allowed",
            f"the refusal is audit entry {index}: action deny, reason "
            f"informal-class-not-allowed, written before the answer")


async def access_report(s: Soesterkwartier) -> None:
    """Act 5: the privacy officer reads the man's subject access report (the visiting
    service's release, the refused BSN); the visiting service's own state file keeps the
    name it was given encrypted."""
    t, a = s.t, s.c.privacy
    t.section("5. The privacy officer reads the man's subject access report")
    report = await t.holds("the subject access report of the man's case",
                           lambda: a.p.reports.access(s.nb, s.man_case))
    if report is not None:
        for line in str(report.get("text", "")).splitlines()[:24]:
            t.say(f"      | {line}")
        releases, denials = report.get("releases", []), report.get("denials", [])
        t.check(any(r.get("partner") == s.c.bezoekwerk.p.key_id for r in releases)
                and any(d.get("reason") == "informal-class-not-allowed" for d in denials),
                "it lists the visiting service's release and the refused BSN")
    state = b"".join(p.read_bytes() for p in s.c.bezoekwerk.home.glob("state.db*"))
    held = s.c.bezoekwerk.p.identity.get(s.nb, s.man_case)
    t.check(bool(held) and b"Hendrik" not in state,
            "the visiting service's own state file keeps his name encrypted too")


def instructions(s: Soesterkwartier) -> str:
    """Commands to try against the Amersfoort network the demo left running."""
    nb, case = s.nb, s.man_case
    return f"""
    # Amersfoort, {NEIGHBOURHOOD}: the coordinator
    export SCHAKEL_HOME={s.c.welzijn.home}
    schakel whoami
    schakel member list {nb}
    schakel case list {nb}
    schakel case show {nb} {case}
    schakel signal list {nb}
    schakel audit verify {nb}
    schakel audit report {nb} {case}
    schakel report {nb}

    # ...which also coordinates {amersfoort_rights.RANDENBROEK}
    schakel case list {s.rb}
    schakel audit log {s.rb}
    # his access request again (the BSN at the prompt: {MAN["official"]["bsn"]}): after the
    # erasure no case is found in either network
    schakel report access --birth-date {MAN["official"]["date_of_birth"]}

    # the church visiting service: his name and address were released to it, corrected,
    # and erased at his request; it holds none now
    export SCHAKEL_HOME={s.c.bezoekwerk.home}
    schakel case identity {nb} {case}

    # the GP's practice (shell): only the consult shared with it
    export SCHAKEL_HOME={s.c.huisarts.home}
    schakel case list {nb}
"""


def recap(s: Soesterkwartier) -> list[str]:
    w = s.c.welzijn
    networks = [n for n in (s.nb, s.rb) if n]
    cases = sum(len(w.p.cases.all(n)) for n in networks) if w.partner else 0
    return [f"Amersfoort: {len(s.c.all())} organisations, {len(networks)} "
            f"network{'' if len(networks) == 1 else 's'} with one regie, {cases} cases and "
            f"consults"]


#: What the report says of the Buurtnetwerken 55+ Amersfoort, narrated.
REPORT = (
    "Amersfoort has three Buurtnetwerken 55+ (Soesterkwartier, Randenbroek/Schuilenburg, "
    "Liendert/Rustenburg), neighbourhood networks for residents over 55 (report §4.1, "
    "schema 2). Welfare work coordinates; social work, elderly advisers, home care and "
    "volunteer organisations form an open core.",
    "The report calls Amersfoort the exception for the many volunteers in its core: "
    "\"ruime vertegenwoordiging van dit type vrijwilligers in het kernoverleg\" (§4.2.3); "
    "a church's diaconal worker and a visiting service sit at the table with professionals.",
    "Cases are discussed by a format, \"niet met naam en toenaam\"; informal helpers ask "
    "anonymous consultative questions (§4.3.1, §4.3.2). The problems are silent ones, of people "
    "who miss or avoid care, and their consent is decisive (§4.2.1).",
    "Played here: the Soesterkwartier network with a consult, a volunteer driver's "
    "signal and the feedback he reads back, an isolated man brought in with his consent, "
    "his name and address to the church visiting service and his BSN refused to it.",
    "Two opbouwwerkers of Stichting Welzijn Amersfoort coordinate the Soesterkwartier and "
    "Randenbroek/Schuilenburg networks (appendix 1): one regie, so one contact point for "
    "the man's rights since March 2025 (Besluit gegevensverwerking door "
    "samenwerkingsverbanden). He asks it what both networks hold about him, has his "
    "address corrected, and in the end has his identity erased.",
)

PRACTICE = Practice(
    name="amersfoort",
    title=f"Amersfoort: {NEIGHBOURHOOD}",
    report=REPORT,
    scene=Soesterkwartier,
    acts=(create_homes, found_neighbourhood, consult, driver_signal, elderly_man,
          access_report, *amersfoort_rights.ACTS),
    instructions=instructions,
    recap=recap,
)


__all__ = ["PRACTICE", "AmersfoortCast", "Soesterkwartier", "NEIGHBOURHOOD", "MAN"]
