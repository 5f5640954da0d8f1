"""The ``schakel`` command line run as coordinators and partners run it (issue 5):
real subprocesses, a real ``schakel serve`` on a loopback port, one home directory
per organisation, checked output and exit codes — refusals included.

One server and one network are shared by the whole module (building them costs a
few seconds of subprocesses); each test then walks one flow on top of it.  The cast:

* ``coord`` -- "Gemeente Amersfoort, regie": founds the network (coordinator, core, formal)
* ``social`` -- "Welzijn Amersfoort": core, formal, professional-secrecy; brings in the case
* ``visit`` -- "Vrijwillige Thuisbezoekers": core, informal (volunteers)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from schakel.cli.main import main
from schakel.cli.serverprocess import ServerProcess
from schakel.protocol.objects.network import default_policy
from tests.cli_harness import NO_LANGUAGE, PASSPHRASE, Org, free_port, live_server, schakel
from tests.server_harness import IDENTITY, INTAKE

COVENANT = "Convenant Buurtnetwerk 55+ Soesterkwartier: wij delen alleen wat nodig is.\n"


class World:
    """The shared network: the server, three organisations and the files they use."""

    def __init__(self, root: Path, server: ServerProcess) -> None:
        self.root, self.server = root, server
        self.coord = Org("coordinator", root / "coord")
        self.social = Org("social work", root / "social")
        self.visit = Org("volunteers", root / "visit")
        self.network = ""
        self.case = ""

    def file(self, name: str, content: Any) -> str:
        path = self.root / name
        path.write_text(content if isinstance(content, str) else json.dumps(content),
                        encoding="utf-8")
        return str(path)


def init(world: World, org: Org, name: str) -> None:
    made = schakel("init", "--home", str(org.home), "--name", name, "--server", world.server.url,
                   "--acting-user", f"{org.home.name}-1", "--kdf", "interactive", "--json",
                   cwd=world.root)
    assert made.returncode == 0, made.stderr
    info = json.loads(made.stdout)
    assert info["home"] == str(org.home) and (org.home / "keystore.json").exists()
    org.key_id, org.fingerprint = info["key_id"], info["fingerprint"]


def init_all(world: World, *orgs: tuple[Org, str]) -> None:
    """`schakel init` for several organisations at once (independent subprocesses)."""
    with ThreadPoolExecutor(max_workers=len(orgs)) as pool:
        for done in [pool.submit(init, world, org, name) for org, name in orgs]:
            done.result()


def admit(world: World, org: Org, *options: str, network: str | None = None) -> None:
    """The covenant ceremony for one partner: bundle, trust, added by the coordinator
    (with the fingerprint read aloud), join."""
    network = network or world.network
    bundle = world.root / f"{org.home.name}-bundle.json"
    org.ok("keys", "bundle", "--out", str(bundle))
    org.ok("network", "trust", network, "--fingerprint", world.coord.fingerprint)
    added = world.coord.json("member", "add", network, str(bundle), *options,
                             "--fingerprint", org.fingerprint)
    assert added["member"] == org.key_id and added["fingerprint_checked"] is True
    org.ok("network", "join", network, "--covenant-file", world.file("covenant.txt", COVENANT))


def cheap_policy(kind: str) -> dict[str, Any]:
    """The standard policy of ``kind`` with a blind index that costs milliseconds."""
    policy = default_policy(kind).to_json()
    policy["blind_index"] = {"opslimit": 1, "memlimit": 8192, "token_bytes": 4}
    return policy


def create_network(w: World, *options: str) -> dict[str, Any]:
    """The coordinator founds the neighbourhood network (cheap blind index) with ``options``."""
    return dict(w.coord.json("network", "create", "--name", "Buurtnetwerk 55+ Soesterkwartier",
                             "--kind", "neighbourhood",
                             "--covenant-file", w.file("covenant.txt", COVENANT),
                             "--server-fingerprint", w.server.fingerprint,
                             "--policy-file", w.file("policy.json", cheap_policy("neighbourhood")),
                             *options))


@contextmanager
def served(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[World]:
    """A running `schakel serve` and an empty world around it, stopped afterwards."""
    root = tmp_path_factory.mktemp(name)
    server = live_server(root / "server-data")
    try:
        yield World(root, server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with served(tmp_path_factory, "cli") as w:
        init_all(w, (w.coord, "Gemeente Amersfoort, regie"), (w.social, "Welzijn Amersfoort"),
                 (w.visit, "Vrijwillige Thuisbezoekers"))
        created = create_network(w)
        assert created["fingerprint"] == w.coord.fingerprint
        assert created["server_fingerprint"] == w.server.fingerprint
        w.network = created["network"]
        admit(w, w.social, "--ring", "core", "--party", "formal", "--role", "professional-secrecy")
        admit(w, w.visit, "--ring", "core", "--party", "informal")
        yield w


@pytest.fixture(scope="module")
def case(world: World) -> str:
    """Social work brings in Hendrik's case: anonymous intake plus sealed identity."""
    made = world.social.json("case", "create", world.network,
                             "--intake-file", world.file("intake.json", INTAKE),
                             "--identity-file", world.file("identity.json", IDENTITY))
    assert made["identity_classes"] == ["address", "name", "official"]
    world.case = made["case"]
    return str(made["case"])


