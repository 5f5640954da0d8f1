"""What can be checked after the practices played, by someone who took part in nothing.

Each network's auditor verifies its audit log from scratch; a witness cosigns the first two
networks' logs and refuses a forked one (:mod:`schakel.cli.demo.witnessed`); then the server's own
database is searched for every text the practices registered as never to be held there
(``Stage.keep_secret``): names, addresses, BSNs, the anonymous layers' words, concerns,
justifications.
"""

from __future__ import annotations

from schakel.cli.demo.stage import Stage


async def audit(s: Stage) -> None:
    """Every network's auditor verifies its log from scratch: every entry recomputed and
    proven included, each head signed by the server's log key."""
    t = s.t
    t.section("The auditors verify every audit log from scratch")
    for f in s.networks:
        v = await t.holds(f"{f.name}: {f.auditor.name} recomputes every entry, proves it "
                          f"included, checks the head's signature by the server's log key",
                          f.auditor.p.audit.verify(f.network))
        if v is not None:
            s.logs[f.name] = v.size
            t.check(v.size > 0 and v.checked + v.erased == v.size,
                    f"size {v.size}, root {v.root[:16]}…: all {v.checked} entries checked",
                    why=f"checked {v.checked}, erased {v.erased}")


async def server_holds_no_plaintext(s: Stage) -> None:
    """The server's database holds the ids the practices used, and none of the texts
    they registered as secrets."""
    t = s.t
    t.section("What the server holds: ciphertext, signatures, pseudonyms")
    blob = b"".join(p.read_bytes() for p in sorted(s.server_data.glob("schakel.db*"))
                    if p.is_file())
    if s.networks:
        t.check(all(f.network.encode() in blob for f in s.networks),
                f"its database ({len(blob) // 1024} KiB with the WAL) holds the ids of the "
                f"networks played ({len(s.networks)}: the grep works)")
    for what, needles in s.secrets:
        found = [n for n in needles if n.encode() in blob]
        t.check(not found, f"no trace of {what}", why=f"found {found}")


async def witnesses(s: Stage) -> None:
    """A witness cosigns the first two networks' logs; a forked log is caught
    (:mod:`schakel.cli.demo.witnessed`)."""
    from schakel.cli.demo.witnessed import witnessed

    await witnessed(s)


#: Played after the practices, on what they founded.
ACTS = (audit, witnesses, server_holds_no_plaintext)

__all__ = ["ACTS", "audit", "server_holds_no_plaintext"]
