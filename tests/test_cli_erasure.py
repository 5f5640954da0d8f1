"""``schakel case rectify`` and ``schakel case erase`` run as partners run them (AVG art.
16 and 17; docs/protocol.md §C.12 and §14.3; ADR 0034): real subprocesses against a real
``schakel serve`` (tests/cli_harness.py), one home per organisation, checked output, exit
codes and refusals.

The cast of tests/test_cli_flows.py: ``coord`` (the regie, coordinator), ``social`` (core,
formal: brings in the cases, so owns them) and ``visit`` (core, informal volunteers, who
receive name and address under the person's consent).  Each test brings in a case of its
own, so that no test depends on what another one erased.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server_harness import IDENTITY, INTAKE
from tests.test_cli_flows import World, admit, create_network, init_all, served

REASON_16 = "verzoek betrokkene via de regie, AVG art. 16"
REASON_17 = "verzoek betrokkene via de regie, AVG art. 17"
FIXED = {"street": "Soesterweg", "house_number": "12A", "postcode": "3812 AB",
         "city": "Amersfoort"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with served(tmp_path_factory, "cli-erasure") as w:
        init_all(w, (w.coord, "Welzijn Amersfoort, regie"),
                 (w.social, "Maatschappelijk Werk Amersfoort"),
                 (w.visit, "Kerkelijk Bezoekwerk Soesterkwartier"))
        w.network = create_network(w)["network"]
        admit(w, w.social, "--ring", "core", "--party", "formal", "--role", "professional-secrecy")
        admit(w, w.visit, "--ring", "core", "--party", "informal")
        yield w


def new_case(w: World, label: str) -> str:
    """Social work brings in a case with the person's identity sealed."""
    return str(w.social.json("case", "create", w.network,
                             "--intake-file", w.file(f"intake-{label}.json", INTAKE),
                             "--identity-file", w.file(f"identity-{label}.json", IDENTITY)
                             )["case"])


def released_case(w: World, label: str) -> tuple[str, str]:
    """A new case; the person consents; the regie grants the volunteers name and address;
    the volunteers release them.  (case, grant)."""
    case = new_case(w, label)
    evidence = w.root / f"toestemming-{label}.pdf"
    evidence.write_bytes(b"%PDF-1.4 getekend toestemmingsformulier " + label.encode())
    consent = w.social.json("consent", "record", w.network, case, "--class", "name",
                            "--class", "address", "--partner", w.visit.key_id,
                            "--purpose", "bezoek door vrijwilliger",
                            "--evidence-file", str(evidence))["consent"]
    grant = w.coord.json("grant", "create", w.network, case, "--consent", consent,
                         "--to", w.visit.key_id, "--class", "name", "--class", "address",
                         "--reason", "wekelijks bezoek")["grant"]
    w.visit.ok("grant", "release", w.network, grant)
    assert w.visit.json("case", "identity", w.network, case)["identity"]["address"] == \
        IDENTITY["address"]
    return str(case), str(grant)


def held(w: World, org: Any, case: str) -> dict[str, Any]:
    """The identity ``org``'s home holds for ``case`` after a sync (``schakel case
    identity``)."""
    org.ok("sync", w.network)
    return dict(org.json("case", "identity", w.network, case)["identity"])


def address_options(address: dict[str, str]) -> list[str]:
    return ["--street", address["street"], "--house-number", address["house_number"],
            "--postcode", address["postcode"], "--city", address["city"]]


def audit_actions(w: World, case: str) -> list[dict[str, Any]]:
    """The verified audit entries about ``case``, as the regie's `schakel audit log` lists
    them."""
    entries = w.coord.json("audit", "log", w.network)["entries"]
    return [{**e["entry"], "index": e["index"]} for e in entries
            if e["entry"] and e["entry"].get("case") == case]


# --------------------------------------------------------------------------- rectify


