"""A real server and real partners for the client library's tests (ADR 0007).

* :func:`running_server` -- the real application (``schakel.server.app.make_app``, assembled by
  ``tests.server_harness.build_app``) served in-process by ``aiohttp.test_utils.TestServer``
  on a **real loopback socket** with the **real clock**.  In-process because it starts
  in milliseconds and fails with a traceback; a real socket and clock because the client
  is the thing under test: it opens its own ``aiohttp.ClientSession`` to the URL, signs
  for it, and its requests pass the server's skew and replay checks exactly as in
  production.  The socket is bound before the app is built so that the server's public
  origin (what it verifies signatures against) is the URL the clients use.
* :func:`make_partner` -- a partner with a fresh home directory (Argon2id INTERACTIVE:
  the cheapest level the keystore accepts; passphrase :data:`PASSPHRASE`).
* :func:`standard_network` -- the usual cast built only through the public ``Partner``
  API: a coordinator, a formal and an informal core member, a shell partner and an
  auditor, in a neighbourhood network with a cheap blind index.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schakel.keys import KdfParams
from schakel.server.config import Limits
from schakel.server.serverkeys import ServerKeys
from tests.server_harness import INTAKE, IDENTITY, RealClock, build_app, network_policy

from schakel.client.partner import Partner

PASSPHRASE = "test passphrase"
COVENANT = "Convenant Buurtnetwerk Soesterkwartier: wij delen alleen wat nodig is."

__all__ = ["PASSPHRASE", "COVENANT", "INTAKE", "IDENTITY", "running_server", "make_partner",
           "Cast", "standard_network", "network_policy", "server_fingerprint", "announced",
           "write_unchecked"]

#: The server fingerprint of each server a test runs, by the URL its clients use: what the
#: operator printed with `schakel server init` and gave the coordinator out of band
#: (docs/protocol.md §4.3).  Filled only while the server runs (:func:`announced`).
_ANNOUNCED: dict[str, str] = {}


@contextmanager
def announced(url: str, keys: ServerKeys) -> Iterator[None]:
    """While the block runs, :func:`server_fingerprint` answers ``keys``' fingerprint for
    ``url`` (the operator's out-of-band channel, for the tests)."""
    _ANNOUNCED[url] = str(keys.fingerprint)
    try:
        yield
    finally:
        _ANNOUNCED.pop(url, None)


def server_fingerprint(url: str) -> str:
    """The server fingerprint the operator of the server at ``url`` gave out, taken from
    the keys the test started it with, never from what the server answers."""
    return _ANNOUNCED[url]


@asynccontextmanager
async def running_server(tmp_path: Path, *, data: str = "server",
                         keys: ServerKeys | None = None, port: int = 0,
                         limits: Limits | None = None) -> AsyncIterator[str]:
    """Serve the real application on 127.0.0.1 (a free port, or ``port``: the port of a
    server that stopped, to restart it at the URL its partners know) until the block
    ends, with ``limits`` or the defaults; yields the base URL, which is also the
    server's public origin.  Its fingerprint is :func:`server_fingerprint` of the URL."""
    from aiohttp.test_utils import TestServer

    keys = keys or ServerKeys.generate()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    app = build_app(tmp_path / data, RealClock(), origin=url, keys=keys, limits=limits)
    server = TestServer(app, host="127.0.0.1", port=port,
                        socket_factory=lambda host, port, family: sock)
    await server.start_server()
    try:
        with announced(url, keys):
            yield url
    finally:
        await server.close()


async def make_partner(tmp_path: Path, url: str, label: str, name: str | None = None,
                       acting_user: str | None = None) -> Partner:
    """A new partner in ``tmp_path/label`` talking to ``url``."""
    return await Partner.create(tmp_path / label, PASSPHRASE, name=name or f"Partner {label}",
                                server=url, acting_user=acting_user or f"{label[:20]}-user-1",
                                kdf=KdfParams.INTERACTIVE)


@dataclass
class Cast:
    """A network and its partners (all opened; :meth:`close` closes them)."""

    network: str
    coordinator: Partner
    formal: Partner
    informal: Partner
    shell: Partner
    auditor: Partner
    extra: dict[str, Partner] = field(default_factory=dict)

    @property
    def partners(self) -> list[Partner]:
        return [self.coordinator, self.formal, self.informal, self.shell, self.auditor,
                *self.extra.values()]

    async def join(self, tmp_path: Path, url: str, label: str, *, ring: str = "core",
                   party: str = "formal", roles: tuple[str, ...] = ()) -> Partner:
        """One more partner, admitted by the coordinator, trusting it, covenant signed."""
        partner = await make_partner(tmp_path, url, label)
        await admit(self.coordinator, self.network, partner, ring=ring, party=party, roles=roles)
        self.extra[label] = partner
        return partner

    async def close(self) -> None:
        for p in self.partners:
            await p.close()


async def admit(coordinator: Partner, network: str, partner: Partner, *, ring: str,
                party: str, roles: tuple[str, ...] = ()) -> str:
    """The covenant ceremony: the partner trusts the coordinator's fingerprint, the
    coordinator checks the partner's bundle against the partner's fingerprint and
    admits it, the partner accepts the covenant."""
    partner.trust(network, coordinator.fingerprint)
    key = await coordinator.networks.admit(network, partner.bundle(), ring=ring, party=party,
                                  roles=roles, fingerprint=partner.fingerprint)
    await partner.networks.accept_covenant(network, COVENANT)
    return key


async def write_unchecked(partner: Partner, network: str, case: str,
                          plaintext: dict[str, Any]) -> int:
    """Append an event the way a client that skips its own policy check (an old version, a
    hostile one) would: the same signed, encrypted event :meth:`Cases.add_event <schakel.client.cases.Cases.add_event>`
    builds, without the PII guard or §7's action rules before it is sent.  The server
    cannot judge what it cannot read, so only the readers' clients can catch it.
    Returns the event's seq."""
    from schakel.client.fold import summary

    await partner.sync(network)
    info = summary(partner.session.state, network, case)
    assert info is not None, f"{partner.name} does not hold case {case}"
    version, seq = int(info["version"]), int(info["last_seq"]) + 1
    event = partner.cases._event(network, case, partner.session.case_key(network, case, version), version,
                           seq=seq, prev=info.get("last_hash"), plaintext=plaintext)
    await partner.session.conn.post(f"/v1/networks/{network}/cases/{case}/events", {"event": event})
    return seq


async def standard_network(tmp_path: Path, url: str, *, kind: str = "neighbourhood",
                           **policy: Any) -> Cast:
    """Coordinator + core formal (professional secrecy) + core informal + shell + auditor
    (shell ring, auditor role), everyone synced once."""
    coordinator = await make_partner(tmp_path, url, "coordinator",
                                     name="Welzijn Amersfoort (regie)")
    network = await coordinator.networks.create(
        name="Buurtnetwerk Soesterkwartier", kind=kind, covenant=COVENANT,
        server_fingerprint=server_fingerprint(url), policy=network_policy(kind, **policy))
    formal = await make_partner(tmp_path, url, "core-formal", name="Wijkteam Noord")
    informal = await make_partner(tmp_path, url, "core-informal", name="Buurtvrijwilligers")
    shell = await make_partner(tmp_path, url, "shell", name="Huisartsenpraktijk")
    auditor = await make_partner(tmp_path, url, "auditor", name="Privacy-auditor")
    await admit(coordinator, network, formal, ring="core", party="formal",
                roles=("professional-secrecy",))
    await admit(coordinator, network, informal, ring="core", party="informal")
    await admit(coordinator, network, shell, ring="shell", party="formal")
    await admit(coordinator, network, auditor, ring="shell", party="formal", roles=("auditor",))
    cast = Cast(network=network, coordinator=coordinator, formal=formal, informal=informal,
                shell=shell, auditor=auditor)
    for p in cast.partners:
        await p.sync(network)
    return cast
