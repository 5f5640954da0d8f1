"""The message catalog of the command line (cli/i18n.py, ADR 0037): every message the code
marks has its Dutch, the compiled ``.mo`` is the ``.po``, the Dutch keeps the English's
placeholders, and the language is Dutch unless a person asks for English.

The msgids are read from the code with Babel's own extractor (what ``make catalogs``
runs), so a message added without ``make catalogs`` and a translation fails here, by
name.  The command line in both languages, on real refusals: tests/test_cli_i18n.py and
tests/test_cli_flows.py.
"""

from __future__ import annotations

import ast
import gettext
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from schakel.cli import i18n
from schakel.cli.i18n import N_, _, choose, ngettext, number, spoken, use

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "cli"
PO = CLI / "locale" / "nl" / "LC_MESSAGES" / "schakel.po"
MO = PO.with_suffix(".mo")
#: Messages that are the same word in Dutch (names of identifiers, and the console's
#: "Status" and "open", the tables' "status", the words "bemoeizorg" and "auditor", which
#: Dutch writes as English does).
SAME_IN_DUTCH = frozenset({"BSN", "IBAN", "Status", "status", "open", "Bemoeizorg",
                           "bemoeizorg", "auditor"})
#: The names under which the code marks a message (cli/i18n.py).
MARKERS = frozenset({"_", "N_", "ngettext"})


def catalog() -> Catalog:
    with open(PO, "rb") as f:
        return read_po(f, locale="nl")


def in_code() -> dict[str, str]:
    """msgid -> the first file that marks it, as Babel extracts them from cli/ with the
    mapping of babel.cfg (what ``make catalogs`` reads): its Python, the help texts click
    shows (schakel.cli.helptext) and the console's Jinja templates.  A message with a
    plural is named by its singular, as :func:`key` names the catalog's."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str, str] = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
            str(CLI), method_map=method_map, options_map=options_map,
            keywords=DEFAULT_KEYWORDS):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, filename)
    return found


def key(msgid: str | tuple[str, ...]) -> str:
    """A catalog entry's msgid, by its singular when it has a plural."""
    return msgid[0] if isinstance(msgid, tuple) else msgid


def fields(text: str) -> set[str]:
    """The ``{name}`` fields of a format string."""
    return {name for _text, name, _spec, _conv in string.Formatter().parse(text)
            if name is not None}


def test_the_code_marks_the_refusals_for_the_catalog() -> None:
    found = in_code()
    assert len(found) >= 100
    assert "what to do: {hint}" in found and "refused: {message}" in found
    assert "Signals inbox" in found          # a console template's message


def test_every_console_page_is_dutch_by_default() -> None:
    """A msgid of the console's templates reads Dutch unless English is asked for."""
    use("nl")
    try:
        assert _("Unlock your home") == "Ontgrendel uw omgeving"
        assert _("Turn into a case") != "Turn into a case"
    finally:
        use(None)


def test_every_message_in_the_code_has_its_dutch() -> None:
    translated = {key(m.id): m for m in catalog() if m.id}
    missing = sorted(f"{where}: {msgid!r}" for msgid, where in in_code().items()
                     if msgid not in translated)
    assert not missing, "run `make catalogs` and translate in " \
        f"{PO.relative_to(ROOT)}:\n" + "\n".join(missing)
    untranslated = sorted(m.id for m in translated.values()
                          if not m.string or m.fuzzy or (m.string == m.id
                                                         and m.id not in SAME_IN_DUTCH))
    assert not untranslated, "no Dutch (empty, fuzzy or still English):\n" + \
        "\n".join(map(repr, untranslated))


def test_the_catalog_holds_no_message_the_code_no_longer_marks() -> None:
    used = in_code()
    stale = sorted(key(m.id) for m in catalog() if m.id and key(m.id) not in used)
    assert not stale, f"run `make catalogs`: no longer in the code: {stale}"


def test_the_dutch_keeps_every_placeholder_of_the_english() -> None:
    wrong = [(m.id, m.string) for m in catalog() if m.id and m.string
             if fields(m.id if isinstance(m.id, str) else m.id[0])
             != fields(m.string if isinstance(m.string, str) else m.string[0])]
    assert not wrong, wrong


