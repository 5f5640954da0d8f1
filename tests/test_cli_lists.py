"""The command line as a founding coordinator, a partner, a co-signer and an auditor
meet it: the placeholders they copy, the lists they need to find ids, and refusals
that name who can act -- each defect a test, run as real subprocesses against a real
``schakel serve`` (tests/cli_harness.py).

The cast: ``coord`` founds a neighbourhood and an OGGZ network; ``social`` (core,
formal) brings in a case; ``visit`` (volunteers) joins the neighbourhood network
*after* that case was written; in the OGGZ network ``social`` and ``ggz`` hold the
bemoeizorg role in two organisations and ``auditor`` audits.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_harness import Org, schakel
from tests.server_harness import IDENTITY, INTAKE
from tests.test_cli_flows import COVENANT, World, admit, cheap_policy, create_network, init, served

JUSTIFICATION = ("Bewoner weigert al maanden zorg, woning ernstig vervuild; huisarts en "
                 "wijkteam kregen geen contact.")
ROOT = Path(__file__).parent.parent


class Cast(World):
    """The shared world of this module, with the OGGZ network's people."""

    oggz = ""
    ggz: Org
    auditor: Org
    invocation = ""
    oggz_case = ""
    grant = ""
    invoked: dict[str, Any] = {}


@pytest.fixture(scope="module")
def cast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cast]:
    with served(tmp_path_factory, "cli-lists") as world:
        w = Cast(world.root, world.server)
        w.ggz, w.auditor = Org("ggz", w.root / "ggz"), Org("auditor", w.root / "toezicht")
        for org, name in ((w.coord, "Gemeente Amersfoort, regie"), (w.social, "Welzijn Amersfoort"),
                          (w.visit, "Vrijwillige Thuisbezoekers"), (w.ggz, "GGZ Centraal"),
                          (w.auditor, "Toezicht Sociaal Domein")):
            init(w, org, name)
        w.network = create_network(w)["network"]
        admit(w, w.social, "--ring", "core", "--party", "formal", "--role", "professional-secrecy")
        w.case = w.social.json("case", "create", w.network,
                               "--intake-file", w.file("intake.json", INTAKE),
                               "--identity-file", w.file("identity.json", IDENTITY))["case"]
        w.social.ok("case", "note", w.network, w.case, "--text", "eerste gesprek gehad")
        admit(w, w.visit, "--ring", "core", "--party", "informal")     # after the case
        w.oggz = w.coord.json("network", "create", "--name", "OGGZ-netwerk Amersfoort",
                              "--kind", "oggz", "--covenant-file", w.file("covenant.txt", COVENANT),
                              "--server-fingerprint", w.server.fingerprint,
                              "--policy-file", w.file("oggz.json", cheap_policy("oggz")))["network"]
        for org, roles in ((w.social, ["bemoeizorg", "professional-secrecy"]),
                           (w.ggz, ["bemoeizorg", "professional-secrecy"]), (w.auditor, ["auditor"])):
            admit(w, org, "--ring", "core", "--party", "formal",
                  *[x for role in roles for x in ("--role", role)], network=w.oggz)
        intake = {**INTAKE, "domains": ["self-neglect", "housing-pollution"], "severity": "high"}
        w.oggz_case = w.social.json("case", "create", w.oggz,
                                    "--intake-file", w.file("oggz-intake.json", intake),
                                    "--identity-file", w.file("identity.json", IDENTITY))["case"]
        w.invoked = w.ggz.json("bemoeizorg", "invoke", w.oggz, w.oggz_case,
                               "--ground", "severe-self-neglect", "--justification", JUSTIFICATION)
        w.invocation = w.invoked["invocation"]
        yield w


# --------------------------------------------------------------------------- NETWORK


def test_a_placeholder_network_is_a_usage_error_that_says_how_to_find_the_id(cast: Cast) -> None:
    """`schakel network show NETWORK` copied literally is no "not trusted" (exit 4) but
    a usage error naming what the argument must be and where the id is listed."""
    result = cast.coord.run("network", "show", "NETWORK")
    assert result.returncode == 2, result.stderr
    assert "'NETWORK' is not a network id" in result.stderr
    assert "schakel network list" in result.stderr and "not trusted" not in result.stderr
    assert cast.coord.run("sync", "Buurtnetwerk").returncode == 2      # [NETWORK] too


def test_an_untrusted_network_id_says_to_trust_it_not_to_compare_fingerprints(cast: Cast) -> None:
    """An id of the right shape this home holds no anchor for: exit 4, and the advice is
    `network list` and `network trust`, not "compare the fingerprint again"."""
    newcomer = Org("newcomer", cast.root / "newcomer")
    init(cast, newcomer, "Buurtkerk Bezoekwerk")
    result = newcomer.refused(4, "member", "list", cast.network)
    assert f"network {cast.network} is not trusted by this partner yet" in result.stderr
    assert "schakel network list" in result.stderr
    assert f"schakel network trust {cast.network} --fingerprint" in result.stderr
    assert "compare the fingerprint again" not in result.stderr