# --------------------------------------------------------------------------- homes


def test_init_and_whoami(world: World) -> None:
    me = world.social.json("whoami")
    assert me["key_id"] == world.social.key_id and me["name"] == "Welzijn Amersfoort"
    assert me["server"] == world.server.url and me["networks"] == [world.network]
    assert len(me["fingerprint"].split()) == 8
    table = world.social.ok("whoami")
    assert "fingerprint" in table and world.social.fingerprint in table


def test_init_refuses_an_existing_home(world: World) -> None:
    result = schakel("init", "--home", str(world.social.home), "--name", "Other", "--server",
                     world.server.url, "--acting-user", "x", "--kdf", "interactive",
                     cwd=world.root)
    assert result.returncode == 3 and "refusing to overwrite" in result.stderr


def test_wrong_passphrase_exits_3(world: World) -> None:
    result = world.social.refused(3, "whoami", passphrase="not the passphrase")
    assert "passphrase" in result.stderr and "what to do" in result.stderr


def test_the_passphrase_prompt_reads_a_line_and_refuses_none(world: World) -> None:
    me = world.visit.run("whoami", "--json", passphrase=None, stdin=PASSPHRASE + "\n")
    assert me.returncode == 0, me.stderr
    assert json.loads(me.stdout)["key_id"] == world.visit.key_id
    empty = world.visit.run("whoami", passphrase=None, stdin="")
    assert empty.returncode == 3 and "schakel: refused: no passphrase entered" in empty.stderr


