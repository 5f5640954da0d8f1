"""Breda: Stichting WIJ Breda and its signalling network in the making (report §3.4,
§4.1 schema 2, §4.4.1, §4.4.2, annex 1), played by ``schakel demo --practice breda``.

One organisation, one key, one seat in the core, and two kinds of people: paid
professionals and volunteers who work as equals ("vrijwilligers waar het kan en
beroepskrachten waar het moet").  The coordinator admits WIJ as a formal party with
``professional-secrecy`` and lists its acting users, each with a party
(``membership.users``, protocol.md §N.4; ADR 0032).  WIJ's own system opens a session of
its home for each person (``Partner.open(..., acting_user=...)``): the acting user's
party decides what the server releases and what the library shows.  A woman's consent
covers her name, address and BSN for WIJ; the volunteer's session is refused the BSN (an
audited denial, marked informal) while the professional's session receives it; the
volunteer then sees her name and address and is told the BSN is withheld; an intern the
membership does not list is refused, with the advice the command line gives.  The
privacy officer's access report names each line's user and party.

Per-user enforcement is not a cryptographic boundary: WIJ's key opens what is released to
WIJ (ADR 0032 §4).  The report names WIJ co-coordinator of a network still being founded;
here the network has a coordinator of its own so that WIJ sits in its core as one member
with its people.  The coordinator's and the home care's names, the woman, her address and
her BSN are invented; the acting users' ids are WIJ's system's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schakel.cli.commands.refusal import role_in, who_can_act
from schakel.cli.demo.stage import PASSPHRASE, Cast, Org, Practice, Scene, org
from schakel.cli.demo.tally import short
from schakel.cli.main import REASONS
from schakel.client.errors import ServerRefused
from schakel.client.partner import Partner
from schakel.client.wire import new_id
from schakel.protocol.errors import PolicyViolation

NETWORK = "Signaleringsnetwerk Breda"
COVENANT = ("Convenant Signaleringsnetwerk Breda. Vrijwillig waar het kan, professioneel waar "
            "het moet. Elke organisatie laat haar mensen onder hun eigen naam werken; wat een "
            "vrijwilliger niet nodig heeft, krijgt een vrijwilliger niet.")
#: WIJ's people as its system names them: a paid professional, a volunteer, and an
#: intern the coordinator has not listed (yet).
PROFESSIONAL, VOLUNTEER, INTERN = "wij-beroepskracht-1", "wij-vrijwilliger-7", "wij-stagiair-2"
USERS = {PROFESSIONAL: "formal", VOLUNTEER: "informal"}

#: The widow home care brings in (invented; the BSN passes the elfproef and is nobody's).
WOMAN = {"name": {"given_names": "Truus", "family_name": "Hoogendijk"},
         "address": {"street": "Haagweg", "house_number": "212", "postcode": "4814 GH",
                     "city": "Breda"},
         "official": {"bsn": "123456782", "date_of_birth": "1944-11-23"}}
INTAKE = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Breda-Noord",
          "domains": ["financial", "loneliness"], "severity": "medium",
          "care_status": "misses-care", "source": "partner", "complex": False,
          "summary": "Sinds haar man overleed stapelt de post zich op: aanmaningen en een "
                     "formulier voor kwijtschelding. Zij wil hulp bij de papieren en iemand "
                     "om mee te praten."}
VISIT = "Een vrijwilliger komt elke week langs voor de post en een kop koffie."
APPLICATION = {"description": "Een beroepskracht vraagt kwijtschelding van de gemeentelijke "
                              "belastingen aan.",
               "informal_not_possible": "De aanvraag vraagt haar BSN en inkomensgegevens; "
                                        "die krijgt alleen een beroepskracht."}


@dataclass
class BredaCast(Cast):
    """The coordinator, WIJ (formal, professional-secrecy, its people listed) and home care
    in the core; the privacy officer in the shell.  WIJ's home is configured for its
    professional; the volunteer and the intern act through sessions of that home."""

    regie: Org = org("regie", "Netwerkregie Signaleringsnetwerk Breda", "netwerkregisseur-1")
    wij: Org = org("wij", "Stichting WIJ Breda", PROFESSIONAL)
    thuiszorg: Org = org("thuiszorg", "Thuiszorg Breda-Noord", "wijkverpleegkundige-1")
    privacy: Org = org("privacy", "Privacyfunctionaris Gemeente Breda", "privacy-officer-1")


@dataclass
class Wij(Scene):
    """The Breda practice as it is played: its cast and the ids its acts make."""

    c: BredaCast = field(default_factory=BredaCast)
    nb: str = ""
    case: str = ""
    grant: str = ""

    async def session(self, acting_user: str) -> Partner:
        """A session of WIJ's home for one of its people (WIJ's system opens one per
        person who logs in; the home's keys, this person's acting user)."""
        return await Partner.open(self.c.wij.home, PASSPHRASE, acting_user=acting_user)


async def create_homes(s: Wij) -> None:
    s.t.section("0. Every organisation creates its own home; WIJ has one for all its people")
    await s.stage.create_homes("breda", s.c.all())
    s.stage.keep_secret("the woman's name, street or BSN",
                        "Hoogendijk", "Haagweg", "123456782")
    s.stage.keep_secret("the woman's intake or WIJ's actions",
                        str(INTAKE["summary"])[:30], VISIT[:30],
                        APPLICATION["informal_not_possible"][:30])


async def found(s: Wij) -> None:
    """Act 1: the coordinator founds the network and admits WIJ as one formal member with
    its people listed, each in a party; the verified member list shows them."""
    t, regie, wij = s.t, s.c.regie, s.c.wij
    t.section(f"1. {NETWORK}: one seat for WIJ, its professional and its volunteer listed")
    s.nb = await regie.p.networks.create(name=NETWORK, kind="neighbourhood", covenant=COVENANT,
                                         server_fingerprint=s.server_fingerprint)
    s.stage.founded(s.nb, NETWORK, COVENANT, coordinator=regie, auditor=s.c.privacy)
    t.note(f"network {s.nb}; fingerprint {regie.p.fingerprint}", regie.name)
    await s.join(s.nb, regie, wij, ring="core", party="formal",
                 roles=("professional-secrecy",), users=USERS)
    await s.join(s.nb, regie, s.c.thuiszorg, ring="core", party="formal")
    await s.join(s.nb, regie, s.c.privacy, ring="shell", party="formal", roles=("auditor",))
    await s.sync(s.nb, regie)
    listed = {m["key_id"]: m for m in regie.p.networks.members(s.nb)}
    t.check(listed.get(wij.p.key_id, {}).get("users") == USERS,
            f"the verified member list shows WIJ's users: {PROFESSIONAL} formal, "
            f"{VOLUNTEER} informal")


async def consent(s: Wij) -> None:
    """Act 2: home care brings in a widow whose post piles up; she consents to WIJ
    receiving her name, address and BSN; the coordinator grants WIJ all three (WIJ may
    receive them: formal, with professional-secrecy).  WIJ's volunteer and professional
    record their help: informal where possible, formal where necessary, with the reason."""
    t, care, regie, wij = s.t, s.c.thuiszorg, s.c.regie, s.c.wij
    t.section("2. Home care brings in a widow; WIJ is granted her name, address and BSN")
    s.case = await t.holds("home care brings her in: anonymous intake, identity sealed per "
                           "class", lambda: care.p.cases.create(s.nb, INTAKE, identity=WOMAN))
    given = await t.holds(
        "she agrees: home care records her consent (name, address, BSN; to WIJ; for her "
        "papers and an application)",
        lambda: care.p.disclosure.record_consent(
            s.nb, s.case, classes=("name", "address", "official"), partners=(wij.p.key_id,),
            purpose="hulp bij de administratie en een aanvraag kwijtschelding",
            valid_days=180, evidence=b"toestemmingsformulier, ondertekend"))
    await regie.p.sync(s.nb)
    s.grant = await t.holds("the coordinator grants WIJ the three classes (its client decides "
                            "for the organisation: formal, professional-secrecy)",
                            lambda: regie.p.disclosure.grant(
                                s.nb, s.case, consent=given, grantee=wij.p.key_id,
                                classes=("name", "address", "official"),
                                reason="vrijwilliger voor de post, beroepskracht voor de aanvraag"))
    async with await s.session(VOLUNTEER) as volunteer:
        await volunteer.sync(s.nb)
        await t.holds(f"the volunteer ({VOLUNTEER}) records the weekly visit: informal help",
                      lambda: volunteer.cases.add_event(s.nb, s.case, {
                          "kind": "action", "description": VISIT, "help_type": "informal",
                          "relation": "complementary", "by": wij.p.key_id}))
    await wij.p.sync(s.nb)
    await t.holds(f"the professional ({PROFESSIONAL}) records the application: formal help, "
                  f"with the reason informal help cannot do it",
                  lambda: wij.p.cases.add_event(s.nb, s.case, {
                      "kind": "action", **APPLICATION, "help_type": "formal",
                      "relation": "complementary", "by": wij.p.key_id}))
    await regie.p.sync(s.nb)
    view = s.readable_case(regie, s.nb, s.case)
    t.check(view is not None and [a.get("help_type") for a in view.state["actions"]]
            == ["informal", "formal"] and not view.breaches,
            "the coordinator reads both actions of WIJ: informal where it can, formal where "
            "it must, no policy breach")


async def per_user(s: Wij) -> None:
    """Act 3: the same grant asked for by two people of WIJ.  The volunteer's session is
    refused (an audited denial that names the informal party); the professional's session
    receives all three classes; the volunteer's session then shows the name and address
    and says the BSN is withheld."""
    t, wij = s.t, s.c.wij
    t.section("3. One organisation, two people: the acting user's party decides")
    async with await s.session(VOLUNTEER) as volunteer:
        refusal = await t.refused(f"the volunteer's session asks for the grant (it holds the "
                                  f"BSN)", lambda: volunteer.disclosure.release(s.nb, s.grant),
                                  reason="informal-class-not-allowed", error=ServerRefused)
    index = (getattr(refusal, "details", None) or {}).get("audit_index")
    entries = await s.c.regie.p.audit.entries(s.nb)
    denial = next((e["entry"] for e in entries if e["index"] == index), {})
    t.check(denial.get("action") == "deny"
            and denial.get("reason") == "informal-class-not-allowed"
            and denial.get("actor", {}).get("acting_user") == VOLUNTEER
            and denial.get("actor", {}).get("party") == "informal",
            f"the refusal is audit entry {index}: deny, {VOLUNTEER}, party informal",
            why=f"{denial.get('actor')}")
    released = await t.holds(f"the professional's session ({PROFESSIONAL}) asks for the same "
                             f"grant: released, receipt verified",
                             lambda: wij.p.disclosure.release(s.nb, s.grant))
    if released is not None:
        s.releases.append("consent")
        t.check(released.classes == WOMAN and wij.p.identity.get(s.nb, s.case) == WOMAN,
                "the professional's session reads her name, address and BSN")
    async with await s.session(VOLUNTEER) as volunteer:
        shown = volunteer.identity.get(s.nb, s.case)
        withheld = volunteer.identity.withheld(s.nb, s.case)
    name, address = shown.get("name", {}), shown.get("address", {})
    t.check(set(shown) == {"name", "address"} and name == WOMAN["name"],
            f"the volunteer's session shows {name.get('given_names')} {name.get('family_name')}, "
            f"{address.get('street')} {address.get('house_number')}: the informal classes")
    t.check(withheld == ["official"],
            f"...and withholds the rest, as the command line says it: \"niet getoond / "
            f"withheld for your party (informal: vrijwilliger): {', '.join(withheld)}\"")


async def unlisted(s: Wij) -> None:
    """Act 4: an intern of WIJ whom the coordinator has not listed.  The library refuses
    before sending, with the command line's advice; the server refuses the intern's
    requests; a client that skips the check meets an audited denial."""
    t = s.t
    t.section("4. A person the membership does not list")
    async with await s.session(INTERN) as intern:
        refusal = await t.refused(f"the intern's session ({INTERN}) asks for the grant",
                                  lambda: intern.disclosure.release(s.nb, s.grant),
                                  reason="acting-user-not-listed", error=PolicyViolation)
        role = role_in(intern, s.nb)
        advice = [f"reason: acting-user-not-listed: {REASONS['acting-user-not-listed']}",
                  f"who can act: {who_can_act(refusal, role) if refusal else ''}"]
        for line in advice:
            t.say(f"      {line}")
        t.check(bool(refusal) and (refusal.details or {}).get("early") is True
                and "beroepskrachten" in advice[0] and "vrijwilligers" in advice[1]
                and "coördinator" in advice[1] and "ask them to add you" in advice[1],
                "nothing was sent; the advice: the coördinator lists WIJ's beroepskrachten and "
                "vrijwilligers, ask them")
        await t.refused("the intern's session syncs the network: the server refuses it too",
                        lambda: intern.sync(s.nb), reason="acting-user-not-listed",
                        code="forbidden")
        skipped = await t.refused(
            "a client that skips the check sends the release anyway: an audited denial",
            lambda: intern.session.conn.post(f"/v1/networks/{s.nb}/releases",
                                             {"grant": s.grant, "release": new_id()}),
            reason="acting-user-not-listed", code="policy_violation")
    index = (getattr(skipped, "details", None) or {}).get("audit_index")
    t.check(isinstance(index, int), f"...written to the audit log as entry {index}")


async def access_report(s: Wij) -> None:
    """Act 5: the privacy officer reads the woman's access report: every line names WIJ's
    person and, for a listed person, the party they acted in."""
    t, wij = s.t, s.c.wij
    t.section("5. The privacy officer reads her access report: who, and as what")
    report = await t.holds("the subject access report of her case, checked against the "
                           "verified log", lambda: s.c.privacy.p.reports.access(s.nb, s.case))
    if report is None:
        return
    for line in str(report.get("text", "")).splitlines()[5:18]:
        t.say(f"      | {line}")
    people = {(kind, item.get("acting_user"), item.get("party"), item.get("reason"))
              for kind in ("releases", "denials") for item in report.get(kind, [])
              if item.get("partner") == wij.p.key_id}
    t.check(people == {("releases", PROFESSIONAL, "formal", None),
                       ("denials", VOLUNTEER, "informal", "informal-class-not-allowed"),
                       ("denials", INTERN, None, "acting-user-not-listed")},
            "its lines of WIJ: the professional's release (formal), the volunteer's refusal "
            "(informal), the intern's refusal (listed in no party)", why=str(sorted(
                people, key=str)))
    text = str(report.get("text", ""))
    t.check(f"user {PROFESSIONAL} (formeel / formal)" in text
            and f"user {VOLUNTEER} (informeel / informal)" in text,
            "the text names each person with their party")


def instructions(s: Wij) -> str:
    """Commands to try against the Breda network the demo left running."""
    return f"""
    # Breda, {NETWORK}: the coordinator
    export SCHAKEL_HOME={s.c.regie.home}
    schakel member list {s.nb}
    schakel audit report {s.nb} {s.case}

    # Stichting WIJ Breda, its home configured for {PROFESSIONAL}
    export SCHAKEL_HOME={s.c.wij.home}
    schakel case identity {s.nb} {s.case}
