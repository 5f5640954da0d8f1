"""The trust log: a network's chain objects in an RFC 6962 log every member reads whole
(docs/protocol.md §15.8; ADR 0048).

Leaf ``i`` of a network's trust log is the ``i``-th chain object the server accepted: leaf 0
the ``network-genesis``, then every ``network-policy``, ``membership``,
``membership-revocation``, ``covenant-acceptance`` and ``key-rotation`` in acceptance order.
Its leaf data (the bytes :func:`schakel.protocol.merkle.leaf_hash` hashes with the 0x00
prefix) is :func:`entry_data`: ``SHA-256("schakel/v1/trust-entry" || canonical_json(env))``.

:func:`compare_chain` is the client's rule that the chain it is served is the chain that is
logged.  Pure: bytes and dicts in, a result or one exception out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import sha256

#: Domain separation of a trust-log leaf (§2.2: every hashed byte string has its prefix).
ENTRY_PREFIX = b"schakel/v1/trust-entry"
GENESIS = "network-genesis"
#: The object types a trust log holds.
CHAIN_TYPES = (GENESIS, "network-policy", "membership", "membership-revocation",
               "covenant-acceptance", "key-rotation")
#: The types a client compares with what it is served: all of them (rotations come with the
#: network, the rest with its members).
SERVED_TYPES = frozenset(CHAIN_TYPES)


def entry_data_of(canonical: bytes) -> bytes:
    """The leaf data of an envelope whose RFC 8785 canonical JSON is ``canonical``."""
    return sha256(ENTRY_PREFIX + canonical)


def entry_data(envelope: Any) -> bytes:
    """The leaf data of a chain object: SHA-256 over the prefix and its canonical JSON."""
    return entry_data_of(canonical_json(envelope))


def chain_type(envelope: Any) -> str | None:
    """The ``signed.type`` of a chain object, or None when ``envelope`` is not a signed
    envelope of one of :data:`CHAIN_TYPES`."""
    if not isinstance(envelope, Mapping):
        return None
    signed = envelope.get("signed")
    kind = signed.get("type") if isinstance(signed, Mapping) else None
    return kind if isinstance(kind, str) and kind in CHAIN_TYPES else None


@dataclass(frozen=True)
class Mismatch:
    """What :func:`compare_chain` found: the logged entries (index, type) the served chain
    lacks, and the served objects (type) the log lacks; both empty when they agree."""

    withheld: tuple[tuple[int, str], ...]
    not_logged: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.withheld or self.not_logged)


def compare_chain(logged: Sequence[tuple[str, bytes]],
                  served: Iterable[tuple[str, bytes]]) -> Mismatch:
    """Compare the log (``(type, entry data)`` by index) with the chain a client holds and is
    served (``(type, entry data)`` of each object it verified, the genesis included): every
    logged entry of a :data:`SERVED_TYPES` type must be served, every served object logged."""
    served = list(served)
    have = {data for _, data in served}
    in_log = {data for _, data in logged}
    withheld = tuple((i, kind) for i, (kind, data) in enumerate(logged)
                     if kind in SERVED_TYPES and data not in have)
    not_logged = tuple(kind for kind, data in served if data not in in_log)
    return Mismatch(withheld, not_logged)


__all__ = ["ENTRY_PREFIX", "GENESIS", "CHAIN_TYPES", "SERVED_TYPES", "Mismatch",
           "chain_type", "compare_chain", "entry_data", "entry_data_of"]
