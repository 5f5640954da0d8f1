"""Rotterdam: the Lokaal Zorgnetwerk Woningvervuiling of the GGD Rotterdam-Rijnmond
(report §4.1 schema 2, §4.2.1, §4.2.3, §4.2.4, §4.3.2), played by ``schakel demo
--practice rotterdam``.

A closed network of professionals around acute cases: the GGD coordinates, bemoeizorg is
the exception that may open a name without consent, on a ground from the policy, with
four eyes and a justification only the auditor can read.  The network starts with the
grounds of its first covenant; when domestic violence turns up the GGD puts the
meldcode's grounds in force as a new policy version (ADR 0028), and refers the household
to Veilig Thuis, a shell partner.  After the clean-up the polluted house's case is
referred to a neighbourhood network for aftercare, with the tenant's consent, and the
privacy officer reads the trails.  Every person and address is invented, and so is the
neighbourhood network of the aftercare (the report names no such network in Rotterdam).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schakel.cli.demo.stage import Cast, Org, Practice, Scene, org
from schakel.cli.demo.tally import short
from schakel.keys import follow_policies, issue_policy
from schakel.protocol.objects.network import DEFAULT_BEMOEIZORG_GROUNDS, default_policy

OGGZ = "Lokaal Zorgnetwerk Woningvervuiling"
AFTERCARE = "Buurtnetwerk Afrikaanderwijk"
COVENANTS = {
    OGGZ: ("Convenant Lokaal Zorgnetwerk Woningvervuiling. Bemoeizorg alleen op een grond uit "
           "het beleid, met schriftelijke onderbouwing, vier ogen en toetsing achteraf."),
    AFTERCARE: ("Convenant Buurtnetwerk Afrikaanderwijk. Wij bespreken casussen anoniem; namen "
                "delen wij alleen met toestemming van de bewoner."),
}
#: The meldcode huiselijk geweld en kindermishandeling's grounds (ADR 0028): not in the
#: network's first policy, put in force by its second.
MELDCODE_GROUNDS = ("domestic-violence", "child-abuse")
FIRST_GROUNDS = tuple(g for g in DEFAULT_BEMOEIZORG_GROUNDS if g not in MELDCODE_GROUNDS)

#: The tenant of the polluted house (invented).
TENANT = {"name": {"given_names": "Karel", "family_name": "Brouwer"},
          "address": {"street": "Hilledijk", "house_number": "40", "postcode": "3072 AB",
                      "city": "Rotterdam"}}
TENANT_INTAKE = {"kind": "intake", "age_band": "55-64", "neighbourhood": "Feijenoord",
                 "domains": ["housing-pollution", "self-neglect"], "severity": "acute",
                 "care_status": "avoids-care", "source": "partner", "complex": True,
                 "summary": "Ernstige woningvervuiling: stank in het trappenhuis, ongedierte, "
                            "huurder doet niet open. Buren klagen; brandgevaar."}
JUSTIFICATION = ("Huurder reageert al zes weken niet op brieven of huisbezoek; stank en "
                 "ongedierte in het trappenhuis, brandweer meldt brandgevaar. Zonder naam en "
                 "adres kan het bemoeizorgteam niet langsgaan.")
#: The household where the neighbours hear violence (invented).
HOUSEHOLD = {"name": {"given_names": "Sandra", "family_name": "Verbeek"},
             "address": {"street": "Pretorialaan", "house_number": "118",
                         "postcode": "3072 EL", "city": "Rotterdam"}}
HOUSEHOLD_INTAKE = {"kind": "intake", "age_band": "30-44", "neighbourhood": "Feijenoord",
                    "domains": ["domestic-violence"], "severity": "high",
                    "care_status": "avoids-care", "source": "partner", "complex": True,
                    "summary": "Buren melden herhaaldelijk geschreeuw en slaan; twee jonge "
                               "kinderen in huis. Moeder wil geen hulp, zegt dat het meevalt."}
VT_JUSTIFICATION = ("Acute onveiligheid volgens het afwegingskader van de meldcode: buren "
                    "horen wekelijks slaan, kinderen in huis, moeder weigert contact.")


@dataclass
class RotterdamCast(Cast):
    """The GGD and its closed core, the privacy officer and Veilig Thuis in the shell,
    and the welfare organisation and church workers of the neighbourhood network that
    takes over the aftercare."""

    ggd: Org = org("ggd", "GGD Rotterdam-Rijnmond", "ketenregisseur-woonvervuiling")
    bemoeizorg: Org = org("bemoeizorg", "GGD Bemoeizorgteam Rotterdam", "bz-arts-1")
    woningcorporatie: Org = org("woningcorporatie", "Woonstichting Maasoever", "huismeester-1")
    politie: Org = org("politie", "Politie Basisteam Feijenoord", "wijkagent-1")
    verslavingszorg: Org = org("verslavingszorg", "Verslavingszorg Rotterdam", "outreach-1")
    privacy: Org = org("privacy", "Privacyfunctionaris GGD Rotterdam-Rijnmond",
                       "privacy-officer-1")
    veilig_thuis: Org = org("veilig-thuis", "Veilig Thuis Rotterdam Rijnmond", "vt-medewerker-1")
    welzijn: Org = org("welzijn", "Welzijn Feijenoord", "opbouwwerker-afrikaanderwijk")
    buurtpastoraat: Org = org("buurtpastoraat", "Buurtpastoraat Afrikaanderwijk",
                              "buurtpastor-1")


@dataclass
class Zorgnetwerk(Scene):
    """The Rotterdam practice as it is played: its cast and the ids its acts make."""

    c: RotterdamCast = field(default_factory=RotterdamCast)
    oggz: str = ""
    nb: str = ""                   # the aftercare network
    tenant_case: str = ""
    household_case: str = ""
    referred_case: str = ""

    def found(self, network: str, name: str, coordinator: Org) -> None:
        self.stage.founded(network, name, COVENANTS[name], coordinator=coordinator,
                           auditor=self.c.privacy)


async def create_homes(s: Zorgnetwerk) -> None:
    """Every organisation creates its own home: its key pair, its keystore under the
    passphrase, its local state.  Nobody holds anyone else's keys."""
    s.t.section("0. Every organisation creates its own home: keys, keystore, local state")
    await s.stage.create_homes("rotterdam", s.c.all())
    s.stage.keep_secret("the tenant's or the household's name or address",
                        "Brouwer", "Hilledijk", "Verbeek", "Pretorialaan")
    s.stage.keep_secret("the anonymous layer's text or a bemoeizorg justification",
                        str(TENANT_INTAKE["summary"])[:30], str(HOUSEHOLD_INTAKE["summary"])[:30],
                        JUSTIFICATION[:30], VT_JUSTIFICATION[:30])