"""


def recap(s: Wij) -> list[str]:
    return [f"Breda: {len(s.c.all())} organisations, 1 network; WIJ is one member with "
            f"{len(USERS)} listed users, the BSN released to its professional only"]


#: What the report says of Stichting WIJ Breda, narrated.
REPORT = (
    "Breda's signalling network was being founded, with welfare organisation WIJ as "
    "co-coordinator (report §4.1, schema 2, annex 1). WIJ is the report's outspoken example "
    "of a hybrid organisation, where professionals and volunteers work together as equals "
    "(§3.4).",
    "Its motto: \"vrijwilligers waar het kan en beroepskrachten waar het moet\"; some 1000 "
    "volunteers and 50 paid professionals (§3.4). Every case is first looked at for what "
    "informal help can do; where it cannot, that is the reason for formal help (§4.4.1).",
    "A paid coordinator of WIJ meets outsiders who ask \"Wie is hier nou eigenlijk de "
    "betaalde kracht?\"; for WIJ it is not relevant (§4.4.2). For what a person's data may "
    "reach, it is: a volunteer has no professional secrecy.",
    "Played here: WIJ as one member with its people listed, each formal or informal; the "
    "volunteer's session is refused a woman's BSN while the professional's session receives "
    "it; the volunteer sees her name; an unlisted intern is refused; her access report names "
    "each person and party.",
)

PRACTICE = Practice(
    name="breda",
    title=f"Breda: {NETWORK}",
    report=REPORT,
    scene=Wij,
    acts=(create_homes, found, consent, per_user, unlisted, access_report),
    instructions=instructions,
    recap=recap,
)


__all__ = ["PRACTICE", "BredaCast", "Wij", "NETWORK", "USERS", "WOMAN"]
