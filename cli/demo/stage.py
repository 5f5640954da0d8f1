"""What the practices share: the narration, the server, the homes, the networks founded
so far; the few moves every act makes (a partner joins a network, partners sync, a party
looks at a case); and the shape of a practice (:class:`Practice`, :class:`Scene`).

Each organisation acts only through its own :class:`schakel.client.Partner` (its own
home, keys and verified state): what a party is shown reading is what its client
decrypted and verified, and what it is shown not reading is a refusal or an absence
checked by the act.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from schakel.cli.demo.tally import Tally
from schakel.client.partner import Partner
from schakel.keys import KdfParams

#: One passphrase for every demo home, so `--serve` can tell you one SCHAKEL_PASSPHRASE.
#: A demo value: real homes each get their own (docs/roles/).
PASSPHRASE = "schakel demo passphrase, not a secret"


@dataclass
class Org:
    """One organisation: its home directory and, once created, its :class:`Partner`."""

    slug: str
    name: str
    acting_user: str
    partner: Partner | None = None
    folder: Path | None = None

    @property
    def p(self) -> Partner:
        if self.partner is None:
            raise RuntimeError(f"{self.name} has no home yet")
        return self.partner

    @property
    def home(self) -> Path:
        if self.folder is None:
            raise RuntimeError(f"{self.name} has no home yet")
        return self.folder


def org(slug: str, name: str, acting_user: str) -> Any:
    """A field of a cast: one organisation, made fresh for every scene."""
    return field(default_factory=lambda: Org(slug, name, acting_user))


@dataclass
class Cast:
    """The organisations of one practice, one :func:`org` field each."""

    def all(self) -> list[Org]:
        return [getattr(self, f.name) for f in fields(self)]


@dataclass(frozen=True)
class Founded:
    """A network a practice founded: what the oversight acts verify afterwards."""

    network: str
    name: str
    covenant: str
    coordinator: Org
    auditor: Org


@dataclass
class Stage:
    """The running demo, shared by every practice that plays: ``t`` narrates and counts;
    the practices register the networks they found, what the server must never hold,
    and the bases of the identity releases they made."""

    t: Tally
    server: str                    # the server's URL
    server_fingerprint: str        # what `schakel server init` printed
    homes: Path                    # one folder per practice, one per organisation in it
    server_data: Path              # the server's data directory (the oversight reads it)
    orgs: list[Org] = field(default_factory=list)                  # every home made
    networks: list[Founded] = field(default_factory=list)
    #: (what, texts): what the server's database must hold no trace of.
    secrets: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    releases: list[str] = field(default_factory=list)   # the basis of each identity release
    logs: dict[str, int] = field(default_factory=dict)  # network name -> audit log size verified

    def founded(self, network: str, name: str, covenant: str, *, coordinator: Org,
                auditor: Org) -> None:
        self.networks.append(Founded(network, name, covenant, coordinator, auditor))

    def network(self, network: str) -> Founded:
        for f in self.networks:
            if f.network == network:
                return f
        raise KeyError(network)

    def keep_secret(self, what: str, *texts: str) -> None:
        """Texts the server's database must never hold (checked after every practice)."""
        self.secrets.append((what, tuple(texts)))

    async def create_homes(self, folder: str, orgs: Sequence[Org]) -> None:
        """Every organisation of a practice creates its own home in ``homes/folder``:
        its key pair, its keystore under the passphrase, its local state."""
        for o in orgs:
            o.folder = self.homes / folder / o.slug
            o.partner = await Partner.create(o.folder, PASSPHRASE, name=o.name,
                                             server=self.server, acting_user=o.acting_user,
                                             kdf=KdfParams.INTERACTIVE)
            self.orgs.append(o)
        self.t.check(len({o.p.key_id for o in orgs}) == len(orgs),
                     f"{len(orgs)} organisations, each with its own key pair in its own home "
                     f"({self.homes / folder})")

    async def join(self, network: str, coordinator: Org, o: Org, *, ring: str, party: str,
                   roles: tuple[str, ...] = (), on_behalf_of: tuple[str, ...] = (),
                   users: dict[str, str] | None = None,
                   before_trust: Callable[[], Awaitable[None]] | None = None) -> None:
        """The covenant ceremony for one partner: the coordinator checks the partner's
        bundle and admits it (with ``on_behalf_of`` and ``users`` signed into its
        membership when given, protocol.md §N.4); the partner configures the
        coordinator's fingerprint it heard aloud, accepts the covenant and syncs
        (verifying the genesis and the chain)."""
        kind = "shell" if ring == "shell" else "core"
        what = (f"{o.name} joins as {kind}, {party}"
                f"{', roles: ' + ', '.join(roles) if roles else ''}"
                f"{f', on behalf of {len(on_behalf_of)} organisations' if on_behalf_of else ''}"
                f"{f', {len(users)} listed users' if users else ''}")

        async def ceremony() -> None:
            await coordinator.p.networks.admit(network, o.p.bundle(), ring=ring, party=party,
                                               roles=roles, fingerprint=o.p.fingerprint,
                                               on_behalf_of=on_behalf_of, users=users)
            if before_trust is not None:
                await before_trust()
            o.p.trust(network, coordinator.p.fingerprint)
            await o.p.networks.accept_covenant(network, self.network(network).covenant)
            await o.p.sync(network)

        await self.t.holds(what, ceremony)

    async def sync(self, network: str, *orgs: Org) -> None:
        for o in orgs:
            await o.p.sync(network)

    def readable_case(self, o: Org, network: str, case: str) -> Any:
        """The case as ``o`` holds it, or None when it holds nothing readable."""
        try:
            view = o.p.cases.get(network, case)
        except Exception:  # noqa: BLE001 -- "does not hold it" is the answer here
            return None
        return view if view.readable else None

    async def close(self) -> None:
        """Close every organisation's client (after a failure too, without hiding it)."""
        for o in self.orgs:
            if o.partner is not None:
                try:
                    await o.partner.close()
                except Exception:  # noqa: BLE001 -- closing after a failure must not hide it
                    pass