def test_the_compiled_catalog_is_the_po() -> None:
    with open(MO, "rb") as f:
        compiled = dict(gettext.GNUTranslations(f)._catalog)    # type: ignore[attr-defined]
    compiled.pop("", None)                                      # the header
    expected: dict[object, str] = {}
    for m in catalog():
        if not m.id or not m.string or m.fuzzy:
            continue
        if isinstance(m.id, tuple):
            for n, form in enumerate(m.string):
                expected[(m.id[0], n)] = form
        else:
            expected[m.id] = m.string
    assert compiled == expected, "run `make catalogs` (pybabel compile): the .mo differs " \
        "from the .po"


def test_no_message_is_marked_as_an_f_string() -> None:
    """``_(f"...")`` would look up the formatted text, which no catalog holds."""
    bad = []
    for path in sorted(CLI.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in MARKERS and node.args
                    and isinstance(node.args[0], ast.JoinedStr)):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "format after translating: _(\"… {x}\").format(x=…): " + ", ".join(bad)


@pytest.mark.parametrize(("environ", "language"), [
    ({}, "nl"),
    ({"LANG": "C.UTF-8"}, "nl"),
    ({"LANG": "POSIX"}, "nl"),
    ({"LANG": "en_GB.UTF-8"}, "en"),
    ({"LANG": "nl_NL.UTF-8"}, "nl"),
    ({"LANG": "de_DE.UTF-8"}, "nl"),
    ({"LC_MESSAGES": "en_US.UTF-8", "LANG": "nl_NL.UTF-8"}, "en"),
    ({"LC_ALL": "nl_BE.UTF-8@euro", "LC_MESSAGES": "en_US.UTF-8"}, "nl"),
    ({"LANGUAGE": "de:en_GB:nl", "LANG": "nl_NL.UTF-8"}, "en"),
    ({"LANGUAGE": "", "LANG": "en_IE.UTF-8"}, "en"),
    ({"SCHAKEL_LANG": "en", "LANG": "nl_NL.UTF-8"}, "en"),
    ({"SCHAKEL_LANG": "nl", "LANGUAGE": "en"}, "nl"),
    ({"SCHAKEL_LANG": "klingon", "LANG": "en_GB.UTF-8"}, "nl"),
])
def test_the_language_is_dutch_unless_english_is_asked_for(environ: dict[str, str],
                                                           language: str) -> None:
    assert choose(environ) == language


def test_a_locale_name_is_read_as_its_language() -> None:
    assert [spoken(v) for v in ("en_GB.UTF-8", "nl_BE@euro", "en-US", "NL", "C", "fr_FR")] == \
        ["en", "nl", "en", "nl", None, None]


def test_use_chooses_for_the_process_and_refuses_a_language_without_catalog(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHAKEL_LANG", "en")
    assert i18n.language() == "en" and _("refused: {message}") == "refused: {message}"
    use("nl")
    assert i18n.language() == "nl" and _("refused: {message}") == "geweigerd: {message}"
    use(None)
    assert i18n.language() == "en"
    with pytest.raises(ValueError, match="not 'de'"):
        use("de")


def test_the_dutch_uses_the_reports_words() -> None:
    use("nl")
    assert _("you are a kern (core) member of this network") == "u bent kernpartner in dit netwerk"
    assert _("you are a schil (shell) member of this network") == \
        "u bent schilpartner in dit netwerk"
    assert "regie" in _("you are this network's coördinator")
    assert "toestemming" in _("record the person's consent first (`schakel consent record`)")
    assert "bemoeizorg" in _("this network's policy does not allow bemoeizorg")
    assert "signalen" in _("this network does not accept anonymous signals")


def test_tables_are_marked_untranslated_and_translated_when_shown() -> None:
    use("nl")
    marked = N_("nothing was sent to the server")
    assert marked == "nothing was sent to the server"
    assert _(marked) == "er is niets naar de server gestuurd"


def test_plurals_and_numbers_follow_the_language() -> None:
    use("en")
    assert number(2500) == "2,500" and ngettext("a case", "{n} cases", 2) == "{n} cases"
    use("nl")
    assert number(2500) == "2.500" and number(1234567.4) == "1.234.567"
    assert ngettext("a case", "{n} cases", 1) == "a case"     # no catalog entry: the msgid


def test_a_missing_dutch_catalog_falls_back_to_english_and_says_so(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(i18n, "LOCALES", tmp_path)
    monkeypatch.setattr(i18n, "_loaded", {})
    assert i18n.translation("nl").gettext("refused: {message}") == "refused: {message}"
    said = capsys.readouterr().err
    assert "the nl messages" in said and "reinstall schakel" in said
