"""`schakel demo` (make demo): the report's practices against a real server, and every
check holds.

One module-scoped run of ``python -m schakel.cli demo --serve --keep DIR`` (every
practice) as a subprocess serves most end-to-end assertions: its narration, its exit
code, the refusals it must show, the copy-pasteable instructions of ``--serve`` (one of
them is run against the still-running server), Ctrl-C, and what ``--keep`` leaves behind.
Each registered practice is also played alone (``--practice NAME``), and a practice
whose check fails, or which stops on an exception, is played through the runner to show
that the exit code says so.  The check-counting helper is unit-tested separately, with
failing checks: a demo that printed "all checks held" after a failure would be worse
than no demo.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schakel.cli.demo.practices import REGISTRY, load
from schakel.cli.demo.stage import Practice, Scene
from schakel.cli.demo.tally import ASCII, UNICODE, Tally, marks_for
from schakel.protocol.errors import PolicyViolation

ROOT = Path(__file__).resolve().parent.parent
#: Generous: `make demo` should take well under a minute on a 2-core machine.
DEMO_TIMEOUT = 240.0
SERVING = "Ctrl-C stops the server"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env["PYTHONIOENCODING"] = "utf-8"
    env["SCHAKEL_LANG"] = "en"          # the tests read English (tests/cli_harness.py)
    return env


@dataclass
class DemoRun:
    stdout: str
    stderr: str
    returncode: int
    keep: Path
    cli_after: subprocess.CompletedProcess[str] | None
    example: subprocess.CompletedProcess[str] | None
    seconds: float
    console_visit: dict[str, str] | None = None

    @property
    def passed(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(f"  {UNICODE.ok} ")]

    @property
    def failed(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.lstrip().startswith(UNICODE.fail)]


def _read_lines(stream: io.TextIOBase, lines: "queue.Queue[str | None]") -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _cli_from_instructions(stdout: str) -> subprocess.CompletedProcess[str]:
    """Run the GP's `schakel case list` exactly as the printed instructions say."""
    passphrase = re.search(r"export SCHAKEL_PASSPHRASE='([^']+)'", stdout)
    gp = re.search(r"# the GP's practice.*\n\s+export SCHAKEL_HOME=(\S+)\n"
                   r"\s+schakel (case list \S+)\n", stdout)
    assert passphrase and gp, "the --serve instructions lack the GP example"
    env = {**_env(), "SCHAKEL_PASSPHRASE": passphrase[1], "SCHAKEL_HOME": gp[1]}
    return subprocess.run([sys.executable, "-m", "schakel.cli", *gp[2].split(), "--json"],
                          env=env, text=True, capture_output=True, timeout=120)


CONSOLE_LINE = re.compile(r"^    (\S.*?)\s+(http://127\.0\.0\.1:(\d+)/\?token=\S+)$", re.MULTILINE)


def _consoles(stdout: str) -> list[tuple[str, str]]:
    """The (organisation, start address) pairs the --serve instructions print."""
    return [(m[1], m[2]) for m in CONSOLE_LINE.finditer(stdout)]


def _visit_console(stdout: str) -> dict[str, str] | None:
    """Open the welfare organisation's console as its printed address says, as a browser
    would: the start address, then the unlock form with the printed passphrase."""
    import asyncio

    import aiohttp

    passphrase = re.search(r"export SCHAKEL_PASSPHRASE='([^']+)'", stdout)
    found = [a for name, a in _consoles(stdout) if name.startswith("Welzijn")]
    if not passphrase or not found:
        return None                        # the test of the console addresses says so
    address = found[0]
    origin = address.split("/?", 1)[0]

    async def visit() -> dict[str, str]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(address) as answer:
                start = await answer.text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', start)
            assert csrf, start
            async with http.post(origin + "/unlock", headers={"Origin": origin},
                                 data={"csrf": csrf[1], "passphrase": passphrase[1]}) as answer:
                return {"start": start, "unlocked": await answer.text(),
                        "status": str(answer.status)}
    return asyncio.run(visit())


