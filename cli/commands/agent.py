"""``schakel agent``: keep a home's unlocked keystore key for a session (ADR 0023), and
:func:`keystore_secret`, how every partner command gets its key: from the agent when
one serves the home, else from the passphrase.

    eval "$(schakel agent start --home H)"     # one passphrase, one Argon2id run
    schakel case list --home H                 # no passphrase, no Argon2id
    schakel agent status --home H
    schakel agent stop --home H
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from schakel.cli.commands.common import check_home, home_option, json_option
from schakel.cli.commands.output import emit
from schakel.cli.helptext import Group
from schakel.cli.i18n import N_

if TYPE_CHECKING:
    from schakel.keys import KeystoreKey

#: Defaults as gpg-agent's: forget after 15 minutes unused, and 8 hours after the unlock.
DEFAULT_TTL = "15m"
DEFAULT_MAX_TTL = "8h"
MAX_SECONDS = 7 * 24 * 3600
_DURATION = re.compile(r"(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,7})s?)?")


def parse_duration(text: str) -> int:
    """Seconds in ``90``, ``90s``, ``15m``, ``8h`` or ``1h30m``; 1 s to 7 days."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 8h or 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not 1 <= total <= MAX_SECONDS:
        raise ValueError(f"{text!r} must lie between 1 second and 7 days")
    return total


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _say(line: str) -> None:
    click.echo(f"schakel: {line}", err=True)


def _give_up(line: str) -> NoReturn:
    _say(line)
    sys.exit(1)


def keystore_secret(home: Path) -> "str | KeystoreKey":
    """The key to open ``home``'s keystore with: the agent's, when an agent of this user
    serves this home (no Argon2id), else the passphrase (SCHAKEL_PASSPHRASE or a prompt).

    An agent that has forgotten the key is armed again with the key this command derives
    from the passphrase.  A wrong, dead or foreign socket is named on standard error and
    the passphrase is used instead; without an agent nothing is said.
    """
    from schakel.keys import passphrase_from, read_keystore_info, unlock_keystore_key
    from schakel.keys.agent import AgentError, AgentLocked, agent_socket, fetch_key, offer_key

    path, named = agent_socket(home)
    if not named and not os.path.lexists(path):
        return passphrase_from()
    keystore = home / "keystore.json"
    info = read_keystore_info(keystore)
    try:
        return fetch_key(path, info)
    except AgentLocked as error:
        _say(f"the agent for {home} holds no key: {error}; asking for the passphrase")
        key = unlock_keystore_key(keystore, passphrase_from())
        try:
            offer_key(path, info, key)
        except AgentError as refusal:
            _say(f"the agent did not take the key back: {refusal}")
        else:
            _say("the agent keeps the key again")
        return key
    except AgentError as error:
        _say(f"no key from the agent: {error}; asking for the passphrase")
        return passphrase_from()


@click.group(cls=Group)
def agent() -> None:
    """Keep your home's unlocked key for a session (sleutelagent), as ssh-agent does.

    Every command that acts for your organisation unlocks the keystore first, which
    takes about a second and 256 MiB of memory (Argon2id). `schakel agent start`
    asks the passphrase once and keeps the unlocked key in the memory of a small
    background process, which hands it only to your own user's commands over a
    private socket. It forgets the key after --ttl without use and at the latest
    after --max-ttl; then the next command asks the passphrase again.
    """


@agent.command()
@home_option
@click.option("--ttl", type=Duration(), default=DEFAULT_TTL, show_default=True,
              help="Forget the key after this long without use (e.g. 90s, 15m, 1h).")
@click.option("--max-ttl", type=Duration(), default=DEFAULT_MAX_TTL, show_default=True,
              help="Forget the key at the latest this long after the passphrase was given.")
@click.option("--foreground", is_flag=True,
              help="Stay in the foreground until Ctrl-C or `schakel agent stop` (for tests "
                   "and service managers); without it the agent goes to the background.")
