"""A partner's copy of a network's trust log (docs/protocol.md §15.8, §16.3; ADR 0048).

The trust log holds every chain object the server accepted, in acceptance order; every
member reads it whole.  :func:`fetch_trust_log` believes the server's log only as far as
it can check it:

* the checkpoints (``GET .../trust/checkpoint``) are C2SP notes signed by the log key of the
  verified genesis under the origin ``schakel/trust/<network>`` -- a note that does not
  verify is ``bad-signature``: ``latest``, the log's latest size, which the chain is
  compared with, and ``checkpoint``, which the policy in force's witnesses must have
  cosigned (``schakel.protocol.witnessing.verify_network_checkpoint``; ``NotWitnessedError``
  otherwise) and which ``latest`` must continue (``trust-log-fork``): an object accepted
  after the witnesses last cosigned is in the log before it is witnessed;
* it is consistent with the checkpoint this partner holds: a smaller size is
  ``trust-log-rollback``, the same size with another root, or a consistency proof that does
  not verify, ``trust-log-fork``;
* the entries from the count held up to the checkpoint's size are read; every one is a
  chain object, and the root over all leaves (the held leaves' data is kept in the local
  state, one doc per index) is the checkpoint's root -- else ``trust-log-rewritten``; a log
  that ends below the size is ``chain-withheld``.

The caller (:func:`schakel.client.trust.load_trust`) then compares the chain it verified with
the logged one (``schakel.protocol.trustlog.compare_chain``) and keeps the new state with
:meth:`TrustLog.keep` only when both agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schakel.protocol import merkle
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import MalformedError, ProofError, SignatureError
from schakel.protocol.objects.network import WitnessSettings
from schakel.protocol.trustlog import chain_type, entry_data
from schakel.protocol.witnessing import TRUST, verify_network_checkpoint

from schakel.client.errors import ServerMisbehaviour, ServerRefused
from schakel.client.state import LocalState

#: Local doc of the trust checkpoint held: (network,) -> {"size", "root", "checkpoint"}.
CHECKPOINT_DOC = "trust-checkpoint"
#: Local doc of one leaf held: (network, index) -> {"type", "data"} (``data`` the leaf data).
LEAF_DOC = "trust-leaf"
PAGE = 500

Misbehaving = Callable[..., ServerMisbehaviour]


@dataclass(frozen=True)
class TrustLog:
    """A network's trust log as verified up to a checkpoint: ``leaves`` are ``(type, leaf
    data)`` by index, ``size`` of them; those from ``held`` on are new."""

    network: str
    size: int
    root: bytes
    checkpoint: str
    leaves: tuple[tuple[str, bytes], ...]
    held: int

    def keep(self, state: LocalState) -> None:
        """Keep the new leaves and the checkpoint (after the chain was compared)."""
        for index in range(self.held, self.size):
            kind, data = self.leaves[index]
            state.put_doc(LEAF_DOC, (self.network, f"{index:016d}"),
                          {"type": kind, "data": b64e(data)})
        state.put_doc(CHECKPOINT_DOC, (self.network,),
                      {"size": self.size, "root": b64e(self.root), "checkpoint": self.checkpoint})


def held_leaves(state: LocalState, network: str) -> list[tuple[str, bytes]]:
    """The leaves this partner verified before, by index."""
    return [(str(doc["type"]), b64d(doc["data"], length=32))
            for _, doc in state.docs(LEAF_DOC, (network,))]


async def fetch_trust_log(*, network: str, get: Callable[[str], Awaitable[Any]],
                          state: LocalState, log_key: VerifyKey,
                          witnesses: WitnessSettings | None, now: datetime,
                          misbehaving: Misbehaving) -> TrustLog:
    """Fetch and verify ``network``'s trust log up to its latest checkpoint (module
    docstring).  Nothing is kept here: :meth:`TrustLog.keep` does that."""
    def fail(what: str, message: str, **details: Any) -> ServerMisbehaviour:
        return misbehaving(network, what, message, **details)

    base = f"/v1/networks/{network}/trust"
    answer = await get(f"{base}/checkpoint")
    notes = [answer.get(k) if isinstance(answer, dict) else None for k in ("latest", "checkpoint")]
    if not all(isinstance(n, str) for n in notes):
        raise fail("bad-signature", "the server answered no trust checkpoint")
    note, witnessed_note = str(notes[0]), str(notes[1])
    try:
        checked = verify_network_checkpoint(note, log=TRUST, network=network, log_key=log_key,
                                            witnesses=None, now=int(now.timestamp()))
        witnessed = verify_network_checkpoint(
            witnessed_note, log=TRUST, network=network, log_key=log_key,
            witnesses=witnesses, now=int(now.timestamp())) if witnesses is not None else checked
    except (SignatureError, MalformedError) as exc:
        raise fail("bad-signature", f"a trust checkpoint not signed by the server's log key "
                   f"for this network ({exc.code})") from None
    size, root = checked.size, checked.root
    if witnessed.size > size or (witnessed.size == size and witnessed.root != root):
        raise fail("trust-log-fork", f"the witnessed trust checkpoint ({witnessed.size} "
                   f"entries) does not lie on the log's latest ({size})", size=size)
    if witnessed.size < size:
        try:
            proof = await get(f"{base}/proof/consistency?old={witnessed.size}&new={size}")
            merkle.verify_consistency(witnessed.size, size, witnessed.root, root,
                                      [b64d(p, length=32) for p in proof["proof"]])
        except (ProofError, MalformedError, KeyError, TypeError) as exc:
            raise fail("trust-log-fork", f"the log's latest trust checkpoint does not continue "
                       f"the one the witnesses cosigned ({type(exc).__name__})",
                       size=size) from None
        except ServerRefused as exc:
            raise fail("trust-log-fork", f"the server refused a consistency proof of the "
                       f"trust log ({exc.code})", size=size) from None

    held = state.get_doc(CHECKPOINT_DOC, (network,))
    leaves = held_leaves(state, network)
    if held is not None:
        held_size, held_root = int(held["size"]), b64d(held["root"], length=32)
        if size < held_size:
            raise fail("trust-log-rollback", f"a trust checkpoint of {size} entries; this "
                       f"partner holds one of {held_size}", size=size, held=held_size)
        if size == held_size and root != held_root:
            raise fail("trust-log-fork", f"two trust checkpoints of size {size} with different "
                       f"roots: a forked log", size=size)
        if size > held_size:
            try:
                proof = await get(f"{base}/proof/consistency?old={held_size}&new={size}")
                merkle.verify_consistency(held_size, size, held_root, root,
                                          [b64d(p, length=32) for p in proof["proof"]])
            except (ProofError, MalformedError, KeyError, TypeError) as exc:
                raise fail("trust-log-fork", f"a trust checkpoint that is not consistent with "
                           f"the one held ({type(exc).__name__})", size=size) from None
            except ServerRefused as exc:
                raise fail("trust-log-fork", f"the server refused a consistency proof of the "
                           f"trust log ({exc.code})", size=size) from None
        leaves = leaves[:held_size]
    else:
        leaves = []
    held_count = len(leaves)

    while len(leaves) < size:
        page = await get(f"{base}?after={len(leaves)}&limit={PAGE}")
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list) or not items:
            raise fail("chain-withheld", f"the trust log served ends at {len(leaves)} entries, "
                       f"below its checkpoint's {size}", size=size, served=len(leaves))
        for item in items:
            if len(leaves) >= size:
                break
            index = item.get("index") if isinstance(item, dict) else None
            envelope = item.get("envelope") if isinstance(item, dict) else None
            kind = chain_type(envelope)
            if index != len(leaves) or kind is None:
                raise fail("trust-log-rewritten", f"trust-log entry {len(leaves)} is missing or "
                           f"not a chain object", index=len(leaves))
            leaves.append((kind, entry_data(envelope)))
    if merkle.root_hash(data for _, data in leaves) != root:
        raise fail("trust-log-rewritten", f"the trust log's {size} entries do not hash to its "
                   f"checkpoint's root", size=size)
    return TrustLog(network=network, size=size, root=root, checkpoint=note,
                    leaves=tuple(leaves), held=held_count)


__all__ = ["CHECKPOINT_DOC", "LEAF_DOC", "TrustLog", "fetch_trust_log", "held_leaves"]
