"""The command line's help and click's own messages in the language spoken now (ADR 0037).

Three parts, so no command has to translate its own help:

* :class:`Command` and :class:`Group` (``cls=`` of each top-level command; a group's
  subcommands and subgroups inherit them): a command's help, short help and epilog, and
  the help of its options and arguments, are kept as their English msgids and read
  through :func:`~schakel.cli.i18n._` each time click shows them, so the language is the
  one chosen at run time (``--lang``, ``SCHAKEL_LANG``, ``LANG``…), not the one of the
  moment the command was defined.  A command's parameters are made :class:`Option` and
  :class:`Argument` when the command is built (their class is swapped: click's
  decorators make plain ones, and ``cls=`` on every option would be noise).
* :func:`extract`, the Babel extractor of babel.cfg: what Babel's own Python extractor
  finds, plus the help texts click will show -- the docstring of every function under
  ``@….command``/``@….group`` (unless the decorator has ``help=``) and the literal
  ``help=``/``short_help=``/``epilog=`` of ``command``, ``group``, ``option`` and
  ``argument`` -- each as click cleans it (:func:`inspect.cleandoc`).  A help text that
  is no literal is marked with ``N_`` where it is written.
* :func:`speak_for_click`: click translates its own words ("Usage:", "Error: Missing
  argument …", "No such option …") with :func:`gettext.gettext` of the default domain,
  bound as ``_`` in each of its modules; they are bound to Schakel's catalog instead,
  where :data:`CLICK` marks the ones a person can meet.
"""

from __future__ import annotations

import ast
import inspect
import io
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import click

from schakel.cli.i18n import N_, _, ngettext


class _Spoken:
    """An attribute held as its English msgid and read in the language spoken now."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        text = obj.__dict__.get(self.name)
        return _(inspect.cleandoc(text)) if isinstance(text, str) and text else text

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


class Option(click.Option):
    """A click option whose help is read in the language spoken now."""

    help = _Spoken()


class Argument(click.Argument):
    """A click argument whose help is read in the language spoken now."""

    help = _Spoken()


#: The help of ``--help``: click's msgid, translated when shown, not when made.
HELP_OPTION = N_("Show this message and exit.")


def _speak(params: list[click.Parameter]) -> None:
    for param in params:
        if type(param) is click.Option:
            param.__class__ = Option
        elif type(param) is click.Argument:
            param.__class__ = Argument


class Spoken:
    """Mixin for a click command: help, short help, epilog and its parameters' help read
    in the language spoken now (module docstring)."""

    help = _Spoken()
    short_help = _Spoken()
    epilog = _Spoken()
    params: list[click.Parameter]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _speak(self.params)

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)        # type: ignore[misc]
        if option is not None and type(option) is click.Option:
            option.__class__ = Option
            option.help = HELP_OPTION
        return option


class Command(Spoken, click.Command):
    """A command whose help is read in the language spoken now."""


class SpokenGroup(Spoken):
    """Mixin for a click group: its subcommands are :class:`Command` and its subgroups
    of its own class, unless they say otherwise."""

    command_class = Command
    group_class = type


class Group(SpokenGroup, click.Group):
    """A group whose help, and its subcommands', is read in the language spoken now."""


# ------------------------------------------------------------------ click's own words

#: Click's messages a person can meet, given their Dutch in Schakel's catalog (the
#: developer's errors of a wrong declaration are left out).
CLICK = (
    N_("Usage:"), N_("Options"), N_("Commands"), N_("Positional arguments"),
    N_("Show the version and exit."), N_("%(prog)s, version %(version)s"),
    N_("Aborted!"), N_("deprecated"), N_("Missing command."), N_("Error: {message}"),
    N_("Try '{command} {option}' for help."), N_("Invalid value: {message}"),
    N_("Invalid value for {param_hint}: {message}"), N_("Missing argument"),
    N_("Missing option"), N_("Missing parameter"), N_("Missing {param_type}"),
    N_("Missing parameter: {param_name}"), N_("No such option {name!r}."),
    N_("No such command {name!r}."), N_("unknown error"),
    N_("Could not open file {filename!r}: {message}"), N_("Value must be an iterable."),
    N_("env var: {var}"), N_("default: {default}"), N_("required"), N_("(dynamic)"),
    N_("Do you want to continue?"), N_("Confirm the action without prompting."),
    N_("Option {name!r} does not take a value."), N_("Argument {name!r} takes {nargs} values."),
    N_("Repeat for confirmation"), N_("Error: The two entered values do not match."),
    N_("Error: invalid input"), N_("Choose from:\n\t{choices}"),
    N_("{value!r} is not a valid {number_type}."), N_("{value} is not in the range {range}."),
    N_("{value!r} is not a valid boolean. Recognized values: {states}"),
    N_("{value!r} is not a valid UUID."), N_("file"), N_("directory"), N_("path"),
    N_("{name} {filename!r} does not exist."), N_("{name} {filename!r} is a file."),
    N_("{name} {filename!r} is a directory."), N_("{name} {filename!r} is not readable."),
    N_("{name} {filename!r} is not writable."), N_("{name} {filename!r} is not executable."),
)


