"""Printing helpers shared by the subcommands: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click


def emit(data: dict[str, Any], *, as_json: bool, rows: Sequence[tuple[str, str]] | None = None) -> None:
    """Print ``data`` as JSON, or ``rows`` (label, value) as an aligned table."""
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    rows = rows if rows is not None else [(k, str(v)) for k, v in data.items()]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label.ljust(width)}  {value}")