def test_network_list_shows_names_kinds_and_your_role(cast: Cast) -> None:
    listed = {n["network"]: n for n in cast.coord.json("network", "list")["networks"]}
    assert listed[cast.network]["name"] == "Buurtnetwerk 55+ Soesterkwartier"
    assert listed[cast.network]["kind"] == "neighbourhood"
    assert listed[cast.oggz]["kind"] == "oggz" and listed[cast.oggz]["role"] == "coordinator"
    mine = {n["network"]: n for n in cast.auditor.json("network", "list")["networks"]}
    assert mine[cast.oggz]["role"] == "auditor" and mine[cast.oggz]["roles"] == ["auditor"]
    table = cast.social.ok("network", "list")
    assert "Buurtnetwerk 55+ Soesterkwartier" in table and "OGGZ-netwerk Amersfoort" in table
    assert "kern (core)" in table and "YOUR ROLE" in table


# --------------------------------------------------------------------------- onboarding


def test_member_add_without_fingerprint_is_refused_unless_explicitly_unchecked(cast: Cast) -> None:
    late = Org("late", cast.root / "late")
    init(cast, late, "Buurthuis De Kelder")
    bundle = cast.root / "late-bundle.json"
    late.ok("keys", "bundle", "--out", str(bundle))
    refused = cast.coord.run("member", "add", cast.network, str(bundle), "--ring", "shell",
                             "--party", "informal")
    assert refused.returncode == 2 and "--fingerprint" in refused.stderr
    assert "--without-fingerprint-check" in refused.stderr
    names = {m["key_id"] for m in cast.coord.json("member", "list", cast.network, "--all")["members"]}
    assert late.key_id not in names                                    # nothing was admitted
    unchecked = cast.coord.run("member", "add", cast.network, str(bundle), "--ring", "shell",
                               "--party", "informal", "--without-fingerprint-check", "--json")
    assert unchecked.returncode == 0, unchecked.stderr
    assert "WARNING" in unchecked.stderr and late.fingerprint in unchecked.stderr
    assert '"fingerprint_checked": false' in unchecked.stdout


def test_member_add_on_behalf_of_and_users_are_signed_and_listed(cast: Cast) -> None:
    """`member add --on-behalf-of NAME --user ID=PARTY` puts both in the signed membership
    (protocol.md §N.4); `member list` shows them; a malformed --user is a usage error."""
    wij = Org("wij", cast.root / "wij")
    init(cast, wij, "Stichting WIJ Breda")
    bundle = cast.root / "wij-bundle.json"
    wij.ok("keys", "bundle", "--out", str(bundle))
    bad = cast.coord.run("member", "add", cast.network, str(bundle), "--ring", "core",
                         "--party", "informal", "--user", "wij-1=formal",
                         "--fingerprint", wij.fingerprint)
    assert bad.returncode == 2 and "--party formal" in bad.stderr, bad.stderr
    added = cast.coord.json("member", "add", cast.network, str(bundle), "--ring", "core",
                            "--party", "formal", "--on-behalf-of", "Stichting Present",
                            "--on-behalf-of", "Handje Helpen", "--user", "wij-1=formal",
                            "--user", "wij-vrijwilliger-7=informal",
                            "--fingerprint", wij.fingerprint)
    assert added["on_behalf_of"] == ["Stichting Present", "Handje Helpen"]
    listed = {m["key_id"]: m for m in cast.coord.json("member", "list",
                                                       cast.network)["members"]}
    assert listed[wij.key_id]["on_behalf_of"] == ["Stichting Present", "Handje Helpen"]
    assert listed[wij.key_id]["users"] == {"wij-1": "formal",
                                           "wij-vrijwilliger-7": "informal"}
    table = cast.coord.ok("member", "list", cast.network)
    assert "ON BEHALF OF" in table and "Stichting Present, Handje Helpen" in table
    assert "wij-vrijwilliger-7=informal" in table


def test_init_next_steps_fit_a_founder_and_a_joiner(cast: Cast) -> None:
    """`schakel init` cannot know who runs it: it tells a founding coördinator and a
    joining partner each their next step, not "read it to your coordinator"."""
    home = cast.root / "fresh"
    made = schakel("init", "--home", str(home), "--name", "Stichting Nieuw", "--server",
                   cast.server.url, "--acting-user", "nieuw-1", "--kdf", "interactive",
                   cwd=cast.root)
    assert made.returncode == 0, made.stderr
    assert "to your coordinator" not in made.stdout
    assert "next, to found a network" in made.stdout and "schakel network create" in made.stdout
    assert "next, to join a network" in made.stdout and "schakel keys bundle" in made.stdout