def first_policy() -> dict[str, Any]:
    """The default oggz policy with the grounds of the network's first covenant: the
    housing and nuisance grounds, not yet the meldcode's."""
    policy = default_policy("oggz").to_json()
    policy["bemoeizorg"] = {**policy["bemoeizorg"], "grounds": list(FIRST_GROUNDS)}
    return policy


async def found_oggz(s: Zorgnetwerk) -> None:
    """Act 1: the GGD founds the oggz network: a closed core of professionals, two of
    them with the bemoeizorg role, and the privacy officer as auditor in the shell
    (report §4.2.1, §4.2.3, §4.2.4).  Its first policy names the grounds of the covenant
    it started with."""
    t, g = s.t, s.c.ggd
    t.section(f"1. {OGGZ}: the GGD founds an oggz network")
    s.oggz = await g.p.networks.create(name=OGGZ, kind="oggz", covenant=COVENANTS[OGGZ],
                                       server_fingerprint=s.server_fingerprint,
                                       policy=first_policy())
    s.found(s.oggz, OGGZ, g)
    t.note(f"network {s.oggz}; fingerprint {g.p.fingerprint}", g.name)
    t.note(f"the policy, version 1: a closed, professional core; bemoeizorg on grounds "
           f"{', '.join(FIRST_GROUNDS)}; four eyes", g.name)
    for o, ring, party, roles in (
            (s.c.bemoeizorg, "core", "formal", ("bemoeizorg", "professional-secrecy")),
            (s.c.woningcorporatie, "core", "formal", ()),
            (s.c.politie, "core", "formal", ()),
            (s.c.verslavingszorg, "core", "formal", ("bemoeizorg", "professional-secrecy")),
            (s.c.privacy, "shell", "formal", ("auditor",))):
        await s.join(s.oggz, g, o, ring=ring, party=party, roles=roles)