def _developer_example(stdout: str) -> subprocess.CompletedProcess[str]:
    """Run the code example of docs/roles/partner-developer.md, as written, against the
    demo's server as home care (only the network id, the home and the passphrase are
    filled in)."""
    page = (ROOT / "docs" / "roles" / "partner-developer.md").read_text(encoding="utf-8")
    code = re.search(r"## Example\n\n```python\n(.*?)```", page, re.DOTALL)
    network = re.search(r"schakel member list (\S+)", stdout)
    home = re.search(r"export SCHAKEL_HOME=(\S+)/welzijn\n", stdout)
    passphrase = re.search(r"export SCHAKEL_PASSPHRASE='([^']+)'", stdout)
    assert code and network and home and passphrase
    source = (code[1].replace('NETWORK = "…"', f'NETWORK = "{network[1]}"')
              .replace('Path("/var/lib/schakel/thuiszorg")', f'Path("{home[1]}/thuiszorg")')
              .replace('passphrase="from your secret store"', f'passphrase="{passphrase[1]}"'))
    return subprocess.run([sys.executable, "-c", source], env=_env(), text=True,
                          capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    keep = tmp_path_factory.mktemp("demo") / "kept"
    started = time.monotonic()
    # The demo starts with SIGINT as a terminal's Ctrl-C finds it: a run started in the
    # background of a script ignores SIGINT, and a child would inherit that (the SIGINT
    # below would then be lost and the demo left to SIGTERM).
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "schakel.cli", "demo", "--serve",
                                 "--keep", str(keep)], cwd=tmp_path_factory.getbasetemp(),
                                env=_env(), text=True, encoding="utf-8",
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    out: list[str] = []
    cli_after = example = None
    visit: dict[str, str] | None = None
    ended = False
    try:
        deadline = time.monotonic() + DEMO_TIMEOUT
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                ended = True                             # the demo ended (a failure: no --serve)
                break
            out.append(line)
            if SERVING in line:
                break
        seconds = time.monotonic() - started
        if not ended:
            cli_after = _cli_from_instructions("".join(out))
            example = _developer_example("".join(out))
            visit = _visit_console("".join(out))
            proc.send_signal(signal.SIGINT)              # what Ctrl-C sends
        proc.wait(timeout=60)
        while not ended and (line := lines.get(timeout=10)) is not None:
            out.append(line)
    finally:
        if proc.poll() is None:                          # SIGTERM: the demo stops its server
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    yield DemoRun(stdout="".join(out), stderr=proc.stderr.read(), returncode=proc.returncode,
                  keep=keep, cli_after=cli_after, example=example, seconds=seconds,
                  console_visit=visit)


# --------------------------------------------------------------------------- end to end


def test_every_check_holds_and_the_exit_code_says_so(demo: DemoRun) -> None:
    assert demo.failed == [], demo.stdout[-4000:] + demo.stderr[-4000:]
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    summary = re.search(r"All (\d+) checks held", demo.stdout)
    assert summary, demo.stdout[-2000:]
    assert int(summary[1]) == len(demo.passed) >= 50
    assert "Traceback" not in demo.stderr


def test_the_story_plays_every_practice_then_the_auditors(demo: DemoRun) -> None:
    titles = [p.title for p in load()]
    positions = [demo.stdout.find(f" {title} ") for title in titles]
    assert -1 not in positions and positions == sorted(positions), titles
    for heading in ("anonymous signal", "consent", "bemoeizorg", "referral", "policy version 2",
                    "Veilig Thuis", "network's card", "on behalf of others",
                    "the acting user's party decides", "verify every audit log from scratch",
                    "What the server holds"):
        assert heading in demo.stdout, heading
    assert demo.stdout.index("verify every audit log") > positions[-1]
    assert "Hendrik de Vries, Soesterweg 12" in demo.stdout      # what the visiting service reads
    for practice in load():                                      # every network's log verified
        assert re.search(rf"{re.escape(practice.title.split(': ', 1)[1])}: .* recomputes "
                         rf"every entry", demo.stdout), practice.name


