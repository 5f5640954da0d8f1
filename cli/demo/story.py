"""The demo's story, act by act, in the report's order (../shared/seed, chapter 4).

Two networks share one server.  In the Buurtnetwerk 55+ Soesterkwartier
(:mod:`~schakel.cli.demo.neighbourhood`) a coordinator founds the network, a nurse asks an
anonymous question, a volunteer driver signals a concern, and an isolated man's name and
address reach a church visiting service with his consent while his BSN does not.  In the
Lokaal Zorgnetwerk Woningvervuiling (:mod:`~schakel.cli.demo.oggz`) a polluted house
calls for bemoeizorg, with four eyes and the auditor's review, and the case is then
referred to the neighbourhood for aftercare.  Finally (:mod:`~schakel.cli.demo.oversight`)
an auditor verifies both logs from scratch, and the server's database is searched for
anything it should not hold.

Every act narrates what each party reads and what it cannot, and every such claim is a
check in the :class:`~schakel.cli.demo.tally.Tally`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from schakel.cli.demo import neighbourhood, oggz, oversight
from schakel.cli.demo.stage import PASSPHRASE, Stage
from schakel.client.partner import Partner
from schakel.keys import KdfParams


async def create_homes(s: Stage) -> None:
    """Act 0: every organisation creates its own home: its key pair, its keystore under
    the passphrase, its local state.  Nobody holds anyone else's keys."""
    s.t.section("0. Every organisation creates its own home: keys, keystore, local state")
    for org in s.c.all():
        org.partner = await Partner.create(
            s.homes / org.slug, PASSPHRASE, name=org.name, server=s.server,
            acting_user=org.acting_user, kdf=KdfParams.INTERACTIVE)
    s.t.check(len({o.p.key_id for o in s.c.all()}) == len(s.c.all()),
              f"{len(s.c.all())} organisations, each with its own key pair in its own "
              f"home ({s.homes})")


#: The acts in the order they are played.
ACTS: tuple[Callable[[Stage], Awaitable[None]], ...] = (
    create_homes,
    neighbourhood.found_neighbourhood,      # 1. Buurtnetwerk 55+ Soesterkwartier
    neighbourhood.consult,                  # 2. an anonymous consult
    neighbourhood.driver_signal,            # 3. a volunteer driver's anonymous signal
    neighbourhood.elderly_man,              # 4. the isolated man, with his consent
    oggz.found_oggz,                        # 5. Lokaal Zorgnetwerk Woningvervuiling
    oggz.housing_pollution,                 # 6. bemoeizorg, four eyes, the review
    oggz.referral,                          # 7. aftercare in the neighbourhood network
    oversight.audit,                        # 8. the auditor verifies both logs
    oversight.server_holds_no_plaintext,    # 9. what the server holds
)


async def play(s: Stage) -> None:
    """Play every act on ``s``; an exception stops the story (the caller reports it)."""
    for act in ACTS:
        await act(s)


def recap(s: Stage) -> list[str]:
    """What the run showed, in numbers (printed before the check count)."""
    pairs = ((s.c.welzijn, s.nb), (s.c.ggd, s.oggz))
    cases = sum(len(o.p.cases.all(n)) for o, n in pairs if o.partner is not None and n)
    logs = ", ".join(f"{name} {size}" for name, size in s.logs.items()) or "none"
    return [
        f"{len(s.c.all())} organisations, each with its own home and keys; 2 networks; "
        f"{cases} cases and consults",
        f"identity released {len(s.releases)}x ({', '.join(s.releases) or '-'}), "
        f"each after its audit entry; {s.t.refusals} attempts refused, each with its reason",
        f"audit entries verified from scratch: {logs}",
    ]


__all__ = ["ACTS", "create_homes", "play", "recap"]