async def housing_pollution(s: Zorgnetwerk) -> None:
    """Act 2: the housing corporation reports a severely polluted house; the tenant does
    not open the door, so there is no consent to ask for (report §4.3.2: "bij bemoeizorg
    heb je de uitzonderingsregel").

    The police read the anonymous layer, never the identity, and may not invoke
    bemoeizorg.  The bemoeizorg team may, on a ground from the policy, and reads the
    tenant's name and address only after a second person with the role co-signed; the
    release is audited as an emergency to be reviewed.  The GGD coordinator is told of it
    but cannot read the justification: only the privacy officer, who reviews it, can."""
    t, wc, bz = s.t, s.c.woningcorporatie, s.c.bemoeizorg
    t.section("2. Severe housing pollution: bemoeizorg, four eyes, and the auditor's review")
    s.tenant_case = await t.holds(
        "the housing corporation reports the house as a case (identity sealed)",
        lambda: wc.p.cases.create(s.oggz, TENANT_INTAKE, identity=TENANT))
    await s.sync(s.oggz, s.c.politie, bz, s.c.verslavingszorg, s.c.ggd)
    view = s.readable_case(s.c.politie, s.oggz, s.tenant_case)
    t.check(view is not None and view.state.get("severity") == "acute"
            and not s.c.politie.p.identity.get(s.oggz, s.tenant_case),
            "the police read the anonymous layer (acute, housing pollution), not the identity")
    await t.refused("the police try to invoke bemoeizorg",
                    lambda: s.c.politie.p.disclosure.invoke_bemoeizorg(
                        s.oggz, s.tenant_case, ground="housing-pollution",
                        justification=JUSTIFICATION),
                    reason="bemoeizorg-role-required")
    await t.refused("the bemoeizorg team tries a ground that is not in the policy",
                    lambda: bz.p.disclosure.invoke_bemoeizorg(s.oggz, s.tenant_case,
                                                   ground="overlast-vermoeden",
                                                   justification=JUSTIFICATION),
                    reason="bemoeizorg-ground-invalid")
    invocation = await t.holds(
        "the bemoeizorg team invokes it: ground housing-pollution, a written justification "
        "sealed to the auditors",
        lambda: bz.p.disclosure.invoke_bemoeizorg(s.oggz, s.tenant_case,
                                       ground="housing-pollution",
                                       justification=JUSTIFICATION))
    if invocation is None:
        return
    await t.refused("it asks for the identity before anyone co-signed",
                    lambda: bz.p.disclosure.bemoeizorg_release(s.oggz, invocation),
                    reason="bemoeizorg-four-eyes-required")
    await t.refused("it tries to co-sign its own invocation",
                    lambda: bz.p.disclosure.cosign(s.oggz, invocation),
                    reason="bemoeizorg-same-person-cosign")
    await t.holds("a second person with the role, the addiction care outreach worker, "
                  "co-signs (four eyes)",
                  lambda: s.c.verslavingszorg.p.disclosure.cosign(s.oggz, invocation,
                                                       case=s.tenant_case))
    released = await t.holds("the team releases the identity (audited: emergency, "
                             "review required)",
                             lambda: bz.p.disclosure.bemoeizorg_release(s.oggz, invocation))
    if released is not None:
        s.releases.append("bemoeizorg")
        name = released.classes.get("name", {})
        t.check(released.classes.get("address") == TENANT["address"]
                and name == TENANT["name"],
                f"the team reads: {name.get('given_names')} {name.get('family_name')}, "
                f"{TENANT['address']['street']} {TENANT['address']['house_number']}")
    t.check(not s.c.politie.p.identity.get(s.oggz, s.tenant_case),
            "the police still hold no identity")
    feed = await t.holds("the GGD coordinator reads its notifications",
                         lambda: s.c.ggd.p.session.conn.get(
                             f"/v1/networks/{s.oggz}/notifications"))
    kinds = {i.get("kind") for i in (feed or {}).get("items", [])
             if i.get("invocation") == invocation}
    t.check({"bemoeizorg", "bemoeizorg-release"} <= kinds,
            "...which tell it of the invocation and of the release",
            why=f"kinds {sorted(kinds)}")
    answer = await t.holds("the GGD coordinator fetches the invocation",
                           lambda: s.c.ggd.p.session.conn.get(
                               f"/v1/networks/{s.oggz}/bemoeizorg/{invocation}"))
    if answer is not None:
        sealed_to = [j.get("auditor") for j in
                     answer["invocation"]["signed"].get("justification", [])]
        t.check(sealed_to == [s.c.privacy.p.key_id],
                "...but its justification is sealed to the auditor alone: the GGD holds no "
                "key to it")
    text = await t.holds("the privacy officer opens the justification sealed to it",
                         lambda: s.c.privacy.p.disclosure.justification(s.oggz, invocation))
    if text is not None:
        t.check(text == JUSTIFICATION, f"it reads: \"{short(text, 90)}\"")
    await t.holds("and records its review: approved",
                  lambda: s.c.privacy.p.disclosure.review(
                      s.oggz, invocation, approved=True,
                      note="De grond en de onderbouwing passen bij het convenant."))


