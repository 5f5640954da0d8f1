"""What the demo's acts share: the narration, the server, the cast, and what the story
has brought into being so far; and the few moves every act makes (a partner joins a
network, partners sync, a party looks at a case).

Each organisation acts only through its own :class:`schakel.client.Partner` (its own
home, keys and verified state): what a party is shown reading is what its client
decrypted and verified, and what it is shown not reading is a refusal or an absence
checked by the act.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schakel.cli.demo.cast import COVENANTS, NEIGHBOURHOOD, OGGZ, Cast, Org
from schakel.cli.demo.tally import Tally

#: One passphrase for every demo home, so `--serve` can tell you one SCHAKEL_PASSPHRASE.
#: A demo value: real homes each get their own (docs/roles/).
PASSPHRASE = "schakel demo passphrase, not a secret"


@dataclass
class Stage:
    """The running story: ``t`` narrates and counts, ``c`` is the cast; the ids are
    filled in as the acts found networks and bring in cases."""

    t: Tally
    server: str                    # the server's URL
    server_fingerprint: str        # what `schakel server init` printed
    homes: Path                    # one folder per organisation
    server_data: Path              # the server's data directory (act 9 reads it)
    c: Cast = field(default_factory=Cast)
    nb: str = ""                   # the neighbourhood network's id, once founded
    oggz: str = ""                 # the oggz network's id
    man_case: str = ""
    tenant_case: str = ""
    consult_case: str = ""
    referred_case: str = ""
    releases: list[str] = field(default_factory=list)   # the basis of each identity release
    logs: dict[str, int] = field(default_factory=dict)  # network name -> audit log size verified

    def name_of(self, network: str) -> str:
        return NEIGHBOURHOOD if network == self.nb else OGGZ

    async def join(self, network: str, coordinator: Org, org: Org, *, ring: str, party: str,
                   roles: tuple[str, ...] = (),
                   before_trust: Callable[[], Awaitable[None]] | None = None) -> None:
        """The covenant ceremony for one partner: the coordinator checks the partner's
        bundle and admits it; the partner configures the coordinator's fingerprint it
        heard aloud, accepts the covenant and syncs (verifying the genesis and the chain)."""
        kind = "shell" if ring == "shell" else "core"
        what = (f"{org.name} joins as {kind}, {party}"
                f"{', roles: ' + ', '.join(roles) if roles else ''}")

        async def ceremony() -> None:
            await coordinator.p.networks.admit(network, org.p.bundle(), ring=ring, party=party,
                                      roles=roles, fingerprint=org.p.fingerprint)
            if before_trust is not None:
                await before_trust()
            org.p.trust(network, coordinator.p.fingerprint)
            await org.p.networks.accept_covenant(network, COVENANTS[self.name_of(network)])
            await org.p.sync(network)

        await self.t.holds(what, ceremony)

    async def sync(self, network: str, *orgs: Org) -> None:
        for org in orgs:
            await org.p.sync(network)

    def readable_case(self, org: Org, network: str, case: str) -> Any:
        """The case as ``org`` holds it, or None when it holds nothing readable."""
        try:
            view = org.p.cases.get(network, case)
        except Exception:  # noqa: BLE001 -- "does not hold it" is the answer here
            return None
        return view if view.readable else None

    async def close(self) -> None:
        """Close every organisation's client (after a failure too, without hiding it)."""
        for org in self.c.all():
            if org.partner is not None:
                try:
                    await org.partner.close()
                except Exception:  # noqa: BLE001 -- closing after a failure must not hide it
                    pass


__all__ = ["PASSPHRASE", "Stage"]
