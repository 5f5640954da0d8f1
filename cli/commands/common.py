"""What every partner command shares: the home directory, the passphrase, opening
and always closing the :class:`schakel.client.Partner`, reading input files, and the
progress bar.

The commands are a thin shell: each builds its inputs, runs one coroutine over
the async library with :func:`asyncio.run`, and prints the answer.  Errors are
not handled here but in ``schakel.cli.main.SchakelGroup``, which maps them to exit
codes and advice in one place.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from schakel.cli.commands.refusal import note_caller
from schakel.protocol.canonical import parse_json
from schakel.protocol.errors import KeystoreError, MalformedError, ProtocolError

if TYPE_CHECKING:  # the library is imported when a command runs, so --help stays fast
    from schakel.client.partner import Partner

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

HOME_ENV = "SCHAKEL_HOME"
DEFAULT_HOME = "schakel-home"
#: Where the CLI remembers the server address of the running command, for the
#: "cannot reach the server" message (click's per-invocation meta dict, not a global).
SERVER_META = "schakel.server"
#: Whether the running command was given --json (the error handler prints JSON then).
JSON_META = "schakel.json"
#: Input files (intake, identity, bundle, policy) are small; refuse anything larger.
MAX_INPUT_BYTES = 256 * 1024


def home_option(f: F) -> F:
    """``--home DIR`` (env SCHAKEL_HOME): the organisation's home directory."""
    return click.option(
        "--home", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_HOME,
        envvar=HOME_ENV, show_default=True, show_envvar=True,
        help="Your organisation's Schakel home: keystore.json, client.json and the "
             "encrypted local state (state.db).")(f)


def check_url(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
    """A server address must be ``http(s)://host[:port]`` (requests are signed for it)."""
    if value is None:
        return None
    from schakel.client.transport import origin_of

    try:
        return origin_of(value)
    except ValueError as error:
        raise click.BadParameter(f"{value!r}: {error}", ctx=ctx, param=param) from None


def server_option(f: F) -> F:
    """``--server URL`` (env SCHAKEL_SERVER): override the server address for this run."""
    return click.option(
        "--server", "server", metavar="URL", envvar="SCHAKEL_SERVER", default=None,
        callback=check_url, help="Use this server address for this command instead of the one in the home "
             "(e.g. while the server moves).")(f)


def partner_options(f: F) -> F:
    """--home and --server: every command that acts as the organisation takes both."""
    return home_option(server_option(f))


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta[JSON_META] = value
    return value


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, callback=_remember_json,
                        help="Print JSON (stable keys) for scripts instead of a table; a "
                             "refusal is then also printed as {\"error\": {code, message, "
                             "details}} on standard output.")(f)


def progress_option(f: F) -> F:
    return click.option(
        "--progress/--no-progress", "progress", default=None,
        help="Show a progress bar on standard error [default: only when it is a terminal].")(f)


def sync_option(f: F) -> F:
    return click.option(
        "--no-sync", "offline", is_flag=True,
        help="Show only what this computer already holds; do not ask the server first.")(f)


def remember_server(url: str | None) -> None:
    """Note the server address for the error handler's "cannot reach" message."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and url:
        ctx.meta[SERVER_META] = url


def _configured_server(home: Path) -> str | None:
    try:
        value = json.loads((home / "client.json").read_text(encoding="utf-8")).get("server")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def check_home(home: Path) -> None:
    """Refuse early, with the command that fixes it, when ``home`` is not a Schakel home."""
    if not (home / "keystore.json").is_file():
        raise KeystoreError(
            f"{home} is not a Schakel home (no keystore.json there); create one with "
            f"`schakel init --home {home} --name ORG --server URL --acting-user USER`, "
            f"or point --home (or SCHAKEL_HOME) at the right directory")


def with_partner(home: Path, server: str | None, work: Callable[["Partner"], Awaitable[T]],
                 *, guard: Mapping[str, Any] | None = None, secret: str | None = None) -> T:
    """Open the partner in ``home``, run ``work`` on it, close it always; return the result.

    The key comes from the agent when one keeps it for this home (ADR 0023), else
    from the passphrase (SCHAKEL_PASSPHRASE or a hidden prompt), asked before anything
    touches the network.  ``guard``: the free text ``work`` sends
    (``{field: text}``), checked by the PII guard before the passphrase and shown back
    with its findings when the guard refuses it (:mod:`schakel.cli.commands.guard`).
    ``secret``: the passphrase the command already asked for (it writes a keystore too).
    """
    if guard is not None:
        from schakel.cli.commands.guard import refuse_early   # the PII guard's word lists

        refuse_early(guard)
    check_home(home)
    remember_server(server or _configured_server(home))
    import asyncio

    from schakel.cli.commands.agent import keystore_secret

    key = secret if secret is not None else keystore_secret(home)

    async def main() -> T:
        from schakel.client import Partner

        partner = await Partner.open(home, key, server=server)
        try:
            return await work(partner)
        except ProtocolError:
            note_caller(partner)        # the refusal names who can act by the caller's role
            raise
        finally:
            await partner.close()

    if guard is None:
        return asyncio.run(main())
    from schakel.cli.commands.guard import showing

    with showing(guard):
        return asyncio.run(main())


def read_json_file(path: Path, what: str) -> Any:
    """A small JSON input file (intake, identity, bundle, policy), parsed strictly."""
    data = path.read_bytes()
    if len(data) > MAX_INPUT_BYTES:
        raise MalformedError(f"{path} is larger than {MAX_INPUT_BYTES // 1024} KiB; is it the {what}?")
    try:
        return parse_json(data, max_bytes=MAX_INPUT_BYTES)
    except MalformedError as error:
        raise MalformedError(f"{path} is not valid JSON for the {what}: {error.message}") from None


def read_object_file(path: Path, what: str) -> dict[str, Any]:
    value = read_json_file(path, what)
    if not isinstance(value, dict):
        raise MalformedError(f"{path} must hold a JSON object (the {what})")
    return value


def read_text_file(path: Path, what: str) -> str:
    data = path.read_bytes()
    if len(data) > MAX_INPUT_BYTES:
        raise MalformedError(f"{path} is larger than {MAX_INPUT_BYTES // 1024} KiB; is it the {what}?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError(f"{path} is not UTF-8 text (the {what})") from None


class Progress:
    """A click progress bar on standard error, fed with "items so far" (and a total
    when the library knows one).  Shown only when stderr is a terminal, or when the
    user asked with --progress; never on standard output, so --json stays clean."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._done = 0

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None and self._bar.length != total:
            self._bar.length = total
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done


@contextmanager
def progress_bar(label: str, wanted: bool | None) -> Iterator[Progress | None]:
    show = wanted if wanted is not None else sys.stderr.isatty()
    if not show:
        yield None
        return
    with click.progressbar(iter(()), label=label, file=sys.stderr, show_pos=True,
                           show_eta=False) as bar:
        bar.is_hidden = False       # --progress on a pipe: the user asked for it
        yield Progress(bar)


def run(coro: Awaitable[T]) -> T:
    """Run one coroutine that needs no partner (e.g. creating a home)."""
    import asyncio

    async def main() -> T:
        return await coro
    return asyncio.run(main())


__all__ = ["DEFAULT_HOME", "HOME_ENV", "JSON_META", "SERVER_META", "Progress", "check_home", "home_option",
           "json_option", "partner_options", "progress_bar", "progress_option", "read_json_file",
           "read_object_file", "read_text_file", "remember_server", "run", "server_option",
           "sync_option", "with_partner"]