async def meldcode_policy(s: Zorgnetwerk) -> None:
    """Act 3: the police bring in a household where the neighbours hear violence.  The
    bemoeizorg team cannot invoke the exception on domestic violence: the network's
    first policy does not name it.  The GGD puts the meldcode's grounds in force as
    policy version 2 (ADR 0028): signed by the coordinator, audited, enforced by the
    server from the next request, followed by every partner at its next sync.  A version
    signed by anyone else is refused by the server and by every partner's client."""
    t, g, bz, pol = s.t, s.c.ggd, s.c.bemoeizorg, s.c.politie
    t.section("3. Domestic violence: the GGD puts the meldcode's grounds in force "
              "(policy version 2)")
    s.household_case = await t.holds(
        "the police bring in the household as a case (identity sealed)",
        lambda: pol.p.cases.create(s.oggz, HOUSEHOLD_INTAKE, identity=HOUSEHOLD))
    await s.sync(s.oggz, bz, g)
    await t.refused("the bemoeizorg team invokes bemoeizorg on the ground domestic-violence "
                    "(not in policy version 1)",
                    lambda: bz.p.disclosure.invoke_bemoeizorg(
                        s.oggz, s.household_case, ground="domestic-violence",
                        justification=VT_JUSTIFICATION),
                    reason="bemoeizorg-ground-invalid")
    second = {**first_policy()}
    second["bemoeizorg"] = {**second["bemoeizorg"],
                            "grounds": [*FIRST_GROUNDS, *MELDCODE_GROUNDS]}
    forged = issue_policy(pol.p.session.keys, network=s.oggz, version=2,
                          issued=pol.p.session.now(), policy=second)
    await t.refused("the police put a policy version 2 of their own making in force",
                    lambda: pol.p.session.conn.post(f"/v1/networks/{s.oggz}/policies",
                                                    {"policy": forged}),
                    code="forbidden")
    version = await t.holds("the GGD signs policy version 2: the grounds domestic-violence "
                            "and child-abuse added (meldcode)",
                            lambda: g.p.networks.change_policy(s.oggz, second))
    t.check(version == 2, f"the server holds it as version {version}, in force from now")
    entries = await t.holds("the GGD reads its audit log, each entry verified",
                            lambda: g.p.audit.entries(s.oggz))
    policy = [e["entry"] for e in entries or [] if (e.get("entry") or {}).get("action")
              == "policy"]
    t.check(len(policy) == 1 and str(policy[0].get("reason", "")).startswith(
                "network policy version 2"),
            "the change is an entry of the network's audit log",
            why=f"policy entries {policy}")
    await s.sync(s.oggz, bz, pol, s.c.verslavingszorg)
    view = bz.p.networks.verified(s.oggz)
    t.check(view.policy_version == 2
            and "domestic-violence" in view.policy["bemoeizorg"]["grounds"],
            "the bemoeizorg team's client follows version 2 at its sync")
    third = issue_policy(pol.p.session.keys, network=s.oggz, version=3,
                         issued=pol.p.session.now(), policy=first_policy())
    await t.refused("a partner's client is served a version 3 signed by the police, not the "
                    "coordinator (the check its sync runs on every version served)",
                    lambda: follow_policies(view.verified, [third]))


