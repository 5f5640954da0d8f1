"""The client library's PII guard against a real server (docs/protocol.md §8, §N.2, §16.7):
the network policy's allow-list reaches every member only through the coordinator's
signature, the library checks with it before anything is sent, and a refusal says where
and what without the text.

Real server and real partners (tests/client_harness.py), a lying server through
tests/tamper_proxy.py; nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schakel.client import ServerMisbehaviour
from schakel.protocol.errors import PolicyViolation
from tests.client_harness import (
    COVENANT, INTAKE, admit, make_partner, network_policy, running_server, server_fingerprint,
    standard_network,
)
from tests.tamper_proxy import tampered_server
from tests.test_client_core import requests_served

ALLOW = ["Soesterkwartier", "Buurthuis De Kruiskamp", "Buurthuis Jan van Galen"]


@pytest.fixture
async def world(tmp_path: Path) -> Any:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url, pii_allow=ALLOW)
        try:
            yield cast, url, tmp_path
        finally:
            await cast.close()


async def test_every_member_reads_the_allow_list_of_the_genesis_it_verified(world: Any) -> None:
    cast, url, tmp_path = world
    for partner in cast.partners:
        assert partner.networks.pii_allow(cast.network) == tuple(ALLOW)
    newcomer = await make_partner(tmp_path, url, "newcomer")
    try:
        assert newcomer.networks.pii_allow(cast.network) == ()         # not trusted: no list
        newcomer.trust(cast.network, cast.coordinator.fingerprint)
        assert newcomer.networks.pii_allow(cast.network) == ()         # trusted, never synced
    finally:
        await newcomer.close()


async def test_a_refusal_names_path_kind_span_and_placeholder_and_nothing_is_sent(
        world: Any) -> None:
    cast, url, _ = world
    case = await cast.formal.cases.consult(cast.network, INTAKE)
    text = "Buurman belt op 06-12345678 als het slecht gaat."
    before = await requests_served(url)
    with pytest.raises(PolicyViolation) as caught:
        await cast.formal.cases.add_event(cast.network, case, {"kind": "note", "text": text})
    assert await requests_served(url) == before
    assert caught.value.details == {"count": 1, "findings": [
        {"path": "text", "kind": "phone", "start": 16, "end": 27, "placeholder": "[telefoon]"}]}
    assert text[16:27] == "06-12345678" and "06-12345678" not in caught.value.message


@pytest.mark.parametrize("contact", ["known-network", "first-contact"])
async def test_a_server_that_widens_the_allow_list_is_caught(tmp_path: Path,
                                                             contact: str) -> None:
    """The server gains from a wider list: names would then pass the guard into the
    cleartext reasons and purposes it stores.  The genesis signature covers the list."""
    async with tampered_server(tmp_path) as env:
        coord = await make_partner(tmp_path, env.url, "coordinator")
        member = await make_partner(tmp_path, env.url, "member")
        try:
            network = await coord.networks.create(
                name="Buurtnetwerk Test", kind="neighbourhood", covenant=COVENANT,
                server_fingerprint=server_fingerprint(env.url),
                policy=network_policy("neighbourhood", pii_allow=ALLOW))
            await admit(coord, network, member, ring="core", party="formal")
            if contact == "known-network":
                await member.sync(network)

            def widen(body: Any) -> Any:
                body["genesis"]["signed"]["policy"]["pii_allow"].append("Jansen")
                return body
            env.proxy.on("GET", rf"/v1/networks/{network}", widen)
            with pytest.raises(ServerMisbehaviour) as caught:
                await member.sync(network)
            assert env.proxy.hits() > 0 and caught.value.what == "genesis-untrusted"
            assert [m["what"] for m in member.misbehaviours()] == ["genesis-untrusted"]
            assert "Jansen" not in member.networks.pii_allow(network)
        finally:
            await member.close()
            await coord.close()


# --------------------------------------------------------------------------- names and streets
# These need the name and street detectors, which land separately; until then they fail.

@pytest.mark.parametrize(("text", "kinds"), [
    ("Meneer de Vries woont alleen.", ["person_name"]),
    ("Mevrouw Jansen op Soesterweg 12 laat niemand binnen.", ["person_name", "street_address"]),
])
async def test_a_name_and_a_street_address_are_refused_before_anything_is_sent(
        world: Any, text: str, kinds: list[str]) -> None:
    cast, url, _ = world
    case = await cast.formal.cases.consult(cast.network, INTAKE)
    before = await requests_served(url)
    with pytest.raises(PolicyViolation) as caught:
        await cast.formal.cases.add_event(cast.network, case, {"kind": "note", "text": text})
    assert await requests_served(url) == before
    assert [f["kind"] for f in caught.value.details["findings"]] == kinds
    assert {f["placeholder"] for f in caught.value.details["findings"]} <= {"[naam]", "[straat]"}
    assert "Jansen" not in caught.value.message and "Vries" not in caught.value.message


async def test_an_allow_listed_name_passes_in_its_own_network_only(world: Any) -> None:
    """The same text is refused in a network whose policy does not list the words."""
    cast, url, _ = world
    other = await cast.coordinator.networks.create(
        name="Buurtnetwerk Leusderkwartier", kind="neighbourhood", covenant=COVENANT,
        server_fingerprint=server_fingerprint(url), policy=network_policy("neighbourhood"))
    intake = {**INTAKE, "summary": "Komt elke week in Buurthuis Jan van Galen."}
    assert await cast.coordinator.cases.consult(cast.network, intake)
    with pytest.raises(PolicyViolation) as caught:
        await cast.coordinator.cases.consult(other, intake)
    assert [f["kind"] for f in caught.value.details["findings"]] == ["person_name"]