def _click_plurals() -> None:          # never called: marks click's plurals for Babel
    ngettext("Got unexpected extra argument ({args})",
             "Got unexpected extra arguments ({args})", 1)
    ngettext("Takes {nargs} values but 1 was given.",
             "Takes {nargs} values but {len} were given.", 1)
    ngettext("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)", 1)
    ngettext("Option {name!r} requires an argument.",
             "Option {name!r} requires {nargs} arguments.", 1)
    ngettext("{value!r} is not {choice}.", "{value!r} is not one of {choices}.", 1)
    ngettext("{value!r} does not match the format {format}.",
             "{value!r} does not match the formats {formats}.", 1)
    ngettext("{len_type} values are required, but {len_value} was given.",
             "{len_type} values are required, but {len_value} were given.", 1)


def speak_for_click() -> None:
    """Let click's own messages come from Schakel's catalog, in the language spoken now:
    each click module that bound :func:`gettext.gettext` (or ``ngettext``) as its own
    gets :func:`~schakel.cli.i18n._` (``ngettext``) instead.  Idempotent."""
    import gettext
    import importlib

    for name in ("core", "decorators", "exceptions", "formatting", "parser", "termui",
                 "types", "utils"):
        module = importlib.import_module(f"click.{name}")
        if getattr(module, "_", None) is gettext.gettext:
            module._ = _                              # type: ignore[attr-defined]
        if getattr(module, "ngettext", None) is gettext.ngettext:
            module.ngettext = ngettext                # type: ignore[attr-defined]


# ------------------------------------------------------------------ Babel

#: The decorators whose function's docstring is a command's help.
_COMMANDS = frozenset({"command", "group"})
#: The calls whose literal keywords are help texts, and those keywords.
_HELPS = {"command": ("help", "short_help", "epilog"), "group": ("help", "short_help", "epilog"),
          "option": ("help",), "argument": ("help",)}


def _called(node: ast.expr) -> str | None:
    func = node.func if isinstance(node, ast.Call) else None
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def help_texts(source: str) -> Iterator[tuple[int, str]]:
    """(line, msgid) of every help text click will show from the Python ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _called(node) in _HELPS:
            for keyword in node.keywords:
                if (keyword.arg in _HELPS[_called(node) or ""]
                        and isinstance(keyword.value, ast.Constant)
                        and isinstance(keyword.value.value, str) and keyword.value.value):
                    yield keyword.value.lineno, inspect.cleandoc(keyword.value.value)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and _called(decorator) in _COMMANDS
                        and not any(k.arg == "help" for k in decorator.keywords)):
                    doc = ast.get_docstring(node, clean=True)
                    if doc:
                        yield node.lineno, doc
                    break


def extract(fileobj: Any, keywords: Collection[str], comment_tags: Collection[str],
            options: Mapping[str, Any]) -> Iterator[tuple[int, str | None, Any, list[str]]]:
    """Babel's Python extractor and :func:`help_texts` (babel.cfg)."""
    from babel.messages.extract import extract_python

    data = fileobj.read()
    yield from extract_python(io.BytesIO(data), keywords, comment_tags, options)
    for lineno, text in help_texts(data.decode(options.get("encoding", "utf-8"))):
        yield lineno, None, text, []


__all__ = ["CLICK", "HELP_OPTION", "Argument", "Command", "Group", "Option", "Spoken",
           "SpokenGroup", "extract", "help_texts", "speak_for_click"]