async def veilig_thuis(s: Zorgnetwerk) -> None:
    """Act 4: the meldcode's last step, a report to Veilig Thuis (ADR 0028).  Veilig
    Thuis is a formal shell partner: it reads the household's case once the GGD shares
    it, and nothing else.  Without the mother's consent, the meldcode's afwegingskader
    finds acute unsafety: Veilig Thuis invokes bemoeizorg on the domestic-violence
    ground, a second role-holder co-signs, and the privacy officer reviews it."""
    t, g, vt, bz = s.t, s.c.ggd, s.c.veilig_thuis, s.c.bemoeizorg
    t.section("4. A referral to Veilig Thuis (shell): the meldcode's last step")
    await s.join(s.oggz, g, vt, ring="shell", party="formal",
                 roles=("bemoeizorg", "professional-secrecy"))
    report = await t.holds("the police's client does its duties: it seals the household's "
                           "identity for the new partner too (a gated envelope, useless "
                           "without a release)", lambda: s.c.politie.p.duties(s.oggz))
    t.check(report is not None and s.household_case in report.backfilled,
            "...the household's case is among the ones it backfilled",
            why=f"backfilled {getattr(report, 'backfilled', None)}")
    t.check(vt.p.cases.all(s.oggz) == [],
            "Veilig Thuis (shell) holds no case of the network")
    await t.holds("the GGD shares the household's case with Veilig Thuis: the referral",
                  lambda: g.p.cases.share(s.oggz, s.household_case, vt.p.key_id,
                                          reason="verwijzing Veilig Thuis (meldcode stap 5)"))
    await s.sync(s.oggz, vt)
    view = s.readable_case(vt, s.oggz, s.household_case)
    held = [c.case for c in vt.p.cases.all(s.oggz)]
    t.check(view is not None and "domestic-violence" in view.state.get("domains", [])
            and held == [s.household_case],
            "Veilig Thuis reads the household's anonymous layer, and holds no other case")
    await t.refused("Veilig Thuis invokes bemoeizorg on the polluted house, a case not "
                    "shared with it",
                    lambda: vt.p.disclosure.invoke_bemoeizorg(
                        s.oggz, s.tenant_case, ground="housing-pollution",
                        classes=("name",), justification=JUSTIFICATION),
                    reason="shell-without-share")
    invocation = await t.holds(
        "Veilig Thuis invokes bemoeizorg: ground domestic-violence, the afwegingskader's "
        "answer sealed to the auditor",
        lambda: vt.p.disclosure.invoke_bemoeizorg(
            s.oggz, s.household_case, ground="domestic-violence",
            classes=("name", "address"), justification=VT_JUSTIFICATION))
    if invocation is None:
        return
    await t.refused("it asks for the identity before anyone co-signed",
                    lambda: vt.p.disclosure.bemoeizorg_release(s.oggz, invocation),
                    reason="bemoeizorg-four-eyes-required")
    await t.holds("the bemoeizorg team co-signs (four eyes)",
                  lambda: bz.p.disclosure.cosign(s.oggz, invocation, case=s.household_case))
    released = await t.holds("Veilig Thuis releases the name and address (audited: "
                             "emergency, review required)",
                             lambda: vt.p.disclosure.bemoeizorg_release(s.oggz, invocation))
    if released is not None:
        s.releases.append("bemoeizorg")
        name = released.classes.get("name", {})
        t.check(name == HOUSEHOLD["name"]
                and released.classes.get("address") == HOUSEHOLD["address"],
                f"Veilig Thuis reads: {name.get('given_names')} {name.get('family_name')}, "
                f"{HOUSEHOLD['address']['street']} {HOUSEHOLD['address']['house_number']}")
    await s.sync(s.oggz, s.c.woningcorporatie)
    t.check(s.readable_case(s.c.woningcorporatie, s.oggz, s.household_case) is not None
            and not s.c.woningcorporatie.p.identity.get(s.oggz, s.household_case),
            "the housing corporation (core) reads the case's anonymous layer, not who lives "
            "there")
    await t.holds("the privacy officer opens the justification and records its review",
                  lambda: _review(s, invocation))