def test_case_rectify_by_the_owner_gives_the_grantee_the_corrected_address_after_its_sync(
        world: World) -> None:
    """Social work corrects the house number: the command prints the purge and the versions;
    the volunteers' next sync destroys version 1, and their release under the same grant
    reads version 2; the owner holds the corrected address; the log names the owner."""
    case, grant = released_case(world, "rectify")
    done = world.social.json("case", "rectify", world.network, case, *address_options(FIXED),
                             "--reason", REASON_16)
    assert (done["case"], done["kind"], done["identity_version"], done["classes"]) == (
        case, "rectification", 1, ["address"])
    assert isinstance(done["audit_index"], int) and done["purge"]

    assert held(world, world.visit, case) == {}            # version 1 destroyed on sync
    text = world.visit.ok("grant", "release", world.network, grant)
    assert "12A" in text and "Hendrik" in text
    assert held(world, world.visit, case) == {"name": IDENTITY["name"], "address": FIXED}
    assert held(world, world.social, case) == {**IDENTITY, "address": FIXED}
    [entry] = [e for e in audit_actions(world, case) if e["action"] == "rectification"]
    assert (entry["ref"], entry["actor"]["partner"]) == (done["purge"], world.social.key_id)
    assert REASON_16 not in json.dumps(entry)              # sealed, never in the clear


def test_case_rectify_prints_what_happened(world: World) -> None:
    """Without --json: the purge, and which version was destroyed and which holds the
    corrected fields."""
    case = new_case(world, "rectify-text")
    text = world.social.ok("case", "rectify", world.network, case, "--family-name", "de Vries",
                           "--given-names", "Hendrikus", "--reason", REASON_16)
    assert "rectified: version 1 destroyed, version 2 holds the corrected fields" in text
    assert held(world, world.social, case)["name"] == {"given_names": "Hendrikus",
                                                       "family_name": "de Vries"}


def test_case_rectify_by_the_coordinator_is_refused_only_the_owner_seals_identity(
        world: World) -> None:
    """The regie may erase but not rectify (ADR 0034 §1): its client refuses before it
    sends anything, with the reason and who can act (the owner, to whom the regie passes
    the person's request), and the owner keeps version 1."""
    case = new_case(world, "rectify-coordinator")
    refused = world.coord.refused(1, "case", "rectify", world.network, case,
                                  *address_options(FIXED), "--reason", REASON_16)
    assert "not-case-owner" in refused.stderr and "nothing was sent" in refused.stderr
    assert "you are this network's coördinator: the casus's owner" in refused.stderr
    assert "pass the person's request on to them" in refused.stderr
    assert held(world, world.social, case) == IDENTITY
    assert [e for e in audit_actions(world, case) if e["action"] == "rectification"] == []


def test_case_rectify_without_fields_is_a_usage_error(world: World) -> None:
    """Nothing to correct: a usage error (exit 2) before the passphrase is asked."""
    result = world.social.run("case", "rectify", world.network, "AAAAAAAAAAAAAAAAAAAAAA",
                              "--reason", REASON_16, passphrase=None)
    assert result.returncode == 2 and "name the corrected fields" in result.stderr
    assert "--street" in result.stderr and "Usage:" in result.stderr
    assert "Traceback" not in result.stderr and "Passphrase" not in result.stderr


def test_case_rectify_reason_naming_the_person_is_refused_before_anything_is_sent(
        world: World) -> None:
    """The reason is sealed for the regie and the auditors, never identity: the PII guard
    refuses a phone number in it before the passphrase is asked."""
    case = new_case(world, "rectify-pii")
    result = world.social.run("case", "rectify", world.network, case, *address_options(FIXED),
                              "--reason", "dochter belde: 06-12345678", passphrase=None)
    assert result.returncode == 1 and "Passphrase" not in result.stderr
    assert "[telefoon]" in result.stderr and "nothing was sent" in result.stderr
    assert "Traceback" not in result.stderr
    assert held(world, world.social, case) == IDENTITY


