"""schakel.protocol.trustlog: the trust log's leaf data and the rule that the chain served
is the chain logged (docs/protocol.md §15.8, §16.3)."""

from __future__ import annotations

import hashlib
from typing import Any

from schakel.protocol.canonical import canonical_json
from schakel.protocol.objects.audit import COMMITMENT_PREFIX
from schakel.protocol.trustlog import (
    ENTRY_PREFIX, chain_type, compare_chain, entry_data, entry_data_of,
)


def _env(kind: str, **signed: Any) -> dict[str, Any]:
    return {"signed": {"type": kind, **signed}, "signatures": [{"keyid": "k", "sig": "s"}]}


def test_entry_data_is_the_prefixed_sha256_of_the_canonical_json() -> None:
    env = _env("membership", serial=1, member="m")
    assert ENTRY_PREFIX == b"schakel/v1/trust-entry"
    assert entry_data(env) == hashlib.sha256(ENTRY_PREFIX + canonical_json(env)).digest()
    assert entry_data(env) == entry_data_of(canonical_json(env))
    # Key order does not matter (RFC 8785); the audit log's prefix gives another hash.
    assert entry_data({"signatures": env["signatures"], "signed": dict(reversed(
        list(env["signed"].items())))}) == entry_data(env)
    assert entry_data(env) != hashlib.sha256(COMMITMENT_PREFIX + canonical_json(env)).digest()


def test_chain_type_names_only_chain_objects() -> None:
    assert chain_type(_env("membership-revocation")) == "membership-revocation"
    assert chain_type(_env("key-rotation")) == "key-rotation"
    for other in (_env("case-header"), {"signed": []}, {"signed": {"type": 3}}, [], "membership",
                  None):
        assert chain_type(other) is None


def test_compare_chain_finds_withheld_and_unlogged_objects() -> None:
    genesis, member, revocation = (_env("network-genesis"), _env("membership", serial=1),
                                   _env("membership-revocation", serial=1))
    rotation, stranger = _env("key-rotation"), _env("membership", serial=9)
    logged = [(chain_type(e) or "", entry_data(e)) for e in (genesis, member, revocation, rotation)]
    served = [(chain_type(e) or "", entry_data(e)) for e in (genesis, member, revocation,
                                                              rotation)]
    assert not compare_chain(logged, served)
    withheld = compare_chain(logged, served[:2])
    assert withheld.withheld == ((2, "membership-revocation"), (3, "key-rotation"))
    assert not withheld.not_logged
    assert compare_chain(logged, served[:3]).withheld == ((3, "key-rotation"),)
    extra = compare_chain(logged, [*served, ("membership", entry_data(stranger))])
    assert extra.not_logged == ("membership",) and not extra.withheld
