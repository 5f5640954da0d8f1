"""Utrecht: the Signaleringsnetwerk Sociaal Kwetsbaren Hoograven/Lunetten (report §4.1
schema 2, §4.2.3, annex 1), played by ``schakel demo --practice utrecht``.

A neighbourhood network in which a professional of the Vrijwilligerscentrale Utrecht sits
in the core for a platform of volunteer organisations that have no seat of their own
(ADR 0032).  The coordinator signs that list into the centrale's membership
(``on_behalf_of``, protocol.md §N.4); every member's verified member list shows it; the
server copies it into every audit entry of the centrale's acts (``actor.on_behalf_of``,
§A.1), and nothing in a request can change it.  The shelter (SWBU, formal) brings in a man
who has a flat of his own again; with his consent the centrale receives his name, address
and phone number to find him a buddy among the organisations it represents.  The privacy
officer's access report and the coordinator's verified log both say, for each of the
centrale's acts, on whose behalf it acted.

The centrale is admitted ``informal``: what reaches it may reach the volunteers of the
organisations it represents, so the policy's informal ceiling applies to it.  The report
names no coordinating organisation for this network and none of the organisations the
centrale represents: the coordinator's name, the three volunteer organisations, the man,
his address and his number are invented.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field

from schakel.cli.demo.stage import PASSPHRASE, Cast, Org, Practice, Scene, org
from schakel.cli.demo.tally import short

NETWORK = "Signaleringsnetwerk Sociaal Kwetsbaren Hoograven/Lunetten"
COVENANT = ("Convenant Signaleringsnetwerk Sociaal Kwetsbaren Hoograven/Lunetten. Wij bespreken "
            "casussen zonder naam; de Vrijwilligerscentrale zit aan tafel namens de "
            "vrijwilligersorganisaties die zij vertegenwoordigt, en geeft een naam alleen door "
            "met toestemming van de bewoner.")
#: The volunteer organisations the centrale represents: invented names (the report names
#: none for this network; real organisations are not put in a demo's mouth).
BEHALF = ("Buurtmaatjes Hoograven", "Klushulp Lunetten", "Boodschappenkring Tolsteeg")
#: What a request from the centrale's own system claims, and the server must ignore.
CLAIM = {"Schakel-On-Behalf-Of": "Leger des Heils", "Schakel-Party": "formal"}

#: The man the shelter brings in (invented).
MAN = {"name": {"given_names": "Ruud", "family_name": "Kamphuis"},
       "address": {"street": "Zwanenvechtlaan", "house_number": "41", "postcode": "3526 KM",
                   "city": "Utrecht"},
       "contact": {"phone": "06-98765432"}}
INTAKE = {"kind": "intake", "age_band": "45-54", "neighbourhood": "Lunetten",
          "domains": ["loneliness", "financial"], "severity": "medium", "care_status": "known",
          "source": "partner", "complex": False,
          "summary": "Heeft na jaren in de opvang weer een eigen flat. De woning is leeg, hij "
                     "kent niemand in de buurt en zoekt een maatje en hulp bij het inrichten. "
                     "Zijn schulden zijn in beeld bij de opvang."}
ACTION = ("Een vrijwilliger van de klushulp helpt de woning inrichten; de buurtmaatjes zoeken "
          "een maatje dat ook van voetbal houdt.")


@dataclass
class UtrechtCast(Cast):
    """The coordinator, the Vrijwilligerscentrale (informal, on behalf of three volunteer
    organisations), Stade and the SWBU in the core; the privacy officer in the shell."""

    regie: Org = org("regie", "Netwerkregie Hoograven/Lunetten", "netwerkcoordinator-1")
    centrale: Org = org("vrijwilligerscentrale", "Vrijwilligerscentrale Utrecht",
                        "infolijn-coordinator-1")
    stade: Org = org("stade", "Stade Utrecht", "consulent-informele-hulp-1")
    swbu: Org = org("swbu", "SWBU Maatschappelijke Opvang", "coordinator-zorg-1")
    privacy: Org = org("privacy", "Privacyfunctionaris Gemeente Utrecht", "privacy-officer-1")


@dataclass
class Hoograven(Scene):
    """The Utrecht practice as it is played: its cast and the ids its acts make."""

    c: UtrechtCast = field(default_factory=UtrechtCast)
    nb: str = ""
    case: str = ""


async def create_homes(s: Hoograven) -> None:
    s.t.section("0. Every organisation creates its own home: keys, keystore, local state")
    await s.stage.create_homes("utrecht", s.c.all())
    s.stage.keep_secret("the man's name, street or phone number",
                        "Kamphuis", "Zwanenvechtlaan", "06-98765432")
    s.stage.keep_secret("the man's intake or the centrale's action",
                        str(INTAKE["summary"])[:30], ACTION[:30])


async def found(s: Hoograven) -> None:
    """Act 1: the coordinator founds the network and admits the Vrijwilligerscentrale to
    the core on behalf of three volunteer organisations, signed into its membership;
    every member's verified list shows them, and so does ``schakel member list``."""
    t, regie, centrale = s.t, s.c.regie, s.c.centrale
    t.section(f"1. {NETWORK}: the Vrijwilligerscentrale in the core, on behalf of others")
    s.nb = await regie.p.networks.create(name=NETWORK, kind="neighbourhood", covenant=COVENANT,
                                         server_fingerprint=s.server_fingerprint)
    s.stage.founded(s.nb, NETWORK, COVENANT, coordinator=regie, auditor=s.c.privacy)
    t.note(f"network {s.nb}; fingerprint {regie.p.fingerprint}", regie.name)
    t.note(f"the centrale represents {', '.join(BEHALF)} (invented names): volunteer "
           f"organisations without a seat of their own", regie.name)
    await s.join(s.nb, regie, centrale, ring="core", party="informal", on_behalf_of=BEHALF)
    for o, ring, party, roles in ((s.c.stade, "core", "formal", ()),
                                  (s.c.swbu, "core", "formal", ()),
                                  (s.c.privacy, "shell", "formal", ("auditor",))):
        await s.join(s.nb, regie, o, ring=ring, party=party, roles=roles)
    await s.sync(s.nb, regie, s.c.swbu)
    for viewer in (regie, s.c.swbu, centrale):
        listed = {m["key_id"]: m for m in viewer.p.networks.members(s.nb)}
        mine = listed.get(centrale.p.key_id, {})
        t.check(mine.get("on_behalf_of") == list(BEHALF)
                and all("on_behalf_of" not in m for k, m in listed.items()
                        if k != centrale.p.key_id),
                f"{viewer.name}'s verified member list: the centrale, and only the centrale, "
                f"on behalf of {len(BEHALF)} organisations")
    shown = await _cli(regie, "member", "list", s.nb)
    row = next((line for line in shown.stdout.splitlines() if centrale.name in line), "")
    t.check(shown.returncode == 0 and all(name in row for name in BEHALF),
            "`schakel member list` shows the coordinator the same, in the centrale's row",
            why=f"exit {shown.returncode}: {short(shown.stderr or shown.stdout)}")
    if row:
        t.say(f"      | {short(row, 140)}")


