"""The checks of a sync page's events that need nothing but the envelopes and the
network's membership keys (docs/protocol.md §16.3): the envelope and event schemas, the
author's Ed25519 signature, and the canonical bytes that a reader stores and hashes.

What needs a reader's own state -- the chain, replays, the author's membership at the
event's time, decryption -- is the reader's (``schakel.client.fold``), which takes a
:class:`CheckedEvent` for every event it folds.  :func:`check_page` is a plain function
of public values, so a reader may run it on another core (``schakel.client.pagecheck``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schakel.protocol import schema
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.errors import MalformedError, SignatureError
from schakel.protocol.objects.cases import Event


@dataclass(frozen=True)
class CheckedEvent:
    """What :func:`check_event` found of one event envelope.

    ``shape`` is the error code when the envelope is not a schema-valid event envelope;
    otherwise ``signature`` is the error code when it does not verify under the claimed
    author's key (``unknown_author`` when no member holds that key); otherwise ``event``
    is the verified event and ``canonical`` the envelope's canonical JSON."""

    shape: str | None = None
    signature: str | None = None
    event: Event | None = None
    canonical: bytes = b""


def check_event(envelope: Any, keys: Mapping[str, VerifyKey]) -> CheckedEvent:
    """Check one event envelope against the verify keys of the network's members (by
    key id): schemas, then the signature of the author it names."""
    try:
        unverified = Event.unverified(envelope)
    except (MalformedError, SignatureError) as exc:
        return CheckedEvent(shape=exc.code)
    key = keys.get(unverified.signed["author"])
    if key is None:
        return CheckedEvent(signature="unknown_author")
    try:
        event = unverified.verify([key])
    except (MalformedError, SignatureError) as exc:
        return CheckedEvent(signature=exc.code)
    return CheckedEvent(event=event, canonical=unverified.canonical())


def prepare() -> None:
    """Build what :func:`check_page` uses (the envelope and event validators) before the
    first page comes."""
    schema.prepare("envelope", "event")


def check_page(items: list[Any], keys: Mapping[str, bytes]) -> list[CheckedEvent | None]:
    """:func:`check_event` of every event item of a sync page (None for the other items
    and for items that are not even sync items: the verifier refuses those).  ``keys``
    are raw verify keys, so the call crosses a process boundary as plain bytes."""
    verify_keys = {key_id: VerifyKey(raw) for key_id, raw in keys.items()}
    out: list[CheckedEvent | None] = []
    for item in items:
        if isinstance(item, dict) and item.get("kind") == "event" and "envelope" in item:
            out.append(check_event(item["envelope"], verify_keys))
        else:
            out.append(None)
    return out


__all__ = ["CheckedEvent", "check_event", "check_page", "prepare"]