@pytest.mark.parametrize(("who", "refusal"), [
    ("wrong fingerprint (MEE's", "genesis-untrusted"),
    ("server fingerprint of one wrong digit", "untrusted_key"),
    ("'nvt' as the reason", "formal-action-reason-says-nothing"),
    ("grants the visiting service his BSN", "informal-class-not-allowed"),   # its own client
    ("skips that check", "informal-class-not-allowed"),                      # the server
    ("PII guard", "refused ("),                                              # a phone number
    ("asks the server for the case anyway", "forbidden"),                    # the shell GP
    ("police try to invoke bemoeizorg", "bemoeizorg-role-required"),
    ("before anyone co-signed", "bemoeizorg-four-eyes-required"),
    ("co-sign its own invocation", "bemoeizorg-same-person-cosign"),
    ("domestic-violence (not in policy version 1)", "bemoeizorg-ground-invalid"),
    ("police put a policy version 2 of their own making", "forbidden"),
    ("version 3 signed by the police", "bad_signature"),               # a client's own check
    ("a case not shared with it", "shell-without-share"),              # Veilig Thuis
    ("a kind the card does not ask for", "signaller-kind-not-on-card"),
    ("receipt of their own making", "not_found"),
    ("asks the server for the case by its id", "not_found"),   # outside a subset case
    ("let the volunteer point in by a share", "partner-not-in-audience"),
    ("De Schoor widens it itself", "not-case-owner"),
    ("volunteer's session asks for the grant", "informal-class-not-allowed"),   # WIJ, server
    ("intern's session (wij-stagiair-2) asks", "acting-user-not-listed"),      # its own client
    ("intern's session syncs", "acting-user-not-listed"),                      # the server
    ("skips the check sends the release", "acting-user-not-listed"),           # audited
    ("the regie corrects it itself", "not-case-owner"),                # only the owner seals
    ("releases again under its grant", "identity-erased"),             # after the erasure
])
def test_the_key_refusals_are_shown(demo: DemoRun, who: str, refusal: str) -> None:
    refused = [line for line in demo.passed if who in line and refusal in line]
    assert refused, f"no passed check shows {who!r} refused with {refusal!r}"


def test_the_pii_refusal_shows_where_and_suggests_a_rewrite(demo: DemoRun) -> None:
    shown = [line for line in demo.passed if "the refusal says where and what" in line]
    assert shown and "[telefoon]" in shown[0] and "06-12345678" not in shown[0]
    assert 'is shown: phone number at "06-12345678" \u2192 [telefoon]' in demo.stdout


def test_the_pii_refusal_names_the_man_and_suggests_naam(demo: DemoRun) -> None:
    shown = [line for line in demo.passed if "the refusal says where and what" in line]
    assert shown and "[naam] woont alleen" in shown[0] and "Vries" not in shown[0]
    assert 'is shown: name of a person at "' in demo.stdout


def test_the_subset_case_stays_inside_its_audience(demo: DemoRun) -> None:
    """Almere: the rest of the kern neither lists, fetches nor counts the case; the widening
    is one audit entry whose sealed reason the privacy officer opens; the rekey after a
    removal leaves the removed partner out."""
    passed = "\n".join(demo.passed)
    for claim in ("Wijkverpleging Stedenwijk syncs: its list holds the whole-kern case, not "
                  "the rent arrears",
                  "Vrijwilligerspunt Almere syncs: its list holds the whole-kern case, not the "
                  "rent arrears",
                  "both answers are the same 404, word for word",
                  "the figures the volunteer point computes count 1 case; De Schoor's count 2",
                  "none of the case's three sealed keys opens with its own",
                  "the district nurses read the whole history",
                  "the privacy officer opens the reason sealed to it",
                  "key version 2 is sealed to social work, De Schoor and the district nurses: "
                  "not to debt counselling",
                  "opens what was written before it left, not the note written after"):
        assert claim in passed, claim
    assert re.search(r"one audience-widen entry \(\d+\): the case, the district nurses", passed)
    assert "reads: \"Zij spuit haar insuline niet meer" in demo.stdout


def test_every_entry_of_the_centrales_acts_says_on_whose_behalf(demo: DemoRun) -> None:
    passed = "\n".join(demo.passed)
    assert re.search(r"all \d+ entries of the centrale's acts \(read, release\) say \"namens "
                     r"Buurtmaatjes Hoograven, Klushulp Lunetten, Boodschappenkring Tolsteeg\"",
                     passed)
    assert "names the membership's organisations and the informal party, not the claim" in passed
    assert ("namens / on behalf of: Buurtmaatjes Hoograven, Klushulp Lunetten, "
            "Boodschappenkring Tolsteeg") in demo.stdout               # the access report's text


def test_the_acting_users_party_is_shown_in_the_log_and_the_access_report(
        demo: DemoRun) -> None:
    passed = "\n".join(demo.passed)
    assert re.search(r"the refusal is audit entry \d+: deny, wij-vrijwilliger-7, party informal",
                     passed)
    assert "the professional's session reads her name, address and BSN" in passed
    assert "withheld for your party (informal: vrijwilliger): official" in passed
    assert "medewerker / user wij-vrijwilliger-7 (informeel / informal)" in demo.stdout
    assert "ask them to add you" in demo.stdout                        # the unlisted intern