async def _cli(o: Org, *args: str) -> subprocess.CompletedProcess[str]:
    """``schakel ARGS`` as the person of ``o`` types it, with its home and passphrase."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env.update(PYTHONIOENCODING="utf-8", SCHAKEL_HOME=str(o.home),
               SCHAKEL_PASSPHRASE=PASSPHRASE)
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "schakel.cli", *args], env=env, text=True,
        encoding="utf-8", capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


async def buddy(s: Hoograven) -> None:
    """Act 2: the shelter brings in a man who has a flat of his own again; the centrale
    reads the anonymous layer, and with his consent receives his name, address and phone
    number to find him a buddy; it records its informal action on the case."""
    t, swbu, centrale, regie = s.t, s.c.swbu, s.c.centrale, s.c.regie
    t.section("2. The centrale works a case with the man's consent: a grant and a release")
    s.case = await t.holds("the SWBU brings the man in: anonymous intake, name, address and "
                           "phone sealed per class",
                           lambda: swbu.p.cases.create(s.nb, INTAKE, identity=MAN))
    await s.sync(s.nb, centrale, regie)
    view = s.readable_case(centrale, s.nb, s.case)
    t.check(view is not None and view.state.get("neighbourhood") == "Lunetten"
            and not centrale.p.identity.get(s.nb, s.case),
            "the centrale reads the anonymous layer, not who he is")
    if view is not None:
        t.note(f"reads: {view.state['age_band']}, {view.state['neighbourhood']}, "
               f"\"{short(view.state['summary'], 70)}\"", centrale.name)
    consent = await t.holds(
        "he agrees: the SWBU records his consent (name, address, phone; to the centrale; "
        "to find a buddy)",
        lambda: swbu.p.disclosure.record_consent(
            s.nb, s.case, classes=("name", "address", "contact"),
            partners=(centrale.p.key_id,), purpose="een maatje en hulp bij het inrichten via "
                                                   "de Vrijwilligerscentrale",
            valid_days=180, evidence=b"toestemmingsformulier opvang, ondertekend"))
    grant = await t.holds("the coordinator grants the centrale those three classes",
                          lambda: regie.p.disclosure.grant(
                              s.nb, s.case, consent=consent, grantee=centrale.p.key_id,
                              classes=("name", "address", "contact"),
                              reason="maatje zoeken bij een vrijwilligersorganisatie"))
    released = await t.holds("the centrale releases them (audit entry first, receipt "
                             "verified)", lambda: centrale.p.disclosure.release(s.nb, grant))
    if released is not None:
        s.releases.append("consent")
        name, address = released.classes.get("name", {}), released.classes.get("address", {})
        t.check(released.classes == MAN,
                f"it reads: {name.get('given_names')} {name.get('family_name')}, "
                f"{address.get('street')} {address.get('house_number')}, and his phone number")
    await t.holds("it records the informal help on the case: the klushulp and the buurtmaatjes",
                  lambda: centrale.p.cases.add_event(s.nb, s.case, {
                      "kind": "action", "description": ACTION, "help_type": "informal",
                      "relation": "complementary", "by": centrale.p.key_id}))
    await s.sync(s.nb, swbu)
    view = s.readable_case(swbu, s.nb, s.case)
    t.check(view is not None and [a.get("help_type") for a in view.state.get("actions", [])]
            == ["informal"], "the SWBU reads the centrale's action on its case")


async def claim(s: Hoograven) -> None:
    """Act 3: the centrale's own system sends a request whose headers name another
    organisation and the formal party.  The server answers it, and writes the entry from
    the membership: the claim changes neither the entry nor the membership."""
    t, centrale, regie = s.t, s.c.centrale, s.c.regie
    t.section("3. A request that claims to act for someone else")
    before = max((e["index"] for e in await regie.p.audit.entries(s.nb)), default=-1)
    await t.holds(f"the centrale's system syncs with headers claiming "
                  f"\"{CLAIM['Schakel-On-Behalf-Of']}\" and the formal party",
                  lambda: centrale.p.session.conn.request(
                      "GET", f"/v1/networks/{s.nb}/sync", params={"after": "0", "limit": "50"},
                      headers=CLAIM))
    entries = await t.holds("the coordinator reads the audit log, each entry verified",
                            lambda: regie.p.audit.entries(s.nb))
    mine = [e for e in entries or [] if e["index"] > before
            and e["entry"]["actor"]["partner"] == centrale.p.key_id]
    index, last = (mine[0]["index"], mine[0]["entry"]) if len(mine) == 1 else ("?", {})
    t.check(last.get("action") == "read"
            and last["actor"].get("on_behalf_of") == list(BEHALF)
            and last["actor"].get("party") == "informal",
            f"the entry of that read (#{index}) names the membership's organisations and the "
            f"informal party, not the claim", why=f"{last.get('actor')}")
    await s.sync(s.nb, regie)
    listed = {m["key_id"]: m for m in regie.p.networks.members(s.nb)}
    t.check(listed.get(centrale.p.key_id, {}).get("on_behalf_of") == list(BEHALF),
            "the centrale's membership is unchanged: only the coordinator signs it")


async def audit(s: Hoograven) -> None:
    """Act 4: every entry of the centrale's acts, in the verified log and in the man's
    access report, names the organisations it acted for."""
    t, regie, centrale, privacy = s.t, s.c.regie, s.c.centrale, s.c.privacy
    t.section("4. On whose behalf: the verified log and the man's access report")
    verified = await t.holds("the coordinator verifies the log from scratch",
                             lambda: regie.p.audit.verify(s.nb))
    entries = await regie.p.audit.entries(s.nb) if verified is not None else []
    mine = [e["entry"] for e in entries if e["entry"]["actor"]["partner"] == centrale.p.key_id]
    actions = sorted({e["action"] for e in mine})
    t.check({"release", "read"} <= set(actions)
            and all(e["actor"].get("on_behalf_of") == list(BEHALF) for e in mine),
            f"all {len(mine)} entries of the centrale's acts ({', '.join(actions)}) say "
            f"\"namens {', '.join(BEHALF)}\"", why=f"{[e['actor'] for e in mine][:3]}")
    members = {o.p.key_id for o in s.c.all() if o is not centrale}
    others = [e["entry"] for e in entries if e["entry"]["actor"]["partner"] in members]
    t.check(bool(others) and not any("on_behalf_of" in e["actor"] for e in others),
            f"none of the other {len(others)} entries of members' acts names anyone")
    report = await t.holds("the privacy officer reads the man's subject access report",
                           lambda: privacy.p.reports.access(s.nb, s.case))
    if report is None:
        return
    for line in str(report.get("text", "")).splitlines()[:15]:
        t.say(f"      | {line}")
    lines = [item for kind in ("releases", "reads") for item in report.get(kind, [])
             if item.get("partner") == centrale.p.key_id]
    kinds = {kind for kind in ("releases", "reads") for item in report.get(kind, [])
             if item.get("partner") == centrale.p.key_id}
    t.check(kinds == {"releases", "reads"}
            and all(item.get("on_behalf_of") == list(BEHALF) for item in lines)
            and f"namens / on behalf of: {', '.join(BEHALF)}" in str(report.get("text")),
            f"its {len(lines)} lines of the centrale (its release, its reads) name the "
            f"organisations, checked against the verified log")


def instructions(s: Hoograven) -> str:
    """Commands to try against the Utrecht network the demo left running."""
    return f"""
    # Utrecht, {NETWORK}: the coordinator
    export SCHAKEL_HOME={s.c.regie.home}
    schakel member list {s.nb}
    schakel audit report {s.nb} {s.case}

    # the Vrijwilligerscentrale: the name, address and phone released to it
    export SCHAKEL_HOME={s.c.centrale.home}
    schakel case identity {s.nb} {s.case}