def test_a_directory_that_is_no_home_exits_3(tmp_path: Path) -> None:
    result = schakel("case", "list", "n" * 21 + "A", "--home", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 3 and "schakel init" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_exits_5(world: World) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = world.coord.refused(5, "sync", world.network, "--server", url)
    assert f"cannot reach the server at {url}" in result.stderr
    assert "schakel serve" in result.stderr


# --------------------------------------------------------------------------- network


def test_members_are_listed_verified(world: World) -> None:
    listed = world.visit.json("member", "list", world.network)["members"]
    by_id = {m["key_id"]: m for m in listed}
    assert set(by_id) == {world.coord.key_id, world.social.key_id, world.visit.key_id}
    assert by_id[world.social.key_id]["roles"] == ["professional-secrecy"]
    assert by_id[world.visit.key_id]["party"] == "informal"
    table = world.coord.ok("member", "list", world.network)
    assert "Vrijwillige Thuisbezoekers" in table and "KEY ID" in table


def test_network_list_and_show(world: World) -> None:
    listed = world.visit.json("network", "list")["networks"]
    assert [(n["network"], n["name"], n["role"]) for n in listed] == [
        (world.network, "Buurtnetwerk 55+ Soesterkwartier", "core")]
    shown = world.coord.json("network", "show", world.network)
    assert len(shown["members"]) == 3


def test_trust_refuses_a_misheard_fingerprint_before_anything_else(world: World) -> None:
    result = world.visit.run("network", "trust", world.network, "--fingerprint", "12345 67890")
    assert result.returncode in (1, 4) and "Traceback" not in result.stderr


def test_network_create_refuses_a_wrong_server_fingerprint(world: World) -> None:
    """A server fingerprint that is not the server's (misheard by one digit, or another
    server's) is refused as untrusted (exit 4) and no network is founded."""
    digits = world.server.fingerprint.replace(" ", "")
    wrong = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    before = world.coord.json("network", "list")["networks"]
    refused = world.coord.refused(4, "network", "create", "--name", "Buurtnetwerk Leusderkwartier",
                                  "--kind", "neighbourhood",
                                  "--covenant-file", world.file("covenant.txt", COVENANT),
                                  "--server-fingerprint", wrong)
    assert "server fingerprint" in refused.stderr and "nothing was sent" in refused.stderr
    assert world.coord.json("network", "list")["networks"] == before


def test_network_create_needs_the_server_fingerprint(world: World) -> None:
    """Without --server-fingerprint it is a usage error (exit 2); with a misheard digit
    count it is refused (exit 1) before the passphrase is asked for."""
    args = ("network", "create", "--name", "Buurtnetwerk", "--kind", "neighbourhood",
            "--covenant-file", world.file("covenant.txt", COVENANT))
    missing = world.coord.run(*args, passphrase=None)
    assert missing.returncode == 2 and "--server-fingerprint" in missing.stderr
    short = world.coord.refused(1, *args, "--server-fingerprint", "12345 67890",
                                passphrase=None)
    assert "40 digits" in short.stderr


def test_member_add_refuses_a_bundle_with_another_fingerprint(world: World) -> None:
    bundle = world.root / "visit-bundle.json"
    spoken = world.visit.fingerprint.split()
    spoken[0] = f"{(int(spoken[0]) + 1) % 100000:05d}"
    result = world.coord.refused(4, "member", "add", world.network, str(bundle), "--ring", "core",
                                 "--party", "informal", "--fingerprint", " ".join(spoken))
    assert "compare the fingerprint" in result.stderr


def test_sync_reports_and_shows_progress_when_asked(world: World, case: str) -> None:
    """On a pipe, --progress writes the progress line: items so far, items/s and the time
    left, ending at 100 % (the line's format: tests/test_sync_progress.py)."""
    world.social.ok("case", "note", world.network, case, "--text", "Buren ingelicht.")
    result = world.visit.run("sync", world.network, "--progress")
    assert result.returncode == 0, result.stderr
    last = result.stderr.strip().splitlines()[-1]     # the line, on stderr only
    assert re.fullmatch(rf"sync {re.escape(world.network[:8])} \[#+\] 100%  [0-9,]+ items  "
                        r"[0-9,]+ items/s  0:00 left", last), result.stderr
    assert "items/s" not in result.stdout
    synced = world.visit.json("sync")
    assert [n["network"] for n in synced["networks"]] == [world.network]


def test_the_coordinator_rotates_its_key_and_a_member_follows(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """`schakel network rotate-coordinator` (ADR 0046), on a network of its own (the shared
    one keeps its coordinator key): the home moves to the new key, the old keystore is
    kept, the anchor stays the genesis fingerprint, and a member that syncs lists the new
    key as the coordinator and the old one as no longer current."""
    with served(tmp_path_factory, "rotation") as w:
        init_all(w, (w.coord, "Gemeente Amersfoort, regie"), (w.social, "Welzijn Amersfoort"))
        w.network = create_network(w)["network"]
        admit(w, w.social, "--ring", "core", "--party", "formal")
        rotated = w.coord.json("network", "rotate-coordinator", w.network,
                               "--reason", "laptop kwijt")
        assert rotated["old"] == w.coord.key_id and rotated["new"] != w.coord.key_id
        assert rotated["position"] == 1 and Path(rotated["retired"]).is_file()
        assert rotated["anchor"].replace(" ", "") == w.coord.fingerprint.replace(" ", "")
        assert w.coord.json("whoami")["key_id"] == rotated["new"]
        members = {m["key_id"]: m for m in w.social.json("network", "show", w.network)["members"]}
        assert "coordinator" in members[rotated["new"]]["roles"]
        assert members[rotated["old"]]["current"] is False
        refused = w.social.refused(4, "network", "rotate-coordinator", w.network,
                                   "--reason", "niet van mij")
        assert "coordinator key" in refused.stderr


# --------------------------------------------------------------------------- cases


def test_case_is_listed_and_shown_by_another_core_member(world: World, case: str) -> None:
    cases = world.coord.json("case", "list", world.network)["cases"]
    mine = [c for c in cases if c["case"] == case]
    assert mine and mine[0]["owner"] == world.social.key_id and mine[0]["status"] == "open"
    assert mine[0]["neighbourhood"] == "Soesterkwartier"
    table = world.coord.ok("case", "list", world.network)
    assert case in table and "Welzijn Amersfoort" in table
    shown = world.coord.json("case", "show", world.network, case)
    assert shown["state"]["summary"] == INTAKE["summary"]
    assert shown["events"][0]["plaintext"]["kind"] == "intake"
    text = world.coord.ok("case", "show", world.network, case)
    assert "Woont alleen" in text and "Hendrik" not in text


def test_pii_in_an_intake_is_refused_and_nothing_is_sent(world: World, case: str) -> None:
    before = len(world.social.json("case", "list", world.network)["cases"])
    leaky = {**INTAKE, "summary": "Meneer de Vries, bel hem op 06-12345678."}
    result = world.social.refused(1, "case", "create", world.network,
                                  "--intake-file", world.file("leaky.json", leaky))
    assert "refused" in result.stderr and "phone" in result.stderr.lower()
    # The writer's own text is shown back on the terminal, never as output (ADR 0017).
    assert "06-12345678" not in result.stdout and "[telefoon]" in result.stderr
    assert "nothing was sent" in result.stderr
    # Refused before the home is even opened: no passphrase needed to be told.
    early = world.social.run("case", "note", world.network, case, "--text", "BSN 111222333",
                             passphrase=None, stdin="")
    assert early.returncode == 1 and "bsn" in early.stderr.lower() and "Passphrase" not in early.stderr
    after = world.coord.json("case", "list", world.network)["cases"]
    assert len(after) == before


def test_intake_from_options(world: World) -> None:
    made = world.social.json("case", "consult", world.network, "--age-band", "85+",
                             "--neighbourhood", "Soesterkwartier", "--domain", "loneliness",
                             "--severity", "low", "--care-status", "known", "--source", "partner",
                             "--not-complex", "--summary", "Vraagt om advies over eenzaamheid.")
    assert made["kind"] == "consult"
    closed = world.social.json("case", "close", world.network, made["case"], "--reason", "advies gegeven")
    assert closed["status"] == "closed"
    listed = world.coord.json("case", "list", world.network, "--status", "closed")["cases"]
    assert [c["case"] for c in listed] == [made["case"]] and listed[0]["kind"] == "consult"
    missing = world.social.run("case", "consult", world.network, "--age-band", "85+")
    assert missing.returncode == 2 and "--summary" in missing.stderr


def test_note_and_actions_with_the_policy_rule(world: World, case: str) -> None:
    noted = world.visit.json("case", "note", world.network, case, "--text", "Eerste bezoek gepland.")
    assert noted["seq"] >= 2
    formal = world.social.refused(1, "case", "action", world.network, case,
                                  "--description", "Inzet wijkverpleging", "--help-type", "formal",
                                  "--relation", "complementary")
    assert "formal-action-needs-reason" in formal.stderr and "--informal-not-possible" in formal.stderr
    placeholder = world.social.refused(1, "case", "action", world.network, case,
                                       "--description", "Inzet wijkverpleging", "--help-type",
                                       "formal", "--relation", "complementary",
                                       "--informal-not-possible", "x")
    assert "formal-action-reason-says-nothing" in placeholder.stderr
    assert "not a placeholder" in placeholder.stderr and "10 letters" in placeholder.stderr
    world.social.ok("case", "action", world.network, case, "--description", "Inzet wijkverpleging",
                    "--help-type", "formal", "--relation", "complementary",
                    "--informal-not-possible", "Medische zorg nodig.")
    shown = world.coord.json("case", "show", world.network, case)
    kinds = [e["plaintext"]["kind"] for e in shown["events"] if e["plaintext"]]
    assert "note" in kinds and "action" in kinds
    assert shown["breaches"] == [] and "no breaches seen" in world.coord.ok(
        "case", "show", world.network, case, "--no-sync")


def test_case_show_marks_an_action_that_breaks_the_policy(world: World) -> None:
    """An action written by a client that skipped the policy check (driven here through
    the library, as an old or hostile client would) is shown by another member's `case
    show`, marked, with the breach explained; `case list` counts it."""
    from schakel.client import Partner
    from tests.client_harness import write_unchecked

    made = world.social.json("case", "create", world.network,
                             "--intake-file", world.file("intake-breach.json", INTAKE))

    async def skip_the_check() -> int:
        async with await Partner.open(world.social.home, PASSPHRASE) as social:
            return await write_unchecked(social, world.network, made["case"], {
                "kind": "action", "description": "Inzet wijkverpleging", "help_type": "formal",
                "relation": "complementary", "by": social.key_id})

    seq = asyncio.run(skip_the_check())
    shown = world.coord.json("case", "show", world.network, made["case"])
    assert [(b["seq"], b["reason"]) for b in shown["breaches"]] == \
        [(seq, "formal-action-needs-reason")]
    assert [e["breach"] for e in shown["events"]] == [None, "formal-action-needs-reason"]
    text = world.visit.ok("case", "show", world.network, made["case"])
    assert "POLICY BREACH: formal-action-needs-reason" in text and "policy breaches" in text
    assert "Inzet wijkverpleging" in text and "why informal help was not possible" in text
    listed = {c["case"]: c for c in world.visit.json("case", "list", world.network)["cases"]}
    assert listed[made["case"]]["breaches"] == 1


# --------------------------------------------------------------------------- signals


def test_anonymous_signal_status_and_feedback(world: World) -> None:
    sent = world.visit.json("signal", "send", world.network, "--anonymous", "--urgency", "high",
                            "--concern", "Buurvrouw op nummer 3 is al een week niet gezien.")
    signal = sent["signal"]
    assert world.visit.json("signal", "status", signal)["status"] == "received"
    listed = world.coord.json("signal", "list", world.network)["signals"]
    mine = [s for s in listed if s["signal"] == signal]
    assert mine and mine[0]["source"] == "anonymous" and mine[0]["content"]["urgency"] == "high"
    assert "Buurvrouw" in world.coord.ok("signal", "list", world.network)
    world.coord.ok("signal", "feedback", world.network, signal, "--status", "taken-up",
                   "--message", "We gaan langs.")
    status = world.visit.json("signal", "status", signal)
    assert status["status"] == "taken-up" and status["messages"] == ["We gaan langs."]
    assert "We gaan langs." in world.visit.ok("signal", "status", signal)


def test_keyless_signal_with_the_network_card_gets_a_receipt_and_reads_feedback(
        world: World) -> None:
    """The coordinator writes the network's card; a neighbour with no home and no keys
    signals with it (checking the coordinator's fingerprint from the leaflet), keeps the
    ticket file, and reads the coordinator's answer with the ticket and the card."""
    card = world.root / "kaart-steunpunt.json"
    made = world.coord.json("network", "card", world.network, "--out", str(card),
                            "--signaller-kind", "neighbour", "--signaller-kind",
                            "volunteer-driver", "--name", "Steunpunt Eenzaamheid Zeist")
    assert made["serial"] >= 1 and made["signaller_kinds"] == ["neighbour", "volunteer-driver"]
    ticket = world.root / "mijn-melding.json"
    street = world.root / "straat"
    street.mkdir(exist_ok=True)
    sent = schakel("signal", "send", "--anonymous", "--network-card", str(card),
                   "--fingerprint", world.coord.fingerprint, "--signaller-kind", "neighbour",
                   "--concern", "Mijn buurman zit sinds maanden alleen thuis.",
                   "--ticket-file", str(ticket), "--json", cwd=street, passphrase=None)
    assert sent.returncode == 0, sent.stderr
    signal = json.loads(sent.stdout)["signal"]
    assert json.loads(sent.stdout)["network"] == world.network
    assert ticket.stat().st_mode & 0o077 == 0
    mine = [s for s in world.coord.json("signal", "list", world.network)["signals"]
            if s["signal"] == signal]
    assert mine and mine[0]["content"]["signaller_kind"] == "neighbour"
    world.coord.ok("signal", "feedback", world.network, signal, "--status", "taken-up",
                   "--message", "Dank u, we bellen bij hem aan.")
    read = schakel("signal", "status", "--ticket-file", str(ticket), "--network-card", str(card),
                   "--json", cwd=street, passphrase=None)
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["messages"] == ["Dank u, we bellen bij hem aan."]


def test_a_keyless_signal_with_another_coordinators_fingerprint_is_refused(
        world: World) -> None:
    card = world.root / "kaart-andere.json"
    world.coord.ok("network", "card", world.network, "--out", str(card))
    refused = schakel("signal", "send", "--anonymous", "--network-card", str(card),
                      "--fingerprint", world.social.fingerprint, "--concern", "Zorgen.",
                      "--ticket-file", str(world.root / "nooit.json"), cwd=world.root,
                      passphrase=None)
    assert refused.returncode == 4 and "Traceback" not in refused.stderr, refused.stderr
    assert not (world.root / "nooit.json").exists()


def test_signal_status_of_an_unknown_signal_is_refused(world: World) -> None:
    result = world.visit.refused(1, "signal", "status", "AAAAAAAAAAAAAAAAAAAAAA")
    assert "this home sent no signal" in result.stderr


# --------------------------------------------------------------------------- disclosure


@pytest.fixture(scope="module")
def consent(world: World, case: str) -> str:
    evidence = world.root / "toestemming.pdf"
    evidence.write_bytes(b"%PDF-1.4 getekend toestemmingsformulier")
    recorded = world.social.json("consent", "record", world.network, case, "--class", "name",
                                 "--class", "address", "--partner", world.visit.key_id,
                                 "--purpose", "bezoek door vrijwilliger",
                                 "--evidence-file", str(evidence))
    assert recorded["evidence_sha256"] == hashlib.sha256(evidence.read_bytes()).hexdigest()
    return str(recorded["consent"])


def test_grant_and_release_print_the_identity(world: World, case: str, consent: str) -> None:
    granted = world.coord.json("grant", "create", world.network, case, "--consent", consent,
                                "--to", world.visit.key_id, "--class", "name", "--class", "address",
                                "--reason", "eerste huisbezoek")
    text = world.visit.ok("grant", "release", world.network, granted["grant"])
    assert "Hendrik" in text and "Soesterweg" in text and "111222333" not in text
    held = world.visit.json("case", "identity", world.network, case)["identity"]
    assert held["name"]["family_name"] == "de Vries" and "official" not in held


def test_a_volunteer_asking_official_is_refused_with_the_reason(world: World, case: str,
                                                                consent: str) -> None:
    result = world.coord.refused(1, "grant", "create", world.network, case, "--consent", consent,
                                  "--to", world.visit.key_id, "--class", "official",
                                  "--reason", "controle")
    assert "informal-class-not-allowed" in result.stderr
    assert "volunteers" in result.stderr


def test_a_volunteer_asking_official_is_refused_in_dutch_unless_english_is_asked(
        world: World, case: str, consent: str) -> None:
    """The same refusal as a coördinator reads it with no language set (ADR 0037), and
    with LANG asking for English."""
    ask = ("grant", "create", world.network, case, "--consent", consent, "--to",
           world.visit.key_id, "--class", "official", "--reason", "controle")
    dutch = world.coord.refused(1, *ask, env=NO_LANGUAGE).stderr.splitlines()
    assert ("  reden: informal-class-not-allowed: vrijwilligers (informele partijen) mogen "
            "alleen de informele klassen van het netwerkbeleid ontvangen (standaard naam, "
            "adres en contact), nooit 'official'") in dutch
    assert any(line.startswith("  wie dit kan regelen: u bent de coördinator (regie) van dit "
                               "netwerk: u beslist over lidmaatschappen") for line in dutch)
    english = world.coord.refused(1, *ask, env={**NO_LANGUAGE, "LANG": "en_GB.UTF-8"})
    assert ("  reason: informal-class-not-allowed: volunteers (informal parties) may receive "
            "only") in english.stderr
    assert "  who can act: you are this network's coördinator: you decide on memberships" \
        in english.stderr


# --------------------------------------------------------------------------- audit and reports


def test_audit_verify_log_and_report(world: World, case: str, consent: str) -> None:
    shown = world.coord.run("audit", "verify", world.network, "--progress", "--json")
    assert shown.returncode == 0 and "verify" in shown.stderr   # the bar, on stderr only
    verified = json.loads(shown.stdout)
    assert verified["size"] >= 3 and verified["root"] and verified["checked"] >= 1
    text = world.coord.ok("audit", "verify", world.network)
    assert "size" in text and verified["root"] in text
    entries = world.coord.json("audit", "log", world.network)["entries"]
    assert any(e["entry"] and e["entry"]["action"] == "membership" for e in entries)
    assert "membership" in world.coord.ok("audit", "log", world.network)
    report = world.coord.json("audit", "report", world.network, case)
    assert report["case"] == case and report["verified"]["entries"] == (
        len(report["releases"]) + len(report["denials"]) + len(report["reads"]))
    assert report["reads"], "the members' syncs of the case are reads of it"
    shown = world.coord.ok("audit", "report", world.network, case)
    assert "releases" in shown and "reads (who fetched the case's data)" in shown


def test_aggregate_report_suppresses_small_cells(world: World, case: str) -> None:
    figures = world.coord.json("report", world.network, "--min-cell", "5")
    assert case not in json.dumps(figures)
    assert "Woont alleen" not in json.dumps(figures)
    assert world.coord.ok("report", world.network)


def test_report_access_answers_the_person_without_sending_the_bsn(world: World,
                                                                  case: str) -> None:
    """`schakel report access`: the coordinator's one report over its networks, as HTML
    in a file only its user reads and as JSON of the access-report schema; a BSN that
    fails the 11-proef is refused before the passphrase is asked; the BSN reaches
    neither the server's database nor its log."""
    from schakel.protocol import schema

    bsn, born = IDENTITY["official"]["bsn"], IDENTITY["official"]["date_of_birth"]
    out = world.root / "inzage.html"
    world.coord.ok("report", "access", "--bsn", bsn, "--birth-date", born, "--out", str(out))
    page = out.read_text(encoding="utf-8")
    assert "Inzageverslag" in page and case in page and bsn not in page
    assert out.stat().st_mode & 0o077 == 0
    data = world.coord.json("report", "access", "--bsn", bsn, "--birth-date", born,
                            "--lang", "en")
    schema.validate("access-report", data)
    assert [c["case"] for c in data["cases"]] == [case] and data["lang"] == "en"
    assert "Subject access report" in world.coord.ok(
        "report", "access", "--bsn", bsn, "--birth-date", born, "--lang", "en")
    refused = world.coord.run("report", "access", "--bsn", "111222334", "--birth-date", born,
                              passphrase=None)
    assert refused.returncode == 2 and "11-proef" in refused.stderr
    assert "111222334" not in refused.stderr and "Passphrase" not in refused.stderr
    refused = world.social.run("report", "access", "--bsn", bsn, "--birth-date", born,
                               "--network", world.network)
    assert refused.returncode == 1 and "lookup-requires-coordinator" in refused.stderr
    assert bsn not in refused.stderr
    for path in [world.server.log_file, *world.server.data.rglob("*")]:
        if path.is_file():
            assert bsn.encode() not in path.read_bytes(), path


def test_duties_run(world: World) -> None:
    done = world.coord.json("duties", world.network)
    assert done["network"] == world.network and done["misbehaviours"] == []


# --------------------------------------------------------------------------- oggz: bemoeizorg, referral

JUSTIFICATION = ("Bewoner weigert al maanden zorg, woning ernstig vervuild; huisarts en "
                 "wijkteam kregen geen contact.")


@pytest.fixture(scope="module")
def oggz(world: World) -> dict[str, Any]:
    """An OGGZ network with the same coordinator: social work and a GGZ team hold the
    bemoeizorg role (two organisations, so four eyes are two people), and an auditor."""
    ggz, auditor = Org("ggz", world.root / "ggz"), Org("auditor", world.root / "toezicht")
    init_all(world, (ggz, "GGZ Centraal"), (auditor, "Toezicht Sociaal Domein"))
    network = world.coord.json("network", "create", "--name", "OGGZ-netwerk Amersfoort",
                               "--kind", "oggz", "--covenant-file", world.file("covenant.txt", COVENANT),
                               "--server-fingerprint", world.server.fingerprint,
                               "--policy-file", world.file("oggz.json", cheap_policy("oggz")))["network"]
    for org, roles in ((world.social, ["bemoeizorg", "professional-secrecy"]),
                       (ggz, ["bemoeizorg", "professional-secrecy"]), (auditor, ["auditor"])):
        admit(world, org, "--ring", "core", "--party", "formal",
              *[x for role in roles for x in ("--role", role)], network=network)
    return {"network": network, "ggz": ggz, "auditor": auditor}


def test_bemoeizorg_four_eyes_release_and_review(world: World, oggz: dict[str, Any]) -> None:
    network, ggz, auditor = oggz["network"], oggz["ggz"], oggz["auditor"]
    intake = {**INTAKE, "domains": ["self-neglect", "housing-pollution"], "severity": "high"}
    case = world.social.json("case", "create", network, "--intake-file", world.file("oggz-intake.json", intake),
                             "--identity-file", world.file("identity.json", IDENTITY))["case"]
    shown = world.coord.ok("network", "show", network)
    assert "severe-self-neglect" in shown and "oggz" in shown

    wrong = ggz.refused(1, "bemoeizorg", "invoke", network, case, "--ground", "curiosity",
                        "--justification", JUSTIFICATION)
    assert "bemoeizorg-ground-invalid" in wrong.stderr and "nothing was sent" in wrong.stderr
    invocation = ggz.json("bemoeizorg", "invoke", network, case, "--ground", "severe-self-neglect",
                          "--justification", JUSTIFICATION)["invocation"]
    early = ggz.refused(1, "bemoeizorg", "release", network, invocation)
    assert "bemoeizorg-four-eyes-required" in early.stderr and "cosign" in early.stderr

    world.social.ok("bemoeizorg", "cosign", network, invocation, "--case", case)
    released = ggz.ok("bemoeizorg", "release", network, invocation)
    assert "Hendrik" in released and "111222333" in released and "receipt verified" in released

    assert auditor.ok("bemoeizorg", "justification", network, invocation).strip() == JUSTIFICATION
    reviewed = auditor.json("review", network, invocation, "--approve", "--note", "Terecht ingezet.")
    assert reviewed["outcome"] == "approved"
    assert auditor.run("review", network, invocation, "--note", "x").returncode == 2
    verified = auditor.json("audit", "verify", network)
    assert verified["checked"] == verified["size"] >= 5


def test_referral_from_the_neighbourhood_to_oggz(world: World, case: str, consent: str,
                                                 oggz: dict[str, Any]) -> None:
    missing = world.coord.run("case", "refer", world.network, case, oggz["network"], "--reason", "x")
    assert missing.returncode == 2 and "--consent or --invocation" in missing.stderr
    refused = world.coord.refused(1, "case", "refer", world.network, case, oggz["network"],
                                  "--consent", consent, "--reason", "zorgmijding, GGZ nodig")
    assert "consent-not-for-receiver" in refused.stderr and "coordinator" in refused.stderr
    evidence = world.root / "toestemming-ggz.pdf"
    evidence.write_bytes(b"%PDF-1.4 toestemming doorverwijzing GGZ")
    to_oggz = world.social.json("consent", "record", world.network, case, "--class", "name",
                                "--party", "formal", "--partner", world.coord.key_id,
                                "--purpose", "doorverwijzing naar OGGZ",
                                "--evidence-file", str(evidence))["consent"]
    referred = world.coord.json("case", "refer", world.network, case, oggz["network"],
                                "--consent", to_oggz, "--reason", "zorgmijding, GGZ nodig")
    new_case = referred["new_case"]
    there = world.coord.json("case", "show", oggz["network"], new_case)
    assert there["state"]["summary"] == INTAKE["summary"] and there["owner"] == world.coord.key_id


def test_member_remove(world: World, oggz: dict[str, Any]) -> None:
    network, auditor = oggz["network"], oggz["auditor"]
    world.coord.json("member", "remove", network, auditor.key_id, "--reason", "taak beëindigd")
    members = world.coord.json("member", "list", network, "--all")["members"]
    assert [m["current"] for m in members if m["key_id"] == auditor.key_id] == [False]
    current = world.coord.json("member", "list", network)["members"]
    assert auditor.key_id not in {m["key_id"] for m in current}


def test_consent_revoke_purges_the_released_identity(world: World, case: str, consent: str) -> None:
    """The volunteer received the name under ``consent``; revoking it sends a purge
    instruction that its next duties execute (runs after the tests that use the consent)."""
    granted = world.coord.json("grant", "create", world.network, case, "--consent", consent,
                               "--to", world.visit.key_id, "--class", "name", "--reason", "bezoek")
    world.visit.ok("grant", "release", world.network, granted["grant"])
    assert world.visit.json("case", "identity", world.network, case)["identity"]["name"]
    revoked = world.social.json("consent", "revoke", world.network, case, consent,
                                "--reason", "persoon trekt toestemming in")
    assert revoked["revoked"] is True and len(revoked["purge_instructions"]) == 1
    done = world.visit.json("duties", world.network)
    assert done["duties"]["purged"]
    assert world.visit.json("case", "identity", world.network, case)["identity"] == {}
    assert "no identity held" in world.visit.ok("case", "identity", world.network, case)


def test_a_genesis_not_signed_by_the_trusted_coordinator_exits_4(world: World, case: str) -> None:
    """A member whose home trusts the network under a wrong fingerprint (a misheard
    ceremony): it refuses what the server serves, and records it (runs late: it adds a
    shell member to the network, with whom the coordinator shares the case)."""
    stranger = Org("stranger", world.root / "stranger")
    init(world, stranger, "Buurtkerk Bezoekwerk")
    not_a_member = stranger.refused(4, "member", "list", world.network)
    assert "not trusted" in not_a_member.stderr
    stranger.ok("network", "trust", world.network, "--fingerprint", world.social.fingerprint)
    refused = stranger.refused(4, "sync", world.network)
    assert "untrusted_key" in refused.stderr and "member add" in refused.stderr
    bundle = world.root / "stranger-bundle.json"
    stranger.ok("keys", "bundle", "--out", str(bundle))
    world.coord.ok("member", "add", world.network, str(bundle), "--ring", "shell",
                   "--party", "informal", "--fingerprint", stranger.fingerprint)
    shared = world.coord.json("case", "share", world.network, case, stranger.key_id,
                              "--reason", "bezoekwerk")
    assert shared["shared"] is True and shared["partner"] == stranger.key_id
    result = stranger.refused(4, "sync", world.network)
    assert "genesis-untrusted" in result.stderr and "recorded" in result.stderr
    assert "genesis-untrusted: " not in result.stderr      # said once, not twice
    recorded = stranger.json("whoami")["misbehaviours"]
    assert "genesis-untrusted" in [m["what"] for m in recorded]
    assert "server misbehaviour recorded by this home" in stranger.ok("whoami")


# --------------------------------------------------------------------------- help and usage


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(main))


def test_the_command_tree_is_complete() -> None:
    wanted = {("init",), ("whoami",), ("keys", "bundle"), ("network", "create"),
              ("network", "trust"), ("network", "join"), ("network", "show"), ("network", "list"),
              ("sync",), ("member", "add"), ("member", "remove"), ("member", "list"),
              ("case", "create"), ("case", "consult"), ("case", "list"), ("case", "show"),
              ("case", "note"), ("case", "action"), ("case", "analysis"), ("case", "close"),
              ("case", "share"), ("case", "refer"), ("case", "identity"), ("signal", "send"),
              ("signal", "status"), ("signal", "list"), ("signal", "feedback"),
              ("consent", "record"), ("consent", "revoke"), ("grant", "create"),
              ("grant", "release"), ("bemoeizorg", "invoke"), ("bemoeizorg", "cosign"),
              ("bemoeizorg", "release"), ("bemoeizorg", "justification"), ("bemoeizorg", "list"),
              ("grant", "list"), ("notifications",), ("review",), ("audit", "log"), ("audit", "verify"),
              ("audit", "report"), ("report",), ("duties",), ("serve",), ("server", "init"),
              ("server", "fingerprint"),
              ("demo",)}
    assert wanted <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "schakel")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="schakel")
    assert result.exit_code == 0, result.output
    assert "Usage: schakel" in result.output and len(result.output.splitlines()) > 3


