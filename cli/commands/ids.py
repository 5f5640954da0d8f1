"""The NETWORK argument every network command takes, checked for its shape before
anything else happens.

A network id is 16 random bytes in base64url: 22 letters, digits, ``-`` and ``_``
(docs/protocol.md, conventions: Identifiers).  Something else -- the word ``NETWORK``
copied from a tutorial, a network's name -- is a usage error (exit 2) that says what
the argument must be and where to find it; an id of the right shape that this home
has no trust anchor for is a different refusal, explained by the error handler.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: 16 bytes in unpadded base64url.
NETWORK_ID = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]")

WHERE = ("a network id is the 22 characters `schakel network create` printed for the "
         "coordinator who founded it; a partner receives it from the coordinator with "
         "the fingerprint. `schakel network list` shows the networks this home knows")


def check_network_id(ctx: click.Context | None, param: click.Parameter | None,
                     value: str | None) -> str | None:
    """Refuse (exit 2) a NETWORK that cannot be a network id, saying how to find one."""
    if value is None or NETWORK_ID.fullmatch(value):
        return value
    shown = value if len(value) <= 40 else value[:39] + "…"
    raise click.BadParameter(f"{shown!r} is not a network id: {WHERE}", ctx=ctx, param=param)


def network_argument(f: F) -> F:
    """``NETWORK``: a network id (checked for its shape)."""
    return click.argument("network_id", metavar="NETWORK", callback=check_network_id)(f)


def optional_network_argument(f: F) -> F:
    """``[NETWORK]``: a network id, or nothing for every network this home trusts."""
    return click.argument("network_id", metavar="[NETWORK]", required=False,
                          callback=check_network_id)(f)


__all__ = ["NETWORK_ID", "check_network_id", "network_argument", "optional_network_argument"]