def test_the_denial_is_shown_in_the_audit_log(demo: DemoRun) -> None:
    assert re.search(r"the refusal is audit entry \d+: action deny", demo.stdout)


def test_the_servers_database_holds_no_name(demo: DemoRun) -> None:
    assert "no trace of the man's name, street or BSN" in "\n".join(demo.passed)
    database = b"".join(p.read_bytes() for p in (demo.keep / "server").glob("schakel.db*"))
    assert len(database) > 10_000
    for needle in (b"Hendrik", b"de Vries", b"111222333", b"Brouwer", b"Verbeek",
                   b"Pretorialaan", b"Vogelweide", b"Koopmans", b"Baljuwstraat",
                   b"Kamphuis", b"Zwanenvechtlaan",
                   b"Hoogendijk", b"Haagweg", b"123456782"):
        assert needle not in database


def test_the_persons_rights_are_answered_through_one_contact_point(demo: DemoRun) -> None:
    """Amersfoort's regie answers the man's access request once for its two networks with
    the command line, his address is corrected for the visiting service, and after his
    erasure no file of the server or of a home holds his identity (the report's page
    included: it was handed over)."""
    passed = "\n".join(demo.passed)
    for claim in ("it covers both networks the regie coordinates and finds his case in each",
                  "social work, the case's owner, confirms it",
                  "it now reads: Soesterweg 12A",
                  "no case is found in either network",
                  "after: no file of the server's data"):
        assert claim in passed, claim
    files = [p for p in (demo.keep / "server").rglob("*") if p.is_file()]
    files += [p for p in (demo.keep / "homes").rglob("*") if p.is_file()]
    assert not [p for p in files if p.name == "inzageverslag.html"]
    for path in files:
        data = path.read_bytes()
        assert not [n for n in (b"Hendrik", b"Kolkakkerweg", b"111222333", b"1946-05-04")
                    if n in data], path


def test_serve_prints_instructions_that_work(demo: DemoRun) -> None:
    assert demo.cli_after is not None, "the demo did not reach --serve"
    assert demo.cli_after.returncode == 0, demo.cli_after.stderr
    listed = json.loads(demo.cli_after.stdout)
    cases = listed["cases"] if isinstance(listed, dict) else listed
    assert [c["kind"] for c in cases] == ["consult"]        # the shell GP sees only what was shared
    assert "SCHAKEL_HOME=" in demo.stdout and "SCHAKEL_PASSPHRASE=" in demo.stdout


def test_serve_prints_a_console_address_for_every_organisation_that_opens_its_home(
        demo: DemoRun) -> None:
    homes = re.search(r"with every organisation's home:\n(.*?)\n\n", demo.stdout, re.DOTALL)
    assert homes, demo.stdout[-3000:]
    organisations = [line.strip().rsplit(" ", 1)[0].strip() for line in homes[1].splitlines()]
    consoles = _consoles(demo.stdout)
    assert [name for name, _address in consoles] == organisations
    assert len({address.split("/?")[0] for _name, address in consoles}) == len(organisations)
    assert demo.console_visit is not None, "the demo did not reach --serve"
    assert 'name="passphrase"' in demo.console_visit["start"]
    assert demo.console_visit["status"] == "200", demo.console_visit["unlocked"]
    unlocked = demo.console_visit["unlocked"]
    assert 'href="/n/' in unlocked and "Welzijn" in unlocked


def test_the_developers_example_runs_against_the_demo(demo: DemoRun) -> None:
    assert demo.example is not None, "the demo did not reach --serve"
    assert demo.example.returncode == 0, demo.example.stdout + demo.example.stderr
    # it brought a case in, read it back, and holds the identity it sealed itself
    held = [line for line in demo.example.stdout.splitlines()
            if line.startswith("identity this partner holds:")]
    assert len(held) == 1 and "'Hendrik'" in held[0] and "'Soesterweg'" in held[0]
    assert " consult " in demo.example.stdout                  # the consult it posted earlier