async def _review(s: Zorgnetwerk, invocation: str) -> None:
    text = await s.c.privacy.p.disclosure.justification(s.oggz, invocation)
    if text != VT_JUSTIFICATION:
        raise AssertionError("the justification the auditor opened is not the one written")
    await s.c.privacy.p.disclosure.review(
        s.oggz, invocation, approved=True,
        note="Acute onveiligheid onderbouwd volgens het afwegingskader; grond past.")


async def found_aftercare(s: Zorgnetwerk) -> None:
    """Act 5: a welfare organisation runs the neighbourhood network that takes over the
    aftercare: an open core with a church's neighbourhood workers (informal), the GGD as
    a core partner, the privacy officer as its auditor."""
    t, w = s.t, s.c.welzijn
    t.section(f"5. {AFTERCARE}: the neighbourhood network for aftercare")
    s.nb = await w.p.networks.create(name=AFTERCARE, kind="neighbourhood",
                                     covenant=COVENANTS[AFTERCARE],
                                     server_fingerprint=s.server_fingerprint)
    s.found(s.nb, AFTERCARE, w)
    t.note(f"network {s.nb}; consent is decisive, no bemoeizorg", w.name)
    for o, ring, party, roles in (
            (s.c.buurtpastoraat, "core", "informal", ()),
            (s.c.privacy, "shell", "formal", ("auditor",))):
        await s.join(s.nb, w, o, ring=ring, party=party, roles=roles)


async def referral(s: Zorgnetwerk) -> None:
    """Act 6: after the clean-up the tenant agrees to aftercare, and the GGD refers the
    case across the wall between the networks into the neighbourhood network.

    There the church's neighbourhood workers read the case's anonymous layer, not the
    tenant's identity: the consent names only the neighbourhood coordinator."""
    t, g = s.t, s.c.ggd
    t.section("6. After the clean-up: a referral to the neighbourhood network for aftercare")
    await s.join(s.nb, s.c.welzijn, g, ring="core", party="formal")
    consent = await t.holds(
        "the tenant agrees to aftercare: the GGD records consent naming the neighbourhood "
        "coordinator",
        lambda: g.p.disclosure.record_consent(
            s.oggz, s.tenant_case, classes=("name", "address"), partners=(s.c.welzijn.p.key_id,),
            purpose="nazorg via het buurtnetwerk", valid_days=180,
            evidence=b"mondelinge toestemming, vastgelegd door GGD"))
    s.referred_case = await t.holds(
        "the GGD refers the case: its anonymous state is re-encrypted into the "
        "neighbourhood network",
        lambda: g.p.referrals.refer(s.oggz, s.tenant_case, s.nb, consent=consent,
                                    reason="nazorg na schoonmaak"))
    await s.sync(s.nb, s.c.buurtpastoraat, s.c.welzijn)
    view = s.readable_case(s.c.buurtpastoraat, s.nb, s.referred_case)
    t.check(view is not None and "housing-pollution" in view.state.get("domains", []),
            "the church's neighbourhood workers (informal, core) read the referred case's "
            "anonymous layer")
    t.check(not s.c.buurtpastoraat.p.identity.get(s.nb, s.referred_case),
            "...and not the tenant's identity")


async def trails(s: Zorgnetwerk) -> None:
    """Act 7: the privacy officer reads the housing case's trail in the oggz log
    (invocation, the refused early release, the co-sign, the release), and the 'out' and
    'in' sides of the referral in the two logs."""
    t, a = s.t, s.c.privacy
    t.section("7. The privacy officer reads the trails")
    entries = await t.holds("it reads the housing case's trail in the oggz log",
                            lambda: a.p.audit.entries(s.oggz))
    trail = [e["entry"] for e in entries or []
             if e.get("entry") and e["entry"].get("case") == s.tenant_case]
    for entry in trail:
        actor = entry.get("actor") or {}
        flags = ", ".join(f for f in ("emergency", "review_required") if entry.get(f))
        t.note(f"#{entry.get('index')} {entry.get('action')} by {actor.get('organisation')} "
               f"({actor.get('acting_user')}): {entry.get('reason')}"
               f"{f' [{flags}]' if flags else ''}", a.name)
    actions = [(e.get("action"), e.get("reason")) for e in trail]
    wanted = [("bemoeizorg-invoke", "housing-pollution"),
              ("deny", "bemoeizorg-four-eyes-required"),
              ("bemoeizorg-cosign", "four-eyes"),
              ("bemoeizorg-release", "housing-pollution")]
    t.check(all(w in actions for w in wanted)
            and any(e.get("action") == "bemoeizorg-release" and e.get("review_required")
                    and e.get("emergency") for e in trail),
            "invocation, the refused early release, the co-sign and the release (emergency, "
            "review required) are all there", why=f"found {actions}")
    await t.holds("the 'out' and 'in' sides of the referral are in the two logs",
                  lambda: _referral_logged(s))