def test_keys_show_takes_home_like_every_command(cast: Cast) -> None:
    shown = cast.social.json("keys", "show")                  # Org.run passes --home
    assert shown["key_id"] == cast.social.key_id
    spoken = cast.social.ok("keys", "fingerprint").strip()
    assert spoken == cast.social.fingerprint
    both = cast.social.run("keys", "show", "--keystore", str(cast.social.home / "keystore.json"))
    assert both.returncode == 2 and "not both" in both.stderr
    alone = schakel("keys", "show", "--keystore", str(cast.social.home / "keystore.json"),
                    "--json", cwd=cast.root, passphrase=None)
    assert alone.returncode == 0 and cast.social.key_id in alone.stdout


# --------------------------------------------------------------------------- lists


def test_grant_list_shows_the_grantee_its_grant_id(cast: Cast) -> None:
    """A partner learns its grant id from `grant list`, not out of band; the coördinator
    sees the grants it gave, and whether they were received."""
    evidence = cast.root / "toestemming.pdf"
    evidence.write_bytes(b"%PDF-1.4 getekend toestemmingsformulier")
    consent = cast.social.json("consent", "record", cast.network, cast.case, "--class", "name",
                               "--partner", cast.visit.key_id, "--purpose", "huisbezoek",
                               "--evidence-file", str(evidence))["consent"]
    grant = cast.coord.json("grant", "create", cast.network, cast.case, "--consent", consent,
                            "--to", cast.visit.key_id, "--class", "name",
                            "--reason", "bezoek")["grant"]
    held = cast.visit.json("grant", "list", cast.network)["grants"]
    assert [(g["grant"], g["direction"], g["status"]) for g in held] == [(grant, "to-you", "granted")]
    assert held[0]["classes"] == ["name"] and held[0]["case"] == cast.case
    assert f"schakel grant release {cast.network} {grant}" in cast.visit.ok("grant", "list", cast.network)
    cast.visit.ok("grant", "release", cast.network, grant)
    gave = cast.coord.json("grant", "list", cast.network)["grants"]
    assert [(g["grant"], g["direction"], g["status"]) for g in gave] == [(grant, "by-you", "released")]
    assert cast.ggz.json("grant", "list", cast.oggz)["grants"] == []


def test_bemoeizorg_invoke_json_prints_the_classes_it_asks(cast: Cast) -> None:
    """Without --class the invocation asks what the policy allows for the case; --json
    said "classes": [] while name and address were then released."""
    assert cast.invoked["classes"] == ["address", "name", "official"]


def test_bemoeizorg_list_shows_the_auditor_every_invocation_with_its_state(cast: Cast) -> None:
    seen = {i["invocation"]: i for i in cast.auditor.json("bemoeizorg", "list", cast.oggz)["invocations"]}
    mine = seen[cast.invocation]
    assert mine["case"] == cast.oggz_case and mine["invoker"] == cast.ggz.key_id
    assert mine["ground"] == "severe-self-neglect" and mine["status"] in ("waiting-for-cosign",
                                                                             "cosigned", "released",
                                                                             "reviewed")
    assert cast.invocation in cast.auditor.ok("bemoeizorg", "list", cast.oggz)
    own = cast.ggz.json("bemoeizorg", "list", cast.oggz)["invocations"]
    assert cast.invocation in [i["invocation"] for i in own]


def test_cosign_from_another_organisation_asks_for_the_case_in_plain_words(cast: Cast) -> None:
    """The co-signer of another organisation may not read the invocation: it is asked
    for --case (usage, exit 2), not told "pass case=" and "not a valid Schakel object"."""
    result = cast.social.run("bemoeizorg", "cosign", cast.oggz, cast.invocation)
    assert result.returncode == 2, result.stderr
    assert "--case CASE" in result.stderr and "case=" not in result.stderr
    assert "not a valid Schakel object" not in result.stderr
    assert f"--case {cast.oggz_case}" in cast.ggz.ok(
        "bemoeizorg", "invoke", cast.oggz, cast.oggz_case, "--ground", "severe-self-neglect",
        "--justification", JUSTIFICATION)                  # the invoker's hint names it
    cast.social.ok("bemoeizorg", "cosign", cast.oggz, cast.invocation, "--case", cast.oggz_case)
    states = {i["invocation"]: i for i in cast.coord.json("bemoeizorg", "list", cast.oggz)["invocations"]}
    assert states[cast.invocation]["status"] == "cosigned"
    assert states[cast.invocation]["cosigners"] == ["Welzijn Amersfoort"]


