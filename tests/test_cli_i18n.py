"""The command line speaks Dutch unless asked for English (ADR 0037): its refusals --
what was refused, why, what to do, who can act --, the sync bar, every ``--help`` and
click's own usage errors, run as a person runs them (``python -m schakel.cli`` in a subprocess, tests/cli_harness.py).  A refusal of the
server's policy in both languages, on a real network: tests/test_cli_flows.py
(``test_a_volunteer_asking_official_is_refused_in_dutch_unless_english_is_asked``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import click

from schakel.cli.commands.syncbar import describe
from schakel.cli.helptext import Spoken
from schakel.cli.i18n import use
from schakel.cli.main import main
from schakel.client import SyncProgress
from tests.cli_harness import NO_LANGUAGE, schakel

NETWORK, CASE = "A" * 22, "B" * 22
#: A note with a phone number: the PII guard refuses it on this computer, before any home,
#: passphrase or server is needed.
NOTE = ("case", "note", NETWORK, CASE, "--text", "bel haar op 0612345678")


def run(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return schakel(*args, "--home", str(tmp_path / "home"), cwd=tmp_path,
                   env={**NO_LANGUAGE, **env})


def test_a_pii_refusal_is_dutch_when_no_language_is_asked_for(tmp_path: Path) -> None:
    result = run(*NOTE, tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == ("schakel: geweigerd: de PII-controle vond identificerende gegevens in "
                        "de tekst (docs/protocol.md §8)")
    assert "  text: telefoonnummer, tekens 12–22" in lines
    assert "  voorstel voor text:" in lines and "      bel haar op [telefoon]" in lines
    assert "  er is niets naar de server gestuurd" in lines
    assert any(line.startswith("  wat u kunt doen: vervang elk gegeven door zijn "
                               "plaatshouder") for line in lines)
    assert any(line.startswith("  wie dit kan regelen: de coördinator") for line in lines)
    assert "refused" not in result.stderr and "what to do" not in result.stderr


@pytest.mark.parametrize("env", [{"LANG": "en_GB.UTF-8"}, {"LC_MESSAGES": "en_US.UTF-8"},
                                 {"LANGUAGE": "en", "LANG": "nl_NL.UTF-8"},
                                 {"SCHAKEL_LANG": "en", "LANG": "nl_NL.UTF-8"}],
                         ids=["LANG", "LC_MESSAGES", "LANGUAGE", "SCHAKEL_LANG"])
def test_a_pii_refusal_is_english_when_the_environment_asks(tmp_path: Path,
                                                            env: dict[str, str]) -> None:
    result = run(*NOTE, tmp_path=tmp_path, **env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == ("schakel: refused: the PII guard found identifying data in the text "
                        "(docs/protocol.md §8)")
    assert "  text: phone number, characters 12–22" in lines
    assert "  nothing was sent to the server" in lines
    assert "geweigerd" not in result.stderr and "wat u kunt doen" not in result.stderr


def test_the_lang_option_wins_over_the_environment(tmp_path: Path) -> None:
    english = schakel("--lang", "en", *NOTE, "--home", str(tmp_path), cwd=tmp_path,
                      env={**NO_LANGUAGE, "SCHAKEL_LANG": "nl"})
    assert english.stderr.startswith("schakel: refused: the PII guard"), english.stderr
    dutch = schakel("--lang", "nl", *NOTE, "--home", str(tmp_path), cwd=tmp_path,
                    env={**NO_LANGUAGE, "LANG": "en_GB.UTF-8"})
    assert dutch.stderr.startswith("schakel: geweigerd: de PII-controle"), dutch.stderr
    wrong = schakel("--lang", "de", *NOTE, cwd=tmp_path, env=NO_LANGUAGE)
    assert wrong.returncode == 2 and "'de' is niet een van 'nl', 'en'" in wrong.stderr


def test_an_id_that_starts_with_a_dash_stays_an_argument_after_the_lang_option(
        tmp_path: Path) -> None:
    result = schakel("--lang", "en", "case", "note", NETWORK, "-" + "B" * 21, "--text",
                     "bel haar op 0612345678", "--home", str(tmp_path), cwd=tmp_path,
                     env=NO_LANGUAGE)
    assert result.returncode == 1 and "No such option" not in result.stderr, result.stderr
    assert result.stderr.startswith("schakel: refused: the PII guard")


def test_a_home_that_does_not_open_is_explained_in_dutch_by_default(tmp_path: Path) -> None:
    result = run("case", "list", NETWORK, tmp_path=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("schakel: geweigerd: ")
    assert ("  wat u kunt doen: controleer de wachtzin (of SCHAKEL_PASSPHRASE) en het pad van "
            "--home / --keystore") in result.stderr.splitlines()
    english = run("case", "list", NETWORK, tmp_path=tmp_path, LANG="en_GB.UTF-8")
    assert "  what to do: check the passphrase" in english.stderr


def test_an_untrusted_network_is_explained_in_dutch_by_default(tmp_path: Path) -> None:
    """An id of the right shape this home holds no trust anchor for: the advice to trust it
    with the fingerprint the coördinator reads aloud."""
    home = str(tmp_path / "h")
    made = schakel("init", "--home", home, "--name", "Buurtkerk", "--server",
                   "http://127.0.0.1:9", "--acting-user", "u-1", "--kdf", "interactive",
                   cwd=tmp_path, env=NO_LANGUAGE)
    assert made.returncode == 0, made.stderr
    result = schakel("network", "show", NETWORK, "--home", home, cwd=tmp_path, env=NO_LANGUAGE)
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("schakel: geweigerd: ")
    assert (f"  wat u kunt doen: `schakel network list` toont de netwerken die deze thuismap "
            f"vertrouwt. Als u {NETWORK} had opgericht") in result.stderr
    # The server is not running: the refusal of a sync says so, in Dutch.
    schakel("network", "trust", NETWORK, "--fingerprint", " ".join(["12345"] * 8),
            "--home", home, cwd=tmp_path, env=NO_LANGUAGE)
    unreachable = schakel("sync", NETWORK, "--home", home, cwd=tmp_path, env=NO_LANGUAGE)
    assert unreachable.returncode == 5, unreachable.stderr
    assert unreachable.stderr.startswith("schakel: kan de server op http://127.0.0.1:9 niet "
                                         "bereiken: draait `schakel serve`?")
    assert "  wat u kunt doen: controleer het adres" in unreachable.stderr


def progress(items: int, remaining: int) -> SyncProgress:
    return SyncProgress(network="n", items=items, cursor=str(items),
                        head=str(items + remaining), remaining=remaining, items_per_s=1850.0,
                        eta_s=3.2, done=not remaining)


def test_the_sync_bar_speaks_dutch_with_dutch_numbers() -> None:
    use("nl")
    assert describe("bijwerken abcd1234", progress(2500, 2500)) == (
        "bijwerken abcd1234 [########--------]  50%  2.500/~5.000 items  1.850 items/s  "
        "nog ~0:04")
    use("en")
    assert describe("sync abcd1234", progress(2500, 2500)).endswith(
        "2,500/~5,000 items  1,850 items/s  ~0:04 left")


# ------------------------------------------------------------------ help and usage errors


def test_schakel_help_is_dutch_by_default_and_english_with_lang_en(tmp_path: Path) -> None:
    dutch = schakel("--help", cwd=tmp_path, env=NO_LANGUAGE)
    assert dutch.returncode == 0, dutch.stderr
    for line in ("Gebruik: ", "Opties:", "Opdrachten:", "Toon dit bericht en stop.",
                 "Afsluitcodes:", "Schakel: privacyvriendelijk casussen delen",
                 "Deelnemers van een netwerk: toevoegen, verwijderen, tonen."):
        assert line in dutch.stdout, line
    assert "Usage:" not in dutch.stdout and "Show this message" not in dutch.stdout
    english = schakel("--lang", "en", "--help", cwd=tmp_path, env=NO_LANGUAGE)
    for line in ("Usage: ", "Options:", "Commands:", "Show this message and exit.",
                 "Exit codes:", "Members of a network (deelnemers): add, remove, list."):
        assert line in english.stdout, line
    assert "Gebruik" not in english.stdout and "Opties" not in english.stdout


@pytest.mark.parametrize(("command", "dutch", "english"), [
    (("member", "add"), "Een partner toelaten met zijn sleutelbundel (coördinator).",
     "Admit a partner from its key bundle (coordinator)."),
    (("case", "create"), "De PII-controle draait op deze computer",
     "The PII guard runs on this computer"),
    (("signal", "send"), "Een zorgsignaal sturen aan de coördinator van het netwerk.",
     "Send a signal of concern to the network's coordinator."),
    (("case", "close"), "Een casus sluiten (eigenaar of coördinator).",
     "Close a case (owner or coordinator)."),
], ids=["member add", "case create", "signal send", "case close"])
def test_a_commands_help_is_dutch_by_default_and_english_when_asked(
        tmp_path: Path, command: tuple[str, ...], dutch: str, english: str) -> None:
    shown = schakel(*command, "--help", cwd=tmp_path, env=NO_LANGUAGE)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())           # click wraps the lines
    assert dutch in text and "Toon dit bericht en stop." in text and english not in text
    assert "De Schakel-thuismap van uw organisatie" in text     # an option's help
    for asked in (("--lang", "en", *command, "--help"), (*command, "--help")):
        shown = schakel(*asked, cwd=tmp_path,
                        env={**NO_LANGUAGE, "LANG": "nl_NL.UTF-8"} if asked[0] == "--lang"
                        else {**NO_LANGUAGE, "SCHAKEL_LANG": "en"})
        text = " ".join(shown.stdout.split())
        assert english in text and "Show this message and exit." in text and dutch not in text


def test_a_usage_error_is_dutch_by_default_and_english_when_asked(tmp_path: Path) -> None:
    missing = schakel("case", "show", cwd=tmp_path, env=NO_LANGUAGE)
    assert missing.returncode == 2
    assert "Fout: Ontbrekend argument 'NETWORK'." in missing.stderr, missing.stderr
    assert "voor hulp." in missing.stderr and "Gebruik: " in missing.stderr
    unknown = schakel("case", "show", "--bogus", cwd=tmp_path, env=NO_LANGUAGE)
    assert "Fout: Onbekende optie '--bogus'." in unknown.stderr, unknown.stderr
    english = schakel("--lang", "en", "case", "show", cwd=tmp_path, env=NO_LANGUAGE)
    assert "Error: Missing argument 'NETWORK'." in english.stderr
    assert "Fout" not in english.stderr


def _commands(command: click.Command, path: str) -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            found += _commands(sub, f"{path} {name}")
    return found


#: English by design (ADR 0037 §6): the demo's narration, and so its help.
ENGLISH_ONLY = ("schakel demo",)


def test_every_commands_help_and_every_options_help_has_its_dutch() -> None:
    """Read as click reads them (``help``, ``epilog``, an option's ``help``) in both
    languages: a text that reads the same in Dutch lacks its entry in the catalog (a help
    that is no literal and not marked with ``N_``, or a command not made with
    ``cls=Command``/``Group`` of schakel.cli.helptext)."""
    commands = [(p, c) for p, c in _commands(main, "schakel") if p not in ENGLISH_ONLY]
    assert len(commands) > 60
    untranslated = []
    try:
        for path, command in commands:
            if not isinstance(command, Spoken):
                untranslated.append(f"{path}: not a schakel.cli.helptext command")
                continue
            texts = {"help": lambda c=command: c.help, "epilog": lambda c=command: c.epilog}
            for param in command.get_params(click.Context(command)):
                if getattr(param, "help", None):
                    texts[param.name or "?"] = lambda p=param: p.help
            for what, read in texts.items():
                use("en")
                english = read()
                use("nl")
                if english and read() == english:
                    untranslated.append(f"{path} {what}: {english[:60]!r}")
    finally:
        use(None)
    assert not untranslated, "\n".join(untranslated)


def test_a_tables_headings_are_dutch_by_default_and_english_when_asked(
        capsys: pytest.CaptureFixture[str]) -> None:
    from schakel.cli.commands.case import CASE_COLUMNS
    from schakel.cli.commands.output import table

    case = [{"case": "B" * 22, "kind": "intake", "status": "open", "severity": "low"}]
    try:
        use("nl")
        table(case, CASE_COLUMNS, empty="-")
        header = capsys.readouterr().out.splitlines()[0].split()
        assert header[:5] == ["CASUS", "SOORT", "STATUS", "EIGENAAR", "GEMAAKT"], header
        use("en")
        table(case, CASE_COLUMNS, empty="-")
        header = capsys.readouterr().out.splitlines()[0].split()
        assert header[:5] == ["CASE", "KIND", "STATUS", "OWNER", "CREATED"], header
    finally:
        use(None)


def test_the_dutch_help_line_schakel_help_shows_is_the_commands_own() -> None:
    """``COMMANDS`` repeats each command's first help line (tests/test_cli_help.py); its
    Dutch must be the Dutch of the command's own first line too."""
    from schakel.cli.i18n import _
    from schakel.cli.main import COMMANDS

    different = []
    try:
        use("nl")
        for name, lazy in sorted(COMMANDS.items()):
            command = main.get_command(click.Context(main), name)
            assert command is not None
            if f"schakel {name}" not in ENGLISH_ONLY and \
                    command.get_short_help_str(limit=10**6) != _(lazy.help):
                different.append(name)
    finally:
        use(None)
    assert not different, different


def test_a_commands_labels_and_yes_no_are_dutch_by_default(
        capsys: pytest.CaptureFixture[str]) -> None:
    from schakel.cli.commands.output import cell, emit
    from schakel.cli.i18n import N_

    def rows() -> list[tuple[str, str]]:
        return [(N_("member"), "K" * 43), (N_("removed"), cell(True))]

    try:
        use("nl")
        emit({}, as_json=False, rows=rows())
        assert capsys.readouterr().out.split() == ["deelnemer", "K" * 43, "verwijderd", "ja"]
        use("en")
        emit({}, as_json=False, rows=rows())
        assert capsys.readouterr().out.split() == ["member", "K" * 43, "removed", "yes"]
    finally:
        use(None)