async def _referral_logged(s: Zorgnetwerk) -> None:
    out = await s.c.privacy.p.audit.entries(s.oggz)
    into = await s.c.privacy.p.audit.entries(s.nb)
    if not any(e["entry"].get("action") == "referral-out" for e in out):
        raise AssertionError("no referral-out entry in the oggz log")
    if not any(e["entry"].get("action") == "referral-in" for e in into):
        raise AssertionError("no referral-in entry in the neighbourhood log")


def instructions(s: Zorgnetwerk) -> str:
    """Commands to try against the Rotterdam networks the demo left running."""
    return f"""
    # Rotterdam, {OGGZ}: the privacy officer (auditor)
    export SCHAKEL_HOME={s.c.privacy.home}
    schakel audit verify {s.oggz}
    schakel audit log {s.oggz}
    schakel bemoeizorg list {s.oggz}

    # Veilig Thuis (shell): only the household referred to it
    export SCHAKEL_HOME={s.c.veilig_thuis.home}
    schakel case list {s.oggz}
    schakel case identity {s.oggz} {s.household_case}

    # the GGD: the policy versions in force
    export SCHAKEL_HOME={s.c.ggd.home}
    schakel network show {s.oggz}
"""


def recap(s: Zorgnetwerk) -> list[str]:
    g, w = s.c.ggd, s.c.welzijn
    cases = sum(len(o.p.cases.all(n)) for o, n in ((g, s.oggz), (w, s.nb))
                if o.partner is not None and n)
    return [f"Rotterdam: {len(s.c.all())} organisations, 2 networks, {cases} cases; "
            f"policy version {g.p.networks.verified(s.oggz).policy_version if s.oggz else 0} "
            f"in force"]


#: What the report says of the Lokale Zorgnetwerken Rotterdam, narrated.
REPORT = (
    "Rotterdam has Lokale Zorgnetwerken, oggz networks of the GGD Rotterdam-Rijnmond, with "
    "a team for woningvervuiling and one for huiselijk geweld, each run by a ketenregisseur "
    "of the GGD (report §4.1 schema 2, §4.2.1, annex 1).",
    "They take on acute problems where quick action is needed, sometimes under coercion; "
    "signals come from third parties through Meldpunt Zorg & Overlast and Steunpunt "
    "Huiselijk Geweld (§4.2.1). The core is closed: bemoeizorg, housing corporations, "
    "police, addiction care, the GGD (§4.2.2).",
    "Volunteers take no part in its imposed interventions: \"Dat gaat niet werken met "
    "vrijwilligers\" (§4.2.3). Informal help may come in through the shell, and after the "
    "crisis through the neighbourhood's networks (§4.2.4: the walls between networks).",
    "Played here: bemoeizorg on a polluted house with four eyes and a review; domestic "
    "violence, the meldcode's grounds put in force as a new policy version and a referral "
    "to Veilig Thuis; aftercare in a neighbourhood network.",
)

PRACTICE = Practice(
    name="rotterdam",
    title=f"Rotterdam: {OGGZ}",
    report=REPORT,
    scene=Zorgnetwerk,
    acts=(create_homes, found_oggz, housing_pollution, meldcode_policy, veilig_thuis,
          found_aftercare, referral, trails),
    instructions=instructions,
    recap=recap,
)


__all__ = ["PRACTICE", "RotterdamCast", "Zorgnetwerk", "OGGZ", "AFTERCARE", "TENANT"]
