"""Real witnesses for the tests of a network's witnessed logs (docs/protocol.md §17).

:func:`running_witnesses` starts ``count`` witness services (``schakel.server.witness``:
the app a third party runs with ``schakel witness serve``), each with its own data directory,
Ed25519 key and SQLite file, on real loopback sockets.  :func:`witness_policy` is the
``witnesses`` part of a network policy that names them; :meth:`Witness.add_network` is the
operator adding a network's logs (``schakel witness add-log``) once the network exists.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schakel.keys import KdfParams
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.witnessing import LOGS, log_verifier
from schakel.server.witness.app import WitnessContext, make_app
from schakel.server.witness.keys import PASSPHRASE_ENV, create
from schakel.server.witness.store import WitnessStore


@dataclass
class Witness:
    """One running witness: its name, verifier key, URL and its context (its store)."""

    name: str
    vkey: str
    url: str
    ctx: WitnessContext

    def add_network(self, network: str, log_key: VerifyKey) -> None:
        """Witness every log of ``network`` (its audit and trust logs), signed by the
        server's ``log_key``."""
        for log in LOGS:
            self.ctx.store.add_log(log_verifier(log, network, log_key).vkey(), int(time.time()))

    def refused(self) -> list[dict[str, Any]]:
        return self.ctx.store.refused()


@asynccontextmanager
async def running_witnesses(tmp_path: Path, count: int) -> AsyncIterator[list[Witness]]:
    """``count`` witnesses served on 127.0.0.1 until the block ends."""
    from aiohttp.test_utils import TestServer

    async with AsyncExitStack() as stack:
        witnesses = []
        for i in range(1, count + 1):
            data_dir = tmp_path / f"witness-{i}"
            name = f"witness-{i}.schakel.test/getuige"
            key = create(data_dir, name, environ={PASSPHRASE_ENV: "witness test passphrase"},
                         kdf=KdfParams.INTERACTIVE)
            ctx = WitnessContext(store=WitnessStore.open(data_dir), key=key)
            server = TestServer(make_app(ctx), host="127.0.0.1")
            await server.start_server()
            stack.push_async_callback(server.close)
            witnesses.append(Witness(name, key.vkey, str(server.make_url("")).rstrip("/"), ctx))
        yield witnesses


def witness_policy(witnesses: list[Witness], *, quorum: int,
                   max_age_hours: int = 1) -> dict[str, Any]:
    """The policy's ``witnesses`` part naming ``witnesses`` (protocol.md §N.2, §17.5)."""
    return {"quorum": quorum, "max_age_hours": max_age_hours,
            "witnesses": [{"vkey": w.vkey, "url": w.url} for w in witnesses]}


__all__ = ["Witness", "running_witnesses", "witness_policy"]
