"""Small helpers for what a client sends and reads, shared by the services: object ids,
early refusals, feed pages and their size, and how often a write overtaken by another is
rebuilt.  A leaf module: it imports nothing else of :mod:`schakel.client`."""

from __future__ import annotations

from typing import Any

from schakel.protocol.crypto import random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import PolicyViolation

#: Most items asked per page of a feed (the server's maximum).
PAGE = 500
#: Tries of a write that a concurrent write can overtake (409: re-read, rebuild).
CONFLICT_TRIES = 3


def new_id() -> str:
    """A fresh object id chosen by the client: 16 random bytes, base64url."""
    return b64e(random_bytes(16))


def refuse(reason: str, message: str, **details: Any) -> PolicyViolation:
    """A local, early refusal: the request was never sent (``details.early``)."""
    return PolicyViolation(f"refused before sending: {message}",
                           details={"reason": reason, "early": True, **details})


def page_of(page: Any) -> tuple[list[Any], str | None]:
    """The items of a feed page and its cursor (None when the cursor is not a feed
    position: the caller decides whether that is misbehaviour or the end)."""
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        return [], None
    cursor = page.get("cursor")
    if not isinstance(cursor, str) or not cursor.isdigit() or len(cursor) > 16:
        return page["items"], None
    return page["items"], cursor


def head_of(page: Any, cursor: str) -> str | None:
    """The head a sync page names (docs/protocol.md §14.3, "Sync"): a feed position at or
    after the page's ``cursor``, since the server reads both at once; None otherwise."""
    head = page.get("head") if isinstance(page, dict) else None
    if not isinstance(head, str) or not head.isdigit() or len(head) > 16:
        return None
    return head if int(head) >= int(cursor) else None


__all__ = ["PAGE", "CONFLICT_TRIES", "new_id", "refuse", "page_of", "head_of"]