def test_keep_leaves_the_homes_and_the_server_data(demo: DemoRun) -> None:
    assert (demo.keep / "server" / "schakel.db").is_file()
    folders = sorted(p.name for p in (demo.keep / "homes").iterdir())
    assert folders == sorted(REGISTRY)                          # one folder per practice
    homes = {f"{p.parent.name}/{p.name}" for p in (demo.keep / "homes").glob("*/*")
             if p.is_dir()}
    assert {"amersfoort/welzijn", "amersfoort/bezoekwerk", "rotterdam/ggd",
            "rotterdam/veilig-thuis", "zeist/steunpunt", "almere/schoor",
            "utrecht/vrijwilligerscentrale",
            "breda/wij"} <= homes
    for home in homes:
        assert (demo.keep / "homes" / home / "keystore.json").is_file()
    assert (demo.keep / "homes" / "zeist" / "kaart-steunpunt.json").is_file()   # the card
    assert f"Kept the server data and the homes in {demo.keep}" in demo.stdout


def test_keep_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("mine")
    result = subprocess.run([sys.executable, "-m", "schakel.cli", "demo", "--keep", str(tmp_path)],
                            env=_env(), text=True, capture_output=True, timeout=60)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "something").read_text() == "mine"


# --------------------------------------------------------------------------- one practice


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_practice_plays_alone_and_every_check_holds(name: str) -> None:
    """``schakel demo --practice NAME``: its own homes and networks, the report's words
    first, the oversight on its networks only, exit 0 and no failed check."""
    result = subprocess.run([sys.executable, "-m", "schakel.cli", "demo", "--practice", name],
                            env=_env(), text=True, encoding="utf-8", capture_output=True,
                            timeout=DEMO_TIMEOUT)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    assert not [line for line in out.splitlines() if line.lstrip().startswith(UNICODE.fail)]
    assert "Traceback" not in result.stderr
    (practice,) = load([name])
    assert f" {practice.title} " in out
    assert out.index(practice.report[0][:40]) < out.index("── 0. ")   # the report opens it
    others = [p.title for p in load() if p.name != name]
    assert not [title for title in others if title in out]
    assert re.search(r"All (\d+) checks held", out)
    assert "verify every audit log from scratch" in out and "What the server holds" in out


def test_the_help_lists_every_registered_practice() -> None:
    from click.testing import CliRunner

    from schakel.cli.main import main

    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    for name, entry in REGISTRY.items():
        assert re.search(rf"^  {name} +{re.escape(entry.summary.split()[0])}", result.output,
                         re.MULTILINE), name


def test_an_unknown_practice_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "schakel.cli", "demo", "--practice",
                             "groningen"], env=_env(), text=True, capture_output=True, timeout=60)
    assert result.returncode == 2 and "groningen" in result.stderr


def _practice(name: str, *acts: object) -> Practice:
    return Practice(name=name, title=f"Test: {name}", report=(f"What the report says of {name}.",),
                    scene=Scene, acts=acts, instructions=lambda scene: "")  # type: ignore[arg-type]


def test_a_failing_check_in_a_practice_makes_the_exit_code_non_zero(tmp_path: Path) -> None:
    """Through the runner against a real server: one practice whose check fails and one
    that stops on an exception; the next practice still plays, the oversight still runs,
    the summary names both failures and the exit code is 1."""
    from schakel.cli.demo.runner import run

    async def fails(scene: Scene) -> None:
        scene.t.check(True, "a claim that holds")
        scene.t.check(False, "a claim that does not hold")

    async def raises(scene: Scene) -> None:
        raise RuntimeError("the act broke")

    async def holds(scene: Scene) -> None:
        scene.t.check(True, "the next practice still plays")

    out = io.StringIO()                                          # no encoding: ASCII marks
    code = run(practices=[_practice("failing", fails), _practice("broken", raises, holds),
                          _practice("next", holds)], keep=tmp_path / "kept", out=out)
    text = out.getvalue()
    assert code == 1, text
    assert f"{ASCII.fail} a claim that does not hold" in text
    assert f"{ASCII.fail} the broken practice ran to its end" in text and "the act broke" in text
    assert text.count("the next practice still plays") == 1     # broken stopped before it
    assert " Test: next " in text and "What the server holds" in text
    assert re.search(r"2 of \d+ checks FAILED", text)
    assert "checks held" not in text


# --------------------------------------------------------------------------- the tally


def _tally() -> tuple[Tally, list[str]]:
    lines: list[str] = []
    return Tally(say=lines.append, marks=UNICODE), lines