def start(home: Path, ttl: int, max_ttl: int, foreground: bool) -> None:
    """Unlock the keystore once and keep its key in an agent.

    Prints shell commands that set SCHAKEL_AGENT, for `eval "$(schakel agent start
    --home H)"`; commands with the same --home find the agent without it too.
    """
    from schakel.keys import read_keystore_info, unlock_keystore_key, passphrase_from
    from schakel.keys.agent import (
        Agent, AgentError, bind, duration_text, harden_process, home_socket, run,
    )

    check_home(home)
    path = home_socket(home)
    keystore = home / "keystore.json"
    info = read_keystore_info(keystore)
    hardened = harden_process()       # before the key exists in this process
    try:
        listener, note = bind(path)
    except AgentError as error:
        _give_up(str(error))
    if note:
        _say(note)
    try:
        key = unlock_keystore_key(keystore, passphrase_from())
        keeper = Agent(home=home.resolve(), keystore=keystore.resolve(), info=info, ttl=ttl,
                       max_ttl=max_ttl)
        keeper.unlock(key)
    except BaseException:
        listener.close()
        path.unlink(missing_ok=True)
        raise
    if not hardened:
        _say("warning: this system does not let the agent forbid other processes of your "
             "user to read its memory (PR_SET_DUMPABLE)")
    pid = os.getpid() if foreground else _detach()
    if pid:
        click.echo(f"SCHAKEL_AGENT={shlex.quote(str(path))}; export SCHAKEL_AGENT;")
        click.echo(f"echo schakel agent pid {pid};")
        _say(f"agent (pid {pid}) keeps the key of {home}; it forgets it after "
             f"{duration_text(ttl)} unused, at the latest after {duration_text(max_ttl)}")
        sys.stdout.flush()
        if not foreground:
            keeper.forget()
            listener.close()
            return
    run(listener, path, keeper)
    if not foreground:
        os._exit(0)


def _detach() -> int:
    """Fork: the parent gets the child's pid (and prints); the child (0) leaves the
    terminal's session and its output, and serves."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return 0


def _socket(home: Path) -> Path:
    from schakel.keys.agent import agent_socket
    return agent_socket(home)[0]


@agent.command()
@home_option
@json_option
def status(home: Path, as_json: bool) -> None:
    """Whether an agent keeps this home's key, how many unlocks it did, when it forgets.

    Exit 1 when no agent answers (none runs, or a stale socket).
    """
    from schakel.keys.agent import AgentError, agent_status, duration_text

    path = _socket(home)
    try:
        state = agent_status(path)
    except AgentError as error:
        _give_up(f"no agent: {error}")
    data = {"socket": str(path), **state.to_json()}
    emit(data, as_json=as_json, rows=[
        (N_("socket"), str(path)), (N_("pid"), str(state.pid)), (N_("home"), state.home),
        (N_("key id"), state.key_id),
        (N_("key"), "kept" if state.unlocked else "forgotten (the next command asks the passphrase)"),
        (N_("forgets at"), state.forgets_at or "-"),
        (N_("unlocks"), f"{state.unlocks} (Argon2id runs that armed this agent)"),
        (N_("keys served"), f"{state.keys_served} (commands that skipped Argon2id)"),
        (N_("refused peers"), str(state.refused_peers)),
        (N_("forgets"), f"after {duration_text(state.ttl_seconds)} unused, at the latest "
                    f"{duration_text(state.max_ttl_seconds)} after the unlock"),
        (N_("started at"), state.started_at),
    ])


@agent.command()
@home_option
def stop(home: Path) -> None:
    """Stop the agent: it forgets the key and removes its socket.

    A stale socket (its agent was killed) is removed.
    """
    from schakel.keys.agent import AgentError, AgentStale, stop_agent

    path = _socket(home)
    try:
        stop_agent(path)
    except AgentStale:
        path.unlink(missing_ok=True)
        _say(f"removed the stale socket {path}; no agent was running")
        return
    except AgentError as error:
        _give_up(f"no agent stopped: {error}")
    _say(f"the agent at {path} stopped and forgot the key")


__all__ = ["agent", "keystore_secret", "parse_duration"]
