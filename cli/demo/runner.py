"""Running ``schakel demo``: a workspace, the server process, the story, the ending.

:func:`run` makes a workspace (a temporary folder, or ``--keep DIR``), starts ``schakel
server init`` and ``schakel serve`` there through :class:`schakel.cli.serverprocess.ServerProcess`,
plays the chosen practices (:mod:`schakel.cli.demo.story`) against it, prints the summary,
and with ``--serve`` leaves the server running with the instructions of the practices
that played until Ctrl-C.  SIGTERM ends the demo as Ctrl-C does; either way the server is
stopped and a temporary workspace removed.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from schakel.cli.demo import story
from schakel.cli.demo.practices import load
from schakel.cli.demo.stage import PASSPHRASE, Org, Practice, Scene, Stage
from schakel.cli.demo.tally import Tally, describe, marks_for, printer
from schakel.cli.serverprocess import ServerProcess


@dataclass
class Workspace:
    """Where the demo keeps its server data and the organisations' homes."""

    root: Path
    keep: bool

    @property
    def server_data(self) -> Path:
        return self.root / "server"

    @property
    def homes(self) -> Path:
        return self.root / "homes"

    @classmethod
    def make(cls, keep: Path | None) -> "Workspace":
        if keep is None:
            return cls(Path(tempfile.mkdtemp(prefix="schakel-demo-")), keep=False)
        keep = keep.resolve()
        if keep.exists() and any(keep.iterdir()):
            raise FileExistsError(f"{keep} is not empty; --keep needs a new or empty folder")
        keep.mkdir(parents=True, exist_ok=True)
        return cls(keep, keep=True)

    def clean(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


async def perform(stage: Stage, practices: Sequence[Practice]) -> list[tuple[Practice, Scene]]:
    """Play ``practices`` on ``stage`` and recap them; an unexpected exception in one is a
    failed check, never a silent success (:func:`schakel.cli.demo.story.play`)."""
    try:
        played = await story.play(stage, practices)
        stage.t.section("Summary")
        for line in story.recap(stage, played):
            stage.t.note(line)
        return played
    finally:
        await stage.close()


def instructions(stage: Stage, played: Sequence[tuple[Practice, Scene]], url: str,
                 consoles: Sequence[tuple[Org, str]] = ()) -> str:
    """Copy-pasteable commands for trying the CLI against the running server: the homes
    of every organisation, each organisation's console address (when ``consoles`` are
    running), then each practice's own commands."""
    homes = "\n".join(f"    {o.name:<44} {o.home}" for o in stage.orgs)
    windows = "\n".join(f"    {o.name:<44} {address}" for o, address in consoles)
    console_part = (f"""
A console for every organisation, in Dutch, in your browser (each address works once;
unlock with the passphrase below):
{windows}
""" if consoles else "")
    scripts = Path(sys.executable).parent
    path = ("" if shutil.which("schakel") == str(scripts / "schakel")
            else f"    export PATH={scripts}:$PATH\n")
    tries = "".join(_instructions(practice, scene) for practice, scene in played)
    return f"""
The server keeps running at {url}, with every organisation's home:
{homes}

Its server fingerprint, for founding another network on it
(`schakel network create ... --server-fingerprint "..."`): {stage.server_fingerprint}
{console_part}
Try the command line in another terminal (one passphrase for all the demo's homes):

{path}    export SCHAKEL_PASSPHRASE='{PASSPHRASE}'
{tries}
Ctrl-C stops the server."""


async def serve_consoles(stage: Stage, played: Sequence[tuple[Practice, Scene]], url: str,
                         server: ServerProcess, tally: Tally) -> None:
    """Serve a console (ADR 0040) for every organisation's home, all in this process,
    each on its own loopback port with its own one-time start address; print the
    instructions with those addresses; run until the server ends (or Ctrl-C / SIGTERM).
    A console opens its home only when its unlock form is sent."""
    from aiohttp import web

    from schakel.cli.commands.console import free_port
    from schakel.cli.console.app import make_app
    from schakel.cli.console.guard import LOOPBACK, Gate

    runners: list[web.AppRunner] = []
    consoles: list[tuple[Org, str]] = []
    try:
        for org in stage.orgs:
            gate = Gate(port=free_port(LOOPBACK))
            runner = web.AppRunner(make_app(org.home, url, gate), access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, LOOPBACK, gate.port, reuse_address=False).start()
            consoles.append((org, gate.address()))
        tally.say(instructions(stage, played, url, consoles))
        while server.running:
            await asyncio.sleep(0.5)
    finally:
        for runner in runners:
            await runner.cleanup()


def _instructions(practice: Practice, scene: Scene) -> str:
    try:
        return practice.instructions(scene)
    except Exception as exc:  # noqa: BLE001 -- a practice that failed early has fewer ids
        return f"\n    # {practice.name}: no commands, it did not play to its end ({describe(exc)})\n"


def _practices_said(practices: Sequence[Practice]) -> str:
    names = [p.name.capitalize() for p in practices]
    said = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"the practice{'s' if len(names) > 1 else ''} of {said}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(*, practices: Sequence[Practice] | None = None, serve: bool = False,
        keep: Path | None = None, out: TextIO | None = None) -> int:
    """Play ``practices`` (default: every registered one); returns the process exit code
    (0 only if every check held)."""
    out = out or sys.stdout
    chosen = list(practices) if practices is not None else load()
    tally = Tally(say=printer(out), marks=marks_for(out))
    # SIGTERM ends the demo like Ctrl-C does: through the `finally` below, which stops the
    # server (it runs in its own session, so no signal reaches it by itself).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    workspace = Workspace.make(keep)
    server = ServerProcess(workspace.server_data, log_file=workspace.root / "server.log")
    started = time.monotonic()
    tally.say(f"Schakel demo: {_practices_said(chosen)} from the report, a real server, "
              f"real keys.")
    tally.say(f"Each {tally.marks.ok} is a check that held, {tally.marks.fail} one that did not; "
              f"{tally.marks.note} lines say what a party does or reads.")
    try:
        workspace.server_data.mkdir(parents=True, exist_ok=True)
        workspace.homes.mkdir(parents=True, exist_ok=True)
        server.init()
        url = server.start()
        tally.note(f"schakel serve is up at {url} (data in {workspace.server_data})")
        stage = Stage(tally, url, server.fingerprint, workspace.homes, workspace.server_data)
        played = asyncio.run(perform(stage, chosen))
        tally.summary(time.monotonic() - started)
        if tally.failures:
            print(f"The server's log (requests only, never content), last lines:\n"
                  f"{server.tail(2000)}", file=sys.stderr)
        if serve and server.running:
            try:
                asyncio.run(serve_consoles(stage, played, url, server, tally))
            except KeyboardInterrupt:
                tally.say("\nStopping the consoles and the server.")
        return tally.exit_code()
    except KeyboardInterrupt:
        tally.say("\nInterrupted; stopping the server.")
        return 130
    except Exception as exc:  # noqa: BLE001 -- e.g. the server did not start
        tally.check(False, "the demo could start", why=describe(exc))
        tally.summary(time.monotonic() - started)
        return tally.exit_code()
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        if workspace.keep:
            tally.say(f"Kept the server data and the homes in {workspace.root}.")
        workspace.clean()


__all__ = ["Workspace", "perform", "instructions", "run"]