"""


def recap(s: Hoograven) -> list[str]:
    return [f"Utrecht: {len(s.c.all())} organisations, 1 network; the Vrijwilligerscentrale "
            f"acts on behalf of {len(BEHALF)} volunteer organisations, in every entry"]


#: What the report says of the Signaleringsnetwerk Sociaal Kwetsbaren, narrated.
REPORT = (
    "Utrecht has Signaleringsnetwerken Sociaal Kwetsbaren; the report studied the one of "
    "Hoograven/Lunetten, a neighbourhood network (report §4.1, schema 2). Its respondents: "
    "the coordinator of the Infolijn of the Vrijwilligerscentrale Utrecht, a consultant for "
    "informal help of Stade, and the care coordinator of the SWBU shelter (annex 1).",
    "Informal help is mostly represented by a professional: \"een beroepskracht die "
    "verbonden is aan een lokale overkoepelende organisatie voor vrijwilligerswerk kan een "
    "netwerk of platform van samenwerkende vrijwillige organisaties vertegenwoordigen\", as "
    "in Utrecht (§4.2.3).",
    "That person must know the volunteer organisations well, judge which of them can help, "
    "and take care of what follows: \"de overdracht van de casus en terugkoppeling van de "
    "ingezette hulp\" (§4.2.3).",
    "Played here: the coordinator admits the Vrijwilligerscentrale on behalf of three "
    "volunteer organisations (invented names); with a man's consent the centrale receives "
    "his name, address and phone number; every entry of its acts, in the verified log and "
    "in his access report, says on whose behalf, and a request cannot say otherwise.",
)

PRACTICE = Practice(
    name="utrecht",
    title=f"Utrecht: {NETWORK}",
    report=REPORT,
    scene=Hoograven,
    acts=(create_homes, found, buddy, claim, audit),
    instructions=instructions,
    recap=recap,
)


__all__ = ["PRACTICE", "UtrechtCast", "Hoograven", "NETWORK", "BEHALF", "MAN"]