# --------------------------------------------------------------------------- erase


def test_case_erase_by_the_coordinator_purges_every_holder_and_a_release_is_refused(
        world: World) -> None:
    """The regie erases on the person's request: the command prints the erasure; the
    owner and the volunteers hold nothing after their sync; the volunteers' release under
    the grant made before is refused (identity-erased) and audited; a second erasure is
    refused; the server's files hold none of the identity; the log names the regie as
    coordinator and the owner as subject, with the reason sealed."""
    case, grant = released_case(world, "erase")
    text = world.coord.ok("case", "erase", world.network, case, "--reason", REASON_17)
    assert "erased: no partner can open this identity any more" in text

    assert held(world, world.visit, case) == {}
    assert held(world, world.social, case) == {}
    assert "no identity held" in world.visit.ok("case", "identity", world.network, case)
    refused = world.visit.refused(1, "grant", "release", world.network, grant)
    assert "identity-erased" in refused.stderr and "AVG art. 17" in refused.stderr
    again = world.coord.refused(1, "case", "erase", world.network, case, "--reason", REASON_17)
    assert "identity-erased" in again.stderr

    entries = audit_actions(world, case)
    [erasure] = [e for e in entries if e["action"] == "erasure"]
    assert (erasure["actor"]["partner"], erasure["actor"]["role"], erasure["subject"]) == (
        world.coord.key_id, "coordinator", world.social.key_id)
    assert REASON_17 not in json.dumps(erasure)
    assert [e["ref"] for e in entries if e["action"] == "deny"
            and e["reason"] == "identity-erased"] == [grant]
    shown = world.coord.json("case", "show", world.network, case)       # the anonymous layer
    assert shown["state"]["summary"] == INTAKE["summary"]               # stays (ADR 0034)
    for path in world.server.data.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [n for n in (b"Hendrik", b"de Vries", b"Soesterweg", b"111222333")
                        if n in data], path


def test_case_erase_json_names_the_purge_and_its_audit_entry(world: World) -> None:
    """The owner may erase too (a request made to it directly); --json gives the purge."""
    case = new_case(world, "erase-json")
    done = world.social.json("case", "erase", world.network, case, "--reason", REASON_17)
    assert (done["case"], done["kind"], done["identity_version"]) == (case, "erasure", 1)
    [entry] = [e for e in audit_actions(world, case) if e["action"] == "erasure"]
    assert (entry["index"], entry["ref"], entry["actor"]["partner"]) == (
        done["audit_index"], done["purge"], world.social.key_id)
    assert held(world, world.social, case) == {}


def test_case_erase_by_a_member_neither_owner_nor_coordinator_is_refused(world: World) -> None:
    """The volunteers received the identity but may not erase it for everyone: refused
    with the reason before anything is sent; every holder keeps it, and the log holds no
    erasure."""
    case, _ = released_case(world, "erase-member")
    refused = world.visit.refused(1, "case", "erase", world.network, case, "--reason", REASON_17)
    assert "not-case-owner" in refused.stderr and "nothing was sent" in refused.stderr
    assert "a person's erasure also the coördinator" in refused.stderr
    assert held(world, world.social, case) == IDENTITY
    assert held(world, world.visit, case)["name"] == IDENTITY["name"]
    assert [e for e in audit_actions(world, case) if e["action"] == "erasure"] == []


def test_case_rectify_after_an_erasure_is_refused(world: World) -> None:
    """Erasure is final (ADR 0034 §3): the owner cannot seal the identity again under the
    same pseudonym."""
    case = new_case(world, "erase-final")
    world.coord.ok("case", "erase", world.network, case, "--reason", REASON_17)
    refused = world.social.refused(1, "case", "rectify", world.network, case,
                                   *address_options(FIXED), "--reason", REASON_16)
    assert "identity-erased" in refused.stderr
    assert held(world, world.social, case) == {}
