"""Acts 8 and 9: what can be checked afterwards, by someone who took part in nothing.

The privacy officer verifies both audit logs from scratch and reads a subject access
report; then the server's own database is searched for anything it should not hold.
"""

from __future__ import annotations

from schakel.cli.demo.cast import CONSULT_INTAKE, DRIVER_CONCERN, JUSTIFICATION, MAN_INTAKE
from schakel.cli.demo.stage import Stage


async def audit(s: Stage) -> None:
    """Act 8: the privacy officer, auditor in both networks, verifies both audit logs
    from scratch: every entry recomputed and proven included, each head signed by the
    server's log key.  It reads the housing case's trail (invocation, the refused early
    release, the co-sign, the release) and the man's subject access report (the visiting
    service's release, the refused BSN)."""
    t, a = s.t, s.c.privacy
    t.section("8. The auditor verifies both logs from scratch")
    for network in (s.nb, s.oggz):
        v = await t.holds(f"{s.name_of(network)}: every entry recomputed, proven "
                          f"included, the head signed by the server's log key",
                          lambda: a.p.audit.verify(network))     # awaited here
        if v is not None:
            s.logs[s.name_of(network)] = v.size
            t.check(v.size > 0 and v.checked + v.erased == v.size,
                    f"size {v.size}, root {v.root[:16]}…: all {v.checked} entries checked",
                    why=f"checked {v.checked}, erased {v.erased}")
    await t.holds("the 'out' and 'in' sides of the referral are in the two logs",
                  lambda: _referral_logged(s))
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
    report = await t.holds("the subject access report of the man's case",
                           lambda: a.p.reports.access(s.nb, s.man_case))
    if report is not None:
        for line in str(report.get("text", "")).splitlines()[:24]:
            s.t.say(f"      | {line}")
        releases, denials = report.get("releases", []), report.get("denials", [])
        t.check(any(r.get("partner") == s.c.bezoekwerk.p.key_id for r in releases)
                and any(d.get("reason") == "informal-class-not-allowed" for d in denials),
                "it lists the visiting service's release and the refused BSN")


async def _referral_logged(s: Stage) -> None:
    out = await s.c.privacy.p.audit.entries(s.oggz)
    into = await s.c.privacy.p.audit.entries(s.nb)
    if not any(e["entry"].get("action") == "referral-out" for e in out):
        raise AssertionError("no referral-out entry in the oggz log")
    if not any(e["entry"].get("action") == "referral-in" for e in into):
        raise AssertionError("no referral-in entry in the neighbourhood log")


async def server_holds_no_plaintext(s: Stage) -> None:
    """Act 9: the server's database holds the ids the story used, and no name, street,
    BSN, anonymous text, concern or justification; the visiting service's own state file
    keeps the name it was given encrypted."""
    t = s.t
    t.section("9. What the server holds: ciphertext, signatures, pseudonyms")
    blob = b"".join(p.read_bytes() for p in sorted(s.server_data.glob("schakel.db*"))
                    if p.is_file())
    t.check(s.nb.encode() in blob and s.man_case.encode() in blob,
            f"its database ({len(blob) // 1024} KiB with the WAL) holds the network and case "
            f"ids (the grep works)")
    for what, needles in (
            ("the man's name, street or BSN", ("Hendrik", "de Vries", "Soesterweg",
                                               "111222333")),
            ("the tenant's name or address", ("Brouwer", "Van Asch van Wijckstraat")),
            ("the anonymous layer's text", (str(MAN_INTAKE["summary"])[:30],
                                            str(CONSULT_INTAKE["summary"])[:30])),
            ("the driver's concern or the bemoeizorg justification",
             (DRIVER_CONCERN[:30], JUSTIFICATION[:30]))):
        found = [n for n in needles if n.encode() in blob]
        t.check(not found, f"no trace of {what}", why=f"found {found}")
    state = b"".join(p.read_bytes() for p in (s.homes / "bezoekwerk").glob("state.db*"))
    held = s.c.bezoekwerk.p.identity.get(s.nb, s.man_case)
    t.check(bool(held) and b"Hendrik" not in state,
            "the visiting service's own state file keeps his name encrypted too")


__all__ = ["audit", "server_holds_no_plaintext"]