def test_notifications_show_the_coordinator_each_invocation(cast: Cast) -> None:
    feed = cast.coord.json("notifications", cast.oggz)
    invoked = [n for n in feed["notifications"] if n["kind"] == "bemoeizorg"]
    assert cast.invocation in [n.get("invocation") for n in invoked]
    later = cast.coord.json("notifications", cast.oggz, "--after", feed["cursor"])
    assert later["notifications"] == []
    assert "bemoeizorg invoked" in cast.coord.ok("notifications", cast.oggz)


def test_notifications_refuse_a_member_naming_what_it_can_list_instead(cast: Cast) -> None:
    result = cast.ggz.refused(1, "notifications", cast.oggz)
    assert "coördinator" in result.stderr and "nothing was sent" in result.stderr
    assert "schakel grant list" in result.stderr and "schakel bemoeizorg list" in result.stderr


# --------------------------------------------------------------------------- refusals


def test_a_coordinator_refused_by_policy_is_not_told_to_ask_the_coordinator(cast: Cast) -> None:
    coordinator = cast.coord.refused(1, "grant", "release", cast.network, "A" * 22)
    assert "grant-not-held" in coordinator.stderr
    assert "ask the coordinator" not in coordinator.stderr.lower()
    assert "ask the coördinator" not in coordinator.stderr.lower()
    assert "you are this network's coördinator: you grant identity yourself" in coordinator.stderr
    member = cast.visit.refused(1, "grant", "release", cast.network, "A" * 22)
    assert "you are a kern (core) member" in member.stderr
    assert "the coördinator grants new ones" in member.stderr


def test_every_refusal_names_who_can_act_without_sending_the_coordinator_to_themself() -> None:
    from schakel.cli.commands.refusal import WHO, YOU_ARE
    from schakel.cli.main import HINTS, REASONS, SERVER_HINTS

    for key, table in WHO.items():
        said = table.get("coordinator", "")
        assert "ask them" not in said and "ask the co" not in said, key
        assert "*" in table, key
    for text in [*HINTS.values(), *SERVER_HINTS.values(), *REASONS.values()]:
        assert "ask the coordinator" not in text and "tell the coordinator" not in text, text
    assert set(YOU_ARE) == {"coordinator", "auditor", "core", "shell", "former", "not-admitted"}


# --------------------------------------------------------------------------- cases


def test_a_case_from_before_membership_says_it_predates_it_and_who_can_share(cast: Cast) -> None:
    shown = cast.visit.ok("case", "show", cast.network, cast.case)
    assert "None" not in shown
    assert "the case predates your organisation's membership" in shown
    assert "The coördinator (Gemeente Amersfoort, regie) can share its history" in shown
    assert f"schakel case reshare {cast.network} {cast.case} {cast.visit.key_id}" in shown
    view = cast.visit.json("case", "show", cast.network, cast.case)
    assert view["unreadable_events"] == 2 and "predates" in view["history"]
    listed = cast.visit.ok("case", "list", cast.network)
    assert "None" not in listed and "history not readable" in listed
    refused = cast.social.refused(1, "case", "reshare", cast.network, cast.case,
                                  cast.visit.key_id, "--reason", "nieuw kernlid")
    assert "the coördinator can do this" in refused.stderr
    cast.coord.ok("case", "reshare", cast.network, cast.case, cast.visit.key_id,
                  "--reason", "nieuw kernlid")
    after = cast.visit.json("case", "show", cast.network, cast.case)
    assert after["unreadable_events"] == 0 and after["history"] is None


# --------------------------------------------------------------------------- messages


#: A Python keyword argument in a message a person reads ("pass case=").
PYTHON_ARGUMENT = re.compile(r"\b[a-z_]+=(?=\s|$|[\"'),.;:])")


#: aiohttp's redirects: raised with an address, not a message.
REDIRECTS = frozenset({"HTTPSeeOther", "HTTPFound", "HTTPTemporaryRedirect"})


def _raised_texts(path: Path) -> Iterator[tuple[int, str]]:
    """The literal text of every message a raise in ``path`` builds: the string and
    f-string parts of the exception's first argument.  A redirect's first argument is
    the address it sends the browser to (the console's ``HTTPSeeOther``), no message."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            called = node.exc.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in REDIRECTS:
                continue
            for part in ast.walk(node.exc.args[0]):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    yield node.lineno, part.value


def test_no_user_facing_message_names_a_python_argument() -> None:
    """Refusals reach people through the command line: none names a Python keyword
    argument (the co-signer was told to "pass case=")."""
    leaks = [f"{path.relative_to(ROOT)}:{line}: {text!r}"
             for layer in ("client", "cli", "protocol", "keys", "server")
             for path in sorted((ROOT / layer).rglob("*.py"))
             for line, text in _raised_texts(path) if PYTHON_ARGUMENT.search(text)]
    assert not leaks, "\n".join(leaks)
    assert PYTHON_ARGUMENT.search("this partner cannot read the invocation: pass case=")
