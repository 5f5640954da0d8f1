"""The tutorials run as written: every ```sh block of README.md and docs/roles/*.md is
either run, command by command, against a real ``schakel serve``, or marked as not meant
to run, with the reason (ADR 0025).

The convention, for whoever writes a tutorial:

* The line before each ```sh fence is an HTML comment, invisible on GitHub:
  ``<!-- tutorial: NAME -->`` runs the block as part of tutorial NAME (the blocks of one
  name run in the document's order, in one fresh working directory, with ``HOME`` there
  too, so ``~/schakel-welzijn`` is a folder of the run); ``<!-- tutorial: skip: REASON -->``
  leaves it out (``make test`` itself, ``pip install``, a server that runs until Ctrl-C).
  A block without the comment fails :func:`test_every_shell_block_is_run_or_marked`.
* Each command runs in ``bash`` exactly as written, with ``schakel`` from this
  environment on the ``PATH`` and ``SCHAKEL_PASSPHRASE`` set (the prompt's alternative the
  tutorials name); ``export`` lines set the variable for the commands after them.  It must
  exit 0 and print no traceback.
* A word in capitals (``NETWORK``, ``CASE``, ``"SERVER DIGITS"``) is a placeholder the
  reader fills in from an earlier command's output or from another participant; the
  tutorial's :class:`Script` below says where each one comes from, and the run fills it
  in the same way.  A capitals word no script knows fails the run.
* What other participants do meanwhile (the coordinator admits you, a partner brings in a
  case) is done by the script's hooks, with the same command line, as other homes.
* Three substitutions keep a run local and quick: the example server addresses
  (``https://schakel.example.nl``, ``http://127.0.0.1:8470``) become the running server's,
  ``/srv/schakel`` a folder of the run, and ``schakel init`` gets ``--kdf interactive``
  when it names no ``--kdf`` (the keystore's strength is not what a tutorial shows, and
  the moderate setting costs every later command of the run another 0.4 s).
* ``schakel serve --data DIR`` is started in the background (the reader runs it in a
  second terminal) and stopped when the tutorial ends.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from schakel.cli.commands.covenant import covenant_text
from schakel.cli.serverprocess import ServerProcess

from tests.cli_harness import ENGLISH, PASSPHRASE, TIMEOUT, Org, live_server
from tests.server_harness import IDENTITY, INTAKE

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs" / "roles").glob("*.md"))]
BIN = Path(sys.executable).parent

#: A fenced block that holds shell commands, whatever its info string says.
SHELL_FENCE = re.compile(r"^```\s*(sh|bash|shell|console|zsh)\s*$")
MARKER = re.compile(r"^<!--\s*tutorial:\s*(?P<what>.+?)\s*-->$")
#: A placeholder: a bare word in capitals, or a quoted phrase of them ("SERVER DIGITS").
PLACEHOLDER = re.compile(r'"(?P<phrase>[A-Z][A-Z_]*(?: [A-Z][A-Z_]*)*)"|'
                         r'(?<![\w./-])(?P<word>[A-Z][A-Z_]{2,})(?![\w./=-])')
#: Example server addresses in the tutorials, and where the run's server answers instead.
EXAMPLE_SERVERS = ("https://schakel.example.nl", "http://127.0.0.1:8470")


@dataclass(frozen=True)
class Block:
    """One ```sh block: where it is, what its marker says, its commands."""

    document: Path
    line: int
    marker: str | None
    commands: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def tutorial(self) -> str | None:
        if self.marker is None or self.marker.startswith("skip"):
            return None
        return self.marker


def without_comment(line: str) -> str:
    """``line`` without a shell comment (a ``#`` after a blank, outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def commands_of(lines: list[str]) -> tuple[str, ...]:
    """The commands of a block: continuation lines joined, comments and blanks dropped."""
    out: list[str] = []
    pending = ""
    for raw in lines:
        line = without_comment(raw.strip())
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        out.append(pending + line)
        pending = ""
    assert not pending, f"a command ends with a line continuation: {pending!r}"
    return tuple(out)


def blocks_of(document: Path, text: str | None = None) -> list[Block]:
    lines = (text if text is not None else document.read_text(encoding="utf-8")).splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if SHELL_FENCE.match(lines[i].strip()):
            start = i
            previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = MARKER.match(previous)
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            blocks.append(Block(document, start + 1, marker["what"] if marker else None,
                                commands_of(body)))
        i += 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in blocks_of(document)]


# --------------------------------------------------------------------------- running


@dataclass
class Ran:
    command: str
    stdout: str
    stderr: str


@dataclass
class Run:
    """One tutorial being followed: its folder, its environment, what it printed."""

    root: Path
    server: ServerProcess | None
    env: dict[str, str] = field(default_factory=dict)
    ran: list[Ran] = field(default_factory=list)
    #: Values the hooks learned (a case another participant brought in, ...).
    values: dict[str, str] = field(default_factory=dict)
    others: dict[str, Org] = field(default_factory=dict)
    background: list[ServerProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None, "no server is running yet in this tutorial"
        return self.server.url

    def rows(self, prefix: str) -> dict[str, str]:
        """The ``label  value`` rows the last command starting with ``prefix`` printed."""
        for ran in reversed(self.ran):
            if ran.command.startswith(prefix):
                return dict(_rows(ran.stdout))
        raise AssertionError(f"no command `{prefix} …` ran before the value was needed")

    def file(self, name: str, content: object) -> str:
        path = self.root / name
        path.write_text(content if isinstance(content, str) else json.dumps(content),
                        encoding="utf-8")
        return name

    def org(self, label: str, name: str) -> Org:
        """Another participant with a home of its own in this run's folder."""
        org = Org(label, self.root / "others" / label)
        org.home.parent.mkdir(exist_ok=True)
        info = json.loads(_init(org, name, self.url))
        org.key_id, org.fingerprint = info["key_id"], info["fingerprint"]
        self.others[label] = org
        return org

    def shell(self, command: str) -> Ran:
        result = subprocess.run(["bash", "-c", command], check=False, cwd=self.root,
                                env=self.env, text=True, capture_output=True,
                                stdin=subprocess.DEVNULL, timeout=TIMEOUT, start_new_session=True)
        ran = Ran(command, result.stdout, result.stderr)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (
            f"`{command}` exited {result.returncode}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}")
        return ran


def _init(org: Org, name: str, url: str) -> str:
    from tests.cli_harness import schakel

    result = schakel("init", "--home", str(org.home), "--name", name, "--server", url,
                     "--acting-user", f"{org.label}-1", "--kdf", "interactive", "--json",
                     cwd=org.home.parent)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rows(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        label, sep, value = line.partition("  ")
        if sep and label.strip() and value.strip():
            yield label.strip(), value.strip()


Hook = Callable[[Run], None]


@dataclass
class Script:
    """What a tutorial's text leaves to the reader: where each placeholder's value comes
    from, what the other participants do before or after a command, and what a command
    must print."""

    placeholders: dict[str, Callable[[Run], str]]
    before: dict[str, Hook] = field(default_factory=dict)
    after: dict[str, Hook] = field(default_factory=dict)
    expect: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: A server the tutorial's commands use from the start (None: the tutorial starts one).
    shared_server: bool = True


def fill(run: Run, script: Script, command: str) -> str:
    """``command`` with its placeholders filled in and the local substitutions made."""
    def value(m: re.Match[str]) -> str:
        name = m["phrase"] or m["word"]
        if name not in script.placeholders:
            raise AssertionError(f"`{command}`: {name} is a placeholder the tutorial's script "
                                 "does not know; add it to SCRIPTS in tests/test_tutorials.py")
        return shlex.quote(script.placeholders[name](run))

    filled = PLACEHOLDER.sub(value, command)
    for example in EXAMPLE_SERVERS:
        if example in filled:
            filled = filled.replace(example, run.url)
    filled = filled.replace("/srv/schakel", str(run.root / "srv" / "schakel"))
    if filled.startswith(".venv/bin/schakel "):
        filled = filled.removeprefix(".venv/bin/")
    if re.match(r"schakel init\b", filled) and "--kdf" not in filled:
        filled += " --kdf interactive"
    return filled


def matching(table: dict[str, Hook], command: str, done: set[str]) -> Iterator[Hook]:
    for prefix, hook in table.items():
        if prefix not in done and command.startswith(prefix):
            done.add(prefix)
            yield hook


def follow(run: Run, script: Script, blocks: list[Block]) -> None:
    """Run every command of ``blocks`` in order, with the script's hooks and checks."""
    done_before: set[str] = set()
    done_after: set[str] = set()
    expected = dict(script.expect)
    for block in blocks:
        for command in block.commands:
            for hook in matching(script.before, command, done_before):
                hook(run)
            filled = fill(run, script, command)
            serve = re.match(r"schakel serve --data (\S+)$", filled)
            if serve:
                server = ServerProcess(run.root / serve[1])
                server.start()
                run.background.append(server)
                run.server = server
                run.ran.append(Ran(command.removeprefix(".venv/bin/"), server.url, ""))
                continue
            export = re.match(r"export (\w+)=(.*)$", filled)
            ran = run.shell(f"{filled} && printf %s \"${export[1]}\"" if export else filled)
            if export:
                run.env[export[1]] = ran.stdout
            ran.command = command.removeprefix(".venv/bin/")
            run.ran.append(ran)
            for prefix in [p for p in expected if command.startswith(p)]:
                for text in expected.pop(prefix):
                    assert text in ran.stdout, (
                        f"{block.where}: `{command}` did not print {text!r}:\n{ran.stdout}")
            for hook in matching(script.after, command, done_after):
                hook(run)
    unused = (set(script.before) - done_before) | (set(script.after) - done_after) | set(expected)
    assert not unused, f"the script names commands the tutorial no longer has: {sorted(unused)}"


# --------------------------------------------------------------------------- the scripts


def latest_init(run: Run) -> str:
    """The fingerprint the partner's latest `schakel init --home` printed (read aloud)."""
    return run.rows("schakel init --home")["fingerprint"]


def held(name: str) -> Callable[[Run], str]:
    def value(run: Run) -> str:
        assert name in run.values, f"{name} is needed before the script provided it"
        return run.values[name]
    return value


def network_id(run: Run) -> str:
    return run.rows("schakel network create")["network"]


def coordinator_fingerprint(run: Run) -> str:
    return run.rows("schakel network create")["fingerprint"]


def server_fingerprint(run: Run) -> str:
    """What the operator gives the coordinator (`schakel server init` reads existing keys)."""
    assert run.server is not None
    return run.server.fingerprint or run.server.init()


def other(label: str, what: str = "fingerprint") -> Callable[[Run], str]:
    """The fingerprint (read aloud) or key id (from `member list`) of another participant."""
    return lambda run: str(getattr(run.others[label], what))


def partners(**names: str) -> Hook:
    """Other organisations create their homes and hand the coordinator their bundles
    (``LABEL-bundle.json`` in the tutorial's folder)."""
    def prepare(run: Run) -> None:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            orgs = list(pool.map(lambda item: run.org(*item), names.items()))
        for org in orgs:
            org.ok("keys", "bundle", "--out", str(run.root / f"{org.label}-bundle.json"))
    return prepare


def join(*labels: str) -> Hook:
    """The admitted partners trust the coordinator's fingerprint and accept the covenant."""
    def accept(run: Run) -> None:
        network, fingerprint = network_id(run), coordinator_fingerprint(run)
        for label in labels:
            org = run.others[label]
            org.ok("network", "trust", network, "--fingerprint", fingerprint)
            org.ok("network", "join", network, "--covenant-file", str(run.root / "convenant.txt"))
    return accept


def participant(label: str) -> Callable[[Run], Org]:
    return lambda run: run.others[label]


def case_by(who: Callable[[Run], Org], network: Callable[[Run], str],
            intake: dict[str, object] = INTAKE) -> Hook:
    """A partner brings in a case (``CASE``): an anonymous intake and the sealed identity."""
    def bring_in(run: Run) -> None:
        made = who(run).json(
            "case", "create", network(run),
            "--intake-file", str(run.root / run.file("intake.json", intake)),
            "--identity-file", str(run.root / run.file("identity.json", IDENTITY)))
        run.values["CASE"] = made["case"]
    return bring_in


def anonymous_signal_by(label: str) -> Hook:
    def send(run: Run) -> None:
        sent = run.others[label].json(
            "signal", "send", network_id(run), "--anonymous", "--urgency", "high",
            "--concern", "Buurvrouw ziet haar buurman al twee weken niet meer buiten.")
        run.values["SIGNAL"] = sent["signal"]
    return send


def card_by(label: str) -> Hook:
    """The coordinator publishes the network's card; the reader finds it on the website."""
    def publish(run: Run) -> None:
        run.others[label].ok("network", "card", run.values["NETWORK"], "--out",
                             str(run.root / "kaart.json"))
    return publish


def evidence(name: str) -> Hook:
    """The signed consent form the coordinator keeps (a stand-in for the scan)."""
    def scan(run: Run) -> None:
        run.file(name, "%PDF-1.4 getekend toestemmingsformulier\n")
    return scan


def second_network(run: Run) -> None:
    """The coordinator also coordinates an OGGZ network, the referral's destination."""
    founded = run.shell(
        "schakel network create --name 'Lokaal Zorgnetwerk Amersfoort' --kind oggz "
        f"--covenant-file convenant.txt --server-fingerprint '{server_fingerprint(run)}' --json")
    run.values["TO_NETWORK"] = json.loads(founded.stdout)["network"]


def coordinated(kind: str) -> Hook:
    """The coordinator ("regie", a home of its own) founds a network of ``kind`` on the
    tutorial's server and gives out the covenant file."""
    def found(run: Run) -> None:
        regie = run.org("regie", "Welzijn Amersfoort")
        created = regie.json("network", "create", "--name", f"Netwerk ({kind})", "--kind", kind,
                             "--covenant-file", str(run.root / run.file("convenant.txt", covenant_text())),
                             "--server-fingerprint", server_fingerprint(run))
        run.values["NETWORK"] = created["network"]
    return found


def admitted(bundle: str, *options: str, founding: Hook | None = None) -> Hook:
    """The coordinator adds the tutorial's own home from ``bundle``, checking the
    fingerprint `schakel init` printed (read aloud); ``founding`` first makes the network."""
    def add(run: Run) -> None:
        if founding is not None:
            founding(run)
        run.others["regie"].ok("member", "add", run.values["NETWORK"], str(run.root / bundle),
                               *options, "--fingerprint", latest_init(run))
    return add


def regie_grants_name_and_address(run: Run) -> None:
    """The person consents; the coordinator grants name and address to the volunteers."""
    regie, network, case = run.others["regie"], run.values["NETWORK"], run.values["CASE"]
    evidence("toestemming.pdf")(run)
    me = run.rows("schakel whoami")["key id"]
    consent = regie.json("consent", "record", network, case, "--class", "name", "--class",
                         "address", "--party", "informal", "--purpose", "bezoek door vrijwilliger",
                         "--evidence-file", str(run.root / "toestemming.pdf"))["consent"]
    run.values["GRANT"] = regie.json("grant", "create", network, case, "--consent", consent,
                                     "--to", me, "--class", "name", "--class", "address",
                                     "--reason", "wekelijks bezoek")["grant"]


regie_case = case_by(participant("regie"), held("NETWORK"))


JUSTIFICATION = ("Bewoner weigert al maanden zorg, woning ernstig vervuild; huisarts en "
                 "wijkteam kregen geen contact.")


def oggz_with_bemoeizorg_teams(run: Run) -> None:
    """The OGGZ network before the auditor joins: the GGD coordinates, two teams with
    the bemoeizorg role (four eyes are two people), one of them brings in a case."""
    coordinated("oggz")(run)
    regie, network = run.others["regie"], run.values["NETWORK"]
    partners(ggd="GGD regio Utrecht, bemoeizorg", ggz="GGZ Centraal")(run)
    for label in ("ggd", "ggz"):
        regie.ok("member", "add", network, str(run.root / f"{label}-bundle.json"), "--ring", "core",
                 "--party", "formal", "--role", "bemoeizorg", "--role", "professional-secrecy",
                 "--fingerprint", run.others[label].fingerprint)
        org = run.others[label]
        org.ok("network", "trust", network, "--fingerprint", regie.fingerprint)
        org.ok("network", "join", network, "--covenant-file", str(run.root / "convenant.txt"))
    case_by(participant("ggd"), held("NETWORK"),
            {**INTAKE, "domains": ["self-neglect", "housing-pollution"], "severity": "high"})(run)


def bemoeizorg_with_four_eyes(run: Run) -> None:
    """After the auditor joined: the GGZ team invokes bemoeizorg, the GGD co-signs."""
    network, case = run.values["NETWORK"], run.values["CASE"]
    invocation = run.others["ggz"].json(
        "bemoeizorg", "invoke", network, case, "--ground", "severe-self-neglect",
        "--justification", JUSTIFICATION)["invocation"]
    run.others["ggd"].ok("bemoeizorg", "cosign", network, invocation, "--case", case)
    run.values["INVOCATION"] = invocation


SCRIPTS: dict[str, Script] = {
    "partner-developer": Script(
        shared_server=False,
        placeholders={"NETWORK": held("NETWORK"), "DIGITS": other("regie")},
        after={
            "schakel keys bundle": admitted("bundle.json", "--ring", "core", "--party", "formal",
                                            founding=coordinated("neighbourhood")),
            "schakel network join": regie_case,
        },
        expect={"schakel case list": ('"cases"', '"Soesterkwartier"'),
                "schakel whoami": ("Thuiszorg Amersfoort",)}),
    "auditor": Script(
        placeholders={
            "NETWORK": held("NETWORK"), "DIGITS THE COORDINATOR READ ALOUD": other("regie"),
            "CASE": held("CASE"), "INVOCATION": held("INVOCATION"),
        },
        after={
            "schakel keys bundle": admitted("privacy-bundle.json", "--ring", "shell", "--party",
                                            "formal", "--role", "auditor",
                                            founding=oggz_with_bemoeizorg_teams),
            "schakel network join": bemoeizorg_with_four_eyes,
        },
        expect={
            "schakel audit log": ("bemoeizorg",),
            "schakel bemoeizorg justification": (JUSTIFICATION,),
            "schakel review": ("approved",),
        }),

    "volunteer-and-shell": Script(
        placeholders={
            "NETWORK": held("NETWORK"), "DIGITS": other("regie"), "CASE": held("CASE"),
            "GRANT": held("GRANT"),
            "SIGNAL": lambda run: run.rows("schakel signal send")["signal"],
        },
        after={
            "schakel keys bundle --out bezoekwerk-bundle.json": admitted(
                "bezoekwerk-bundle.json", "--ring", "core", "--party", "informal",
                founding=coordinated("neighbourhood")),
            "schakel keys bundle --out eemland-bundle.json": admitted(
                "eemland-bundle.json", "--ring", "shell", "--party", "formal"),
        },
        before={"schakel sync": regie_case,
                "schakel grant release": regie_grants_name_and_address,
                "schakel signal send --anonymous --network-card": card_by("regie")},
        expect={
            "schakel case list NETWORK": ("Soesterkwartier",),
            "schakel case identity": ("Hendrik",),
            "schakel signal status": ("received",),
        }),

    "coordinator": Script(
        placeholders={
            "SERVER DIGITS": server_fingerprint,
            "NETWORK": network_id,
            "KERK DIGITS": other("kerk"), "GGD DIGITS": other("ggd"),
            "HUISARTS DIGITS": other("huisarts"), "PRIVACY DIGITS": other("privacy"),
            "SIGNAL": held("SIGNAL"), "CASE": held("CASE"), "TO_NETWORK": held("TO_NETWORK"),
            "HUISARTS_KEY_ID": other("huisarts", "key_id"),
            "PARTNER_KEY_ID": other("kerk", "key_id"),
            "KEY_ID": other("huisarts", "key_id"),
            "YOUR_KEY_ID": lambda run: run.rows("schakel network create")["coordinator"],
            "CONSENT": lambda run: run.rows("schakel consent record")["consent"],
        },
        before={
            "schakel member add NETWORK kerk-bundle.json": partners(
                kerk="Kerkelijk Bezoekwerk Soesterkwartier", ggd="GGD regio Utrecht",
                huisarts="Huisartsenpraktijk Soesterkwartier",
                privacy="Privacyfunctionaris Gemeente Amersfoort"),
            "schakel signal list": anonymous_signal_by("kerk"),
            "schakel sync": case_by(participant("ggd"), network_id),
            "schakel consent record NETWORK CASE --class name --class address --party informal":
                evidence("toestemming.pdf"),
            "schakel consent record NETWORK CASE --class name --class address --partner":
                evidence("toestemming-verwijzing.pdf"),
            "schakel case refer": second_network,
        },
        after={"schakel member list": join("kerk", "ggd", "huisarts", "privacy")},
        expect={
            "schakel member list": ("Kerkelijk Bezoekwerk Soesterkwartier", "GGD regio Utrecht",
                                    "Huisartsenpraktijk Soesterkwartier"),
            "schakel signal list": ("Buurvrouw",),
        }),

    "readme": Script(
        shared_server=False,
        placeholders={
            "SERVER DIGITS": lambda run: run.rows("schakel server init")["server fingerprint"],
            "NETWORK": lambda run: run.rows("schakel network create")["network"],
            "YOUR DIGITS": lambda run: run.rows("schakel network create")["fingerprint"],
            "DIGITS": latest_init,
            "CASE": held("CASE"),
        },
        # step 2: the developer's code brings in a case (here with the command line)
        before={"schakel case list NETWORK --home ./home": case_by(
            lambda run: Org("developer", run.root / "home"), network_id)},
        expect={
            "schakel network create": ("Buurtnetwerk 55+ Soesterkwartier",),
            "schakel member list": ("Kerkelijk Bezoekwerk Soesterkwartier", "Welzijn Amersfoort"),
            "schakel case list NETWORK --home ./home --json": ('"cases"',),
        }),
}


# --------------------------------------------------------------------------- the tests


def test_every_shell_block_is_run_or_marked() -> None:
    """A new ```sh block must join a tutorial the test runs, or say why it is not run."""
    problems = []
    for block in all_blocks():
        if block.marker is None:
            problems.append(f"{block.where}: no <!-- tutorial: NAME --> or "
                            "<!-- tutorial: skip: REASON --> on the line before the block")
        elif block.marker.startswith("skip") and not block.marker.partition(":")[2].strip():
            problems.append(f"{block.where}: a skipped block must say why")
        elif block.tutorial is not None and block.tutorial not in SCRIPTS:
            problems.append(f"{block.where}: no script for tutorial {block.tutorial!r}")
        elif not block.commands:
            problems.append(f"{block.where}: the block holds no command")
    assert not problems, "\n".join(problems)


def test_an_unmarked_block_is_found() -> None:
    """The check above sees blocks at all, indented ones in lists included."""
    text = "1. Do this:\n   ```sh\n   schakel whoami\n   ```\n<!-- tutorial: x -->\n```bash\nls \\\n  -l  # a comment\n```\n"
    found = blocks_of(ROOT / "README.md", text)
    assert [(b.marker, b.commands) for b in found] == [(None, ("schakel whoami",)),
                                                       ("x", ("ls -l",))]


def test_every_script_is_used_by_a_document() -> None:
    used = {block.tutorial for block in all_blocks()}
    assert set(SCRIPTS) <= used, f"scripts for no tutorial: {sorted(set(SCRIPTS) - used)}"


def test_the_sample_covenant_is_shipped_and_says_what_partners_promise() -> None:
    text = covenant_text()
    for words in ("Doel", "Vertrouwelijkheid", "toestemming", "bemoeizorg", "Bewaartermijnen",
                  "inzage", "auditlog", "vier ogen"):
        assert words in text, f"the sample covenant does not mention {words!r}"


def follow_tutorial(name: str, root: Path, shared: ServerProcess) -> None:
    """Follow tutorial ``name`` in the empty folder ``root`` (its ``HOME`` too)."""
    script = SCRIPTS[name]
    blocks = [block for block in all_blocks() if block.tutorial == name]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env.update(ENGLISH, SCHAKEL_PASSPHRASE=PASSPHRASE, HOME=str(root),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    run = Run(root=root, env=env, server=shared if script.shared_server else None)
    try:
        follow(run, script, blocks)
    finally:
        for started in run.background:
            started.stop()


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BaseException | None]]:
    """Every tutorial followed at once, each in its own folder (they wait on their
    subprocesses, so together they take little more than the longest); per tutorial, the
    failure or None.  One server is shared by the tutorials that do not start their own."""
    shared = live_server(tmp_path_factory.mktemp("tutorial-server") / "data")

    def attempt(name: str) -> BaseException | None:
        try:
            follow_tutorial(name, tmp_path_factory.mktemp(name), shared)
        except BaseException as failure:  # noqa: BLE001 -- reported by the tutorial's own test
            return failure
        return None

    try:
        with ThreadPoolExecutor(max_workers=len(SCRIPTS)) as pool:
            yield dict(zip(SCRIPTS, pool.map(attempt, SCRIPTS)))
    finally:
        shared.stop()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_tutorial_runs_as_written(name: str, followed: dict[str, BaseException | None]) -> None:
    failure = followed[name]
    if failure is not None:
        raise failure
