"""The demo's story: the practices chosen, each opening with what the report says of it,
then the oversight acts on everything they founded.

Every practice plays on the same server with its own homes, networks and cast
(:mod:`schakel.cli.demo.practices` lists them); every act narrates what each party reads
and what it cannot, and every such claim is a check in the
:class:`~schakel.cli.demo.tally.Tally`.  A practice that stops on an unexpected exception
is a failed check; the next practice still plays.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from schakel.cli.demo import oversight
from schakel.cli.demo.stage import Practice, Scene, Stage
from schakel.cli.demo.tally import describe


async def _play(s: Stage, what: str, acts: Sequence[Callable[[Any], Awaitable[None]]],
                on: Any) -> None:
    try:
        for act in acts:
            await act(on)
    except Exception as exc:  # noqa: BLE001 -- reported as a failure with its traceback
        s.t.check(False, f"{what} ran to its end", why=describe(exc))
        traceback.print_exc(file=sys.stderr)


async def play(s: Stage, practices: Sequence[Practice]) -> list[tuple[Practice, Scene]]:
    """Play each practice on ``s``, then the oversight acts; the scenes played."""
    played: list[tuple[Practice, Scene]] = []
    for practice in practices:
        s.t.part(practice.title)
        for line in practice.report:
            s.t.narrate(line)
        scene = practice.scene(s)
        played.append((practice, scene))
        await _play(s, f"the {practice.name} practice", practice.acts, scene)
    await _play(s, "the oversight", oversight.ACTS, s)
    return played


def recap(s: Stage, played: Sequence[tuple[Practice, Scene]]) -> list[str]:
    """What the run showed, in numbers (printed before the check count)."""
    lines = []
    for practice, scene in played:
        try:
            lines += practice.recap(scene)
        except Exception as exc:  # noqa: BLE001 -- a recap after a failure says so
            lines.append(f"{practice.name}: no recap ({describe(exc)})")
    logs = ", ".join(f"{name} {size}" for name, size in s.logs.items()) or "none"
    return [
        *lines,
        f"{len(s.orgs)} organisations, each with its own home and keys; "
        f"{len(s.networks)} network{'' if len(s.networks) == 1 else 's'}",
        f"identity released {len(s.releases)}x ({', '.join(s.releases) or '-'}), "
        f"each after its audit entry; {s.t.refusals} attempts refused, each with its reason",
        f"audit entries verified from scratch: {logs}",
    ]


__all__ = ["play", "recap"]