def test_a_failed_check_makes_the_exit_code_non_zero() -> None:
    tally, lines = _tally()
    tally.check(True, "a claim that holds")
    tally.check(False, "a claim that does not", why="because")
    assert (tally.checks, tally.passed, tally.failures) == (2, 1, ["a claim that does not"])
    assert tally.exit_code() == 1
    tally.summary(1.0)
    assert "1 of 2 checks FAILED" in "\n".join(lines)
    assert not any("checks held" in line for line in lines)


def test_all_checks_held_is_zero_and_no_checks_is_not() -> None:
    tally, lines = _tally()
    assert tally.exit_code() == 1                      # nothing tested is not a success
    tally.check(True, "one")
    assert tally.exit_code() == 0
    tally.summary(0.5)
    assert "All 1 checks held" in lines[-1]


async def test_holds_records_an_exception_as_a_failure() -> None:
    tally, lines = _tally()

    async def broken() -> None:
        raise PolicyViolation("no", details={"reason": "x"})

    assert await tally.holds("works", broken()) is None
    assert await tally.holds("returns", lambda: 42) == 42
    assert tally.failures == ["works"] and tally.exit_code() == 1
    assert "policy_violation" in lines[0]


async def test_refused_fails_when_allowed_or_refused_for_another_reason() -> None:
    tally, _ = _tally()

    async def allowed() -> str:
        return "fine"

    def denied() -> None:
        raise PolicyViolation("informal parties may not",
                              details={"reason": "informal-class-not-allowed"})

    await tally.refused("allowed action", allowed())
    await tally.refused("wrong reason", denied, reason="consent-missing")
    await tally.refused("wrong code", denied, code="forbidden")
    exc = await tally.refused("right reason", denied, reason="informal-class-not-allowed",
                              code="policy_violation", error=PolicyViolation)
    assert isinstance(exc, PolicyViolation)
    assert tally.failures == ["allowed action: refused",
                              "wrong reason: refused (informal-class-not-allowed)",
                              "wrong code: refused (informal-class-not-allowed)"]
    assert tally.passed == 1 and tally.exit_code() == 1


def test_marks_fall_back_to_ascii_when_the_terminal_cannot_print_them() -> None:
    assert marks_for(io.TextIOWrapper(io.BytesIO(), encoding="utf-8")) == UNICODE
    assert marks_for(io.TextIOWrapper(io.BytesIO(), encoding="ascii")) == ASCII
    assert marks_for(io.TextIOWrapper(io.BytesIO(), encoding="cp1252")) == ASCII
    tally = Tally(say=lambda line: line.encode("ascii"), marks=ASCII)
    tally.check(True, "printable")
    tally.check(False, "also printable")


# --------------------------------------------------------------------------- the role pages


def _documented_commands() -> list[tuple[str, list[str]]]:
    """Every `schakel ...` line in the shell blocks of docs/roles/*.md and of the README's
    Tutorials, continuation lines joined and comments dropped."""
    import shlex

    sources = sorted((ROOT / "docs" / "roles").glob("*.md"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tutorials = readme[readme.index("## Tutorials"):readme.index("## Roles")]
    found: list[tuple[str, list[str]]] = []
    for name, text in [(p.name, p.read_text(encoding="utf-8")) for p in sources] + [
            ("README.md", tutorials)]:
        blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
        inline = re.findall(r"`(schakel [^`]+)`", text)
        lines: list[str] = []
        for block in blocks:
            joined = re.sub(r"\\\n\s*", " ", block)
            lines += [line.split(" #")[0].strip() for line in joined.splitlines()]
        for line in lines + inline:
            if line.startswith("schakel ") and "..." not in line and "…" not in line:
                found.append((name, shlex.split(line)[1:]))
    return found


def test_the_role_pages_use_commands_and_options_that_exist() -> None:
    """docs/roles and the README's tutorials name real commands with real options: each
    parses (`--help` appended, so nothing runs), or this test names the line."""
    from click.testing import CliRunner

    from schakel.cli.main import main

    commands = _documented_commands()
    assert len(commands) >= 40
    runner = CliRunner()
    wrong = []
    for source, args in commands:
        result = runner.invoke(main, [*args, "--help"])
        if result.exit_code != 0:
            wrong.append(f"{source}: schakel {' '.join(args)}\n    {result.output.strip()[-200:]}")
    assert not wrong, "\n".join(wrong)
