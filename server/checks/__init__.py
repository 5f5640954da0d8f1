"""What the server verifies before it stores anything (docs/protocol.md §14; protocol.md §N, §C).

The server is trusted for policy, not for confidentiality: it checks every object's
schema and signature by the key the contract names, the context (network, case) against
the path, chains and memberships -- and never looks inside a ciphertext.  Each function
turns verified protocol objects into the records ``server/data/`` stores; all raise
``ProtocolError`` subclasses and never touch the database.
"""

from __future__ import annotations

from typing import Any

from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import sha256
from schakel.protocol.errors import ContextMismatchError
from schakel.server.data.networks import Stored


def canonical(value: Any) -> tuple[str, bytes]:
    """The canonical JSON text of a wire value and its SHA-256 (the idempotency digest)."""
    data = canonical_json(value)
    return data.decode("utf-8"), sha256(data)


def same(what: str, got: str, expected: str) -> None:
    """An object must name the network (or case, signal) of the path it was sent to."""
    if got != expected:
        raise ContextMismatchError(f"the object names another {what} than the request path",
                                   details={"field": what})


def stored(network: str, envelope: Any, *, received: str, acting_user: str) -> Stored:
    """A verified trust object as the data layer stores it."""
    text, digest = canonical(envelope)
    return Stored(network=network, envelope=text, digest=digest, received=received,
                  acting_user=acting_user)


__all__ = ["canonical", "same", "stored"]
