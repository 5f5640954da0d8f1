"""Acts 5 to 7: the Lokaal Zorgnetwerk Woningvervuiling, and the way back to the
neighbourhood (report §4.2.1, §4.2.4, §4.3.2).

A closed network of professionals around acute cases: the GGD coordinates, bemoeizorg is
the exception that may open a name without consent, on a ground from the policy, with
four eyes and a justification only the auditor can read.  After the clean-up the case
is referred to the neighbourhood network for aftercare, with the tenant's consent.
"""

from __future__ import annotations

from schakel.cli.demo.cast import COVENANTS, JUSTIFICATION, OGGZ, TENANT, TENANT_INTAKE
from schakel.cli.demo.stage import Stage
from schakel.cli.demo.tally import short


async def found_oggz(s: Stage) -> None:
    """Act 5: the GGD founds the oggz network on the same server: a closed core of
    professionals, two of them with the bemoeizorg role, and the privacy officer as
    auditor in the shell (report §4.2.1, §4.2.4)."""
    t, g = s.t, s.c.ggd
    t.section(f"5. {OGGZ}: the GGD founds an oggz network")
    s.oggz = await g.p.networks.create(name=OGGZ, kind="oggz", covenant=COVENANTS[OGGZ],
                                      server_fingerprint=s.server_fingerprint)
    t.note(f"network {s.oggz}; fingerprint {g.p.fingerprint}", g.name)
    t.note("the policy: a closed, professional core; bemoeizorg on grounds "
           "housing-pollution, severe-self-neglect, ... with four eyes", g.name)
    for org, ring, party, roles in (
            (s.c.bemoeizorg, "core", "formal", ("bemoeizorg", "professional-secrecy")),
            (s.c.woningcorporatie, "core", "formal", ()),
            (s.c.politie, "core", "formal", ()),
            (s.c.verslavingszorg, "core", "formal", ("bemoeizorg", "professional-secrecy")),
            (s.c.privacy, "shell", "formal", ("auditor",))):
        await s.join(s.oggz, g, org, ring=ring, party=party, roles=roles)


async def housing_pollution(s: Stage) -> None:
    """Act 6: the housing corporation reports a severely polluted house; the tenant does
    not open the door, so there is no consent to ask for (report §4.3.2: "bij bemoeizorg
    heb je de uitzonderingsregel").

    The police read the anonymous layer, never the identity, and may not invoke
    bemoeizorg.  The bemoeizorg team may, on a ground from the policy, and reads the
    tenant's name and address only after a second person with the role co-signed; the
    release is audited as an emergency to be reviewed.  The GGD coordinator is told of it
    but cannot read the justification: only the privacy officer, who reviews it, can."""
    t, wc, bz = s.t, s.c.woningcorporatie, s.c.bemoeizorg
    t.section("6. Severe housing pollution: bemoeizorg, four eyes, and the auditor's review")
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


async def referral(s: Stage) -> None:
    """Act 7: after the clean-up the tenant agrees to aftercare, and the GGD refers the
    case across the wall between the networks into the neighbourhood network.

    There the church visiting service reads the case's anonymous layer, not the tenant's
    identity: the consent names only the neighbourhood coordinator."""
    t, g = s.t, s.c.ggd
    t.section("7. After the clean-up: a referral to the neighbourhood network for aftercare")
    await s.join(s.nb, s.c.welzijn, g, ring="core", party="formal")
    consent = await t.holds(
        "the tenant agrees to aftercare: the GGD records consent naming the neighbourhood "
        "coordinator",
        lambda: g.p.disclosure.record_consent(s.oggz, s.tenant_case, classes=("name", "address"),
                                   partners=(s.c.welzijn.p.key_id,),
                                   purpose="nazorg via het buurtnetwerk", valid_days=180,
                                   evidence=b"mondelinge toestemming, vastgelegd door GGD"))
    s.referred_case = await t.holds(
        "the GGD refers the case: its anonymous state is re-encrypted into the "
        "neighbourhood network",
        lambda: g.p.referrals.refer(s.oggz, s.tenant_case, s.nb, consent=consent,
                          reason="nazorg na schoonmaak"))
    await s.sync(s.nb, s.c.bezoekwerk, s.c.welzijn)
    view = s.readable_case(s.c.bezoekwerk, s.nb, s.referred_case)
    t.check(view is not None and "housing-pollution" in view.state.get("domains", []),
            "the church visiting service reads the referred case's anonymous layer")
    t.check(not s.c.bezoekwerk.p.identity.get(s.nb, s.referred_case),
            "...and not the tenant's identity")


__all__ = ["found_oggz", "housing_pollution", "referral"]
