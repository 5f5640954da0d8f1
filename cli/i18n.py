"""The words a person reads, in their language: Dutch by default, English on request
(ADR 0037).

One message catalog for the command line and the screens built on it: the messages in
the code are English (gettext's msgids), marked with :func:`_` where they are shown and
with :func:`N_` where a table holds them for later; ``locale/nl/LC_MESSAGES/schakel.po``
holds their Dutch, in the report's words (kern, schil, regie, signaal, bemoeizorg,
toestemming), compiled to ``schakel.mo`` beside it (``make catalogs`` extracts, updates
and compiles with Babel; tests/test_i18n.py checks that the two agree and that no
message is left without Dutch).

The language is Dutch unless the person asks for English:

1. ``schakel --lang en|nl`` (:func:`use`), for one run;
2. ``SCHAKEL_LANG`` (``en``, ``nl``, or a locale name such as ``en_GB.UTF-8``);
3. else the first of ``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES`` and ``LANG`` that is set,
   read as gettext reads them (``LANGUAGE`` may list several, ``en_GB:nl``): the first
   language of it that Schakel speaks.  ``C``, ``POSIX`` or a language Schakel does not
   speak leave Dutch.

The command line's ``--help`` and click's own messages go through the same catalog
(:mod:`schakel.cli.helptext`); the console switches the process's language with
:func:`use` (its language form).

Only this module reads the catalog files; the library below the command line speaks in
stable codes (``error.code``, ``details.reason``) and English developer messages, and
the command line chooses the words.
"""

from __future__ import annotations

import gettext
import os
import sys
from collections.abc import Mapping
from pathlib import Path

#: The gettext domain: ``locale/<language>/LC_MESSAGES/schakel.mo``.
DOMAIN = "schakel"
#: The catalogs, as package data of ``schakel.cli``.
LOCALES = Path(__file__).resolve().parent / "locale"
#: The language a person reads when they ask for none.
DEFAULT = "nl"
#: The languages Schakel speaks.  The msgids are English, so English needs no catalog.
LANGUAGES = ("nl", "en")
#: Where a person asks for a language, in the order they are read: Schakel's own setting,
#: then gettext's (the first one set decides).
ENVIRONMENT = ("SCHAKEL_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")

_chosen: str | None = None
_loaded: dict[str, gettext.NullTranslations] = {}


def spoken(value: str) -> str | None:
    """The language of one locale name that Schakel speaks, or None: ``en_GB.UTF-8`` ->
    ``en``, ``nl_BE@euro`` -> ``nl``, ``C``/``POSIX``/``de_DE`` -> None."""
    code = value.strip().split(".")[0].split("@")[0].split("_")[0].split("-")[0].lower()
    return code if code in LANGUAGES else None


def choose(environ: Mapping[str, str]) -> str:
    """The language ``environ`` asks for (module docstring, steps 2 and 3), else Dutch."""
    for name in ENVIRONMENT:
        value = environ.get(name, "")
        if value:
            for part in value.split(":"):
                language = spoken(part)
                if language:
                    return language
            return DEFAULT
    return DEFAULT


def use(language: str | None) -> None:
    """Speak ``language`` (one of :data:`LANGUAGES`) from now on in this process; None
    goes back to what the environment asks for."""
    global _chosen
    if language is not None and language not in LANGUAGES:
        raise ValueError(f"Schakel speaks {', '.join(LANGUAGES)}, not {language!r}")
    _chosen = language


def language() -> str:
    """The language spoken now: :func:`use`'s, else the environment's."""
    return _chosen or choose(os.environ)


def translation(lang: str | None = None) -> gettext.NullTranslations:
    """The catalog of ``lang`` (default: :func:`language`), loaded once per process.
    English is the msgids themselves.  A Dutch catalog missing from the installation is
    said once on standard error, and the English shown instead of a traceback."""
    lang = lang or language()
    if lang not in _loaded:
        if lang == "en":
            _loaded[lang] = gettext.NullTranslations()
        else:
            try:
                _loaded[lang] = gettext.translation(DOMAIN, LOCALES, languages=[lang])
            except OSError:
                print(f"schakel: the {lang} messages ({LOCALES / lang / 'LC_MESSAGES' / DOMAIN}"
                      ".mo) are missing from this installation; showing English "
                      "(reinstall schakel)", file=sys.stderr)
                _loaded[lang] = gettext.NullTranslations()
    return _loaded[lang]


def _(message: str) -> str:
    """``message`` (an English msgid) in the language spoken now."""
    return translation().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form for ``n`` of a message with a plural, in the language spoken now."""
    return translation().ngettext(singular, plural, n)


def number(value: float) -> str:
    """A whole number with the thousands grouped as the language spoken now writes it:
    ``2,500`` in English, ``2.500`` in Dutch."""
    text = f"{value:,.0f}"
    return text.replace(",", ".") if language() == "nl" else text


def N_(message: str) -> str:
    """Mark ``message`` for the catalog where it is defined (a table of hints) without
    translating it yet: the language is known only when it is shown, with :func:`_`."""
    return message


__all__ = ["DEFAULT", "DOMAIN", "ENVIRONMENT", "LANGUAGES", "LOCALES", "N_", "_", "choose",
           "language", "ngettext", "number", "spoken", "translation", "use"]