def test_every_policy_refusal_is_explained() -> None:
    """Each reason code schakel.protocol.policy can give, and each the disclosure engine gives on
    its own (``Decision(False, code, ...)``), has a sentence for the coordinator."""
    import ast

    from schakel.cli.main import REASONS

    def refusals(path: Path) -> set[str]:
        """The codes of ``_deny(code, ...)`` and ``Decision(False, code, ...)`` calls."""
        out = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
            name = getattr(node.func, "id", None)
            if name == "_deny" and args and isinstance(args[0], str):
                out.add(args[0])
            elif name == "Decision" and args[:1] == [False] and isinstance(args[1], str):
                out.add(args[1])
        return out

    root = Path(__file__).parent.parent
    reasons = refusals(root / "protocol" / "policy.py")
    for path in (root / "server" / "disclosure").glob("*.py"):
        reasons |= refusals(path)
    assert {"grant-not-held", "grant-requires-coordinator"} <= reasons
    assert len(reasons) >= 20 and not reasons - set(REASONS), sorted(reasons - set(REASONS))


def test_an_id_that_starts_with_a_dash_is_an_argument(world: World) -> None:
    """One id in 64 starts with "-" (base64url); it must not be taken for an option."""
    result = world.coord.refused(1, "case", "show", world.network, "-" + "A" * 21, "--no-sync")
    assert "not known to this partner" in result.stderr
    typo = world.coord.run("case", "show", world.network, "B" * 22, "--no-sinc")
    assert typo.returncode == 2 and "No such option" in typo.stderr
    # ``schakel report NETWORK`` is ``schakel report figures NETWORK``: the same holds there
    figures = world.coord.run("report", "-" + "A" * 21, "--min-cell", "5", "--json")
    assert figures.returncode != 2 and "No such option" not in figures.stderr, figures.stderr


def test_help_as_a_user_runs_it(tmp_path: Path) -> None:
    result = schakel("--help", cwd=tmp_path)
    assert result.returncode == 0 and "Exit codes" in result.stdout and "5  the server" in result.stdout


def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = schakel("case", "create", cwd=tmp_path)
    assert result.returncode == 2 and "NETWORK" in result.stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