@dataclass
class Scene:
    """One practice being played on a :class:`Stage`.  A practice's scene adds its own
    cast (a :class:`Cast` named ``c``) and the ids its acts bring into being.  Acts are
    functions of their practice's scene; the stage's moves are at hand on it (``s.t``,
    ``s.join``, ``s.sync``, ...)."""

    stage: Stage

    @property
    def t(self) -> Tally:
        return self.stage.t

    @property
    def homes(self) -> Path:
        return self.stage.homes

    @property
    def server_fingerprint(self) -> str:
        return self.stage.server_fingerprint

    @property
    def releases(self) -> list[str]:
        return self.stage.releases

    async def join(self, network: str, coordinator: Org, o: Org, **kwargs: Any) -> None:
        await self.stage.join(network, coordinator, o, **kwargs)

    async def sync(self, network: str, *orgs: Org) -> None:
        await self.stage.sync(network, *orgs)

    def readable_case(self, o: Org, network: str, case: str) -> Any:
        return self.stage.readable_case(o, network, case)


Act = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Practice:
    """One practice of the report (schema 2), played by ``schakel demo --practice NAME``.

    ``report`` is the narration it opens with: what the report says of this practice.
    ``scene`` makes the practice's :class:`Scene` (its own cast) on a stage; ``acts`` are
    played on it in order, each narrating and checking.  ``instructions`` are the lines
    ``--serve`` prints for it; ``recap`` its lines of the summary."""

    name: str
    title: str
    report: tuple[str, ...]
    scene: Callable[[Stage], Scene]
    acts: tuple[Act, ...]
    instructions: Callable[[Any], str]
    recap: Callable[[Any], list[str]] = lambda scene: []


__all__ = ["PASSPHRASE", "Org", "org", "Cast", "Founded", "Stage", "Scene", "Act", "Practice"]
