"""Printing helpers shared by the subcommands: tables for people, JSON for scripts.

JSON output is the contract with scripts: every command prints one JSON object
whose keys are stable (documented in the command's --help where it matters);
values are plain JSON (timestamps as RFC 3339 strings, bytes as base64url).
Tables are for people and may change.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from schakel.cli.i18n import N_
from schakel.cli.i18n import _ as translated
from schakel.protocol.encoding import b64e


#: A true and a false value in a table, in the language spoken now.
YES, NO = N_("yes"), N_("no")


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: dataclasses, tuples, datetimes and bytes converted."""
    to_json = getattr(value, "to_json", None)
    if callable(to_json) and not isinstance(value, type):
        return plain(to_json())     # the library's own JSON form leaves secrets out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.repr}          # repr=False marks a secret (receipt, reply key)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return b64e(bytes(value))
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def print_json(data: Any) -> None:
    """One JSON document on standard output."""
    click.echo(json.dumps(plain(data), indent=2, ensure_ascii=False, sort_keys=False))


def emit(data: dict[str, Any], *, as_json: bool, rows: Sequence[tuple[str, str]] | None = None) -> None:
    """Print ``data`` as JSON, or ``rows`` (label, value) as an aligned table.  The labels
    are English msgids (marked with ``N_`` at the call) shown in the language spoken now;
    a label no catalog holds (a JSON key) is shown as it is."""
    if as_json:
        print_json(data)
        return
    rows = rows if rows is not None else [(k, cell(v)) for k, v in data.items()]
    if not rows:
        return
    rows = [(translated(label), value) for label, value in rows]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label.ljust(width)}  {value}".rstrip())


def cell(value: Any, *, limit: int | None = None) -> str:
    """One value as table text: ``-`` for nothing, yes/no, lists joined with commas."""
    if value is None or value == "" or value == [] or value == ():
        text = "-"
    elif isinstance(value, bool):
        text = translated(YES if value else NO)
    elif isinstance(value, (list, tuple, set, frozenset)):
        text = ", ".join(cell(v) for v in value)
    elif isinstance(value, datetime):
        text = plain(value)
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    else:
        text = str(value)
    text = " ".join(text.split())          # one line per row, whatever the input held
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def table(items: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], *,
          empty: str, limits: Mapping[str, int] | None = None) -> None:
    """Print ``items`` as a table of ``columns`` ((key, heading) pairs), or ``empty``.

    The headings are English msgids (marked with ``N_`` where the columns are defined)
    and shown in the language spoken now; ``empty`` is shown as given (translate it with
    ``_`` at the call).  Ids are never shortened (people copy them into the next command); only the
    columns named in ``limits`` are cut to that many characters.
    """
    if not items:
        click.echo(empty)
        return
    limits = limits or {}
    headings = [translated(heading) for _key, heading in columns]
    cells = [[cell(item.get(key), limit=limits.get(key)) for key, _heading in columns]
             for item in items]
    widths = [max(len(heading), *(len(row[i]) for row in cells))
              for i, heading in enumerate(headings)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headings, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def heading(text: str) -> None:
    """A section heading in longer human output (case show, audit report)."""
    click.echo("")
    click.echo(text)
    click.echo("-" * len(text))
