"""The ``schakel`` command line: one entry point, a subcommand per job.

Output is a readable table by default and JSON with ``--json``.  Errors are one
paragraph a coordinator can act on — what was refused, why, what to do — never
a traceback.  Exit codes (also in ``schakel --help``):

  0  done
  1  refused: a check failed or the protocol or the server refused (details on stderr)
  2  wrong usage (unknown option, missing argument)
  3  the keystore could not be opened (wrong passphrase, damaged or missing file or home)
  4  a key or signature is not trusted, or the server sent something that does not verify
  5  the server could not be reached

Every error is mapped here, in :class:`SchakelGroup`, so the commands in
``cli/commands/`` stay a thin shell over the library (ADR 0007).

The refusals are Dutch unless English is asked for (``--lang``, ``SCHAKEL_LANG``,
``LANG``; :mod:`schakel.cli.i18n`, ADR 0037): the tables below hold the English msgids,
marked with ``N_``, and each line is translated with ``_`` when it is printed.  So are
every ``--help`` and click's own usage errors (:mod:`schakel.cli.helptext`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click

from schakel.cli.helptext import SpokenGroup, speak_for_click
from schakel.cli.i18n import LANGUAGES, N_, _, use
from schakel.protocol.errors import (
    ContextMismatchError, DecryptionError, KeystoreError, PolicyViolation, ProofError,
    ProtocolError, SignatureError, UntrustedKeyError,
)

if TYPE_CHECKING:
    from importlib.abc import Loader

EXIT_REFUSED, EXIT_USAGE, EXIT_KEYSTORE, EXIT_UNTRUSTED, EXIT_UNREACHABLE = 1, 2, 3, 4, 5

#: What a person can do about each kind of refusal (by wire error code).
HINTS: dict[str, str] = {
    "keystore_error": N_("check the passphrase (or SCHAKEL_PASSPHRASE) and the --home / --keystore path"),
    "untrusted_key": N_("compare the fingerprint again with the owner of the key, aloud"),
    "bad_signature": N_("the file was changed or signed by another key; ask the sender for a new copy"),
    "malformed": N_("the input is not a valid Schakel object; check that you used the right file "
                    "and the values --help lists"),
    "policy_violation": N_("the network's policy does not allow this (docs/protocol.md §7)"),
    "not_found": N_("check the id (copy it from `schakel case list`, `signal list` or the command "
                    "that printed it) and the network; run `schakel sync` first"),
    "forbidden": N_("your organisation's membership does not allow this"),
    "conflict": N_("someone changed the same thing at the same time, or it exists with other "
                   "content; run `schakel sync` and try again"),
    "stale_request": N_("this computer's clock is more than 5 minutes off; correct it and retry"),
    "replayed_request": N_("try again; if it keeps happening, tell the server's operator"),
    "rate_limited": N_("too many requests; wait a while and try again"),
    "too_large": N_("the input is too large; shorten it"),
    "unavailable": N_("the server cannot take this now (busy, shutting down, or its storage is "
                      "full or failing); try again in a minute"),
    "internal_error": N_("the server failed; ask its operator to look at its log"),
    "server_misbehaviour": N_("do not trust this server's answers"),
    "context_mismatch": N_("the object belongs to another network or case than the one you named"),
    "decryption_failed": N_("this home does not hold the key, or the data was altered"),
    "bad_proof": N_("the audit log does not verify; do not trust this server's answers"),
}

#: Where the server's refusal means something else than the same code raised locally.
SERVER_HINTS: dict[str, str] = {
    "untrusted_key": N_("the server does not know your key as a member of this network: were "
                        "you added (`schakel member add`), and is the membership still valid?"),
}

#: Policy refusals (details.reason) explained for a coordinator (docs/protocol.md §7, and
#: the server's own in §15.2).
REASONS: dict[str, str] = {
    "consult-has-no-identity": N_("a consult never carries identity; create a case instead"),
    "identity-erased": N_("the person's identity in this case was erased (AVG art. 17); it is never "
                          "released or sealed again — if the person comes back, bring in a new case"),
    "not-case-owner": N_("the organisation that brought the casus in (its owner) seals, corrects "
                         "and widens it; a person's erasure (AVG art. 17) the coördinator may "
                         "also do, as the network's contact point"),
    "not-a-member": N_("the receiving partner is not a current member of this network"),
    "partner-not-member": N_("the receiving partner is not a current member of this network"),
    "recipient-not-member": N_("a recipient is not a current member of this network"),
    "recipient-not-core": N_("epoch keys go only to current core members"),
    "partner-not-shell": N_("cases are shared only with shell partners; core members see them already"),
    "partner-not-in-audience": N_("this casus is for part of the kern: its owner adds a kern member "
                                  "with `schakel case widen`, not a share"),
    "audience-not-core": N_("a casus for part of the kern names current kern (core) members only"),
    "audience-without-coordinator": N_("a casus for part of the kern always includes the "
                                       "coördinator"),
    "audience-too-large": N_("a casus for part of the kern names at most 32 members"),
    "audience-whole-core": N_("the whole kern reads this casus already"),
    "audience-nothing-added": N_("every member named reads this casus already"),
    "recipient-not-in-audience": N_("identity of a casus for part of the kern is sealed to its "
                                    "audience only"),
    "shell-without-share": N_("a shell partner needs a share of the case first (`schakel case share`)"),
    "unknown-class": N_("the network policy has no such disclosure class"),
    "class-not-in-policy": N_("the network policy has no such disclosure class"),
    "informal-class-not-allowed": N_("volunteers (informal parties) may receive only the network "
                                     "policy's informal classes (by default name, address and "
                                     "contact), never 'official'"),
    "acting-user-not-listed": N_("your organisation's membership lists the users who act for it "
                                 "(beroepskrachten and vrijwilligers), and you are not one of them"),
    "class-requires-role": N_("this class needs a role the partner does not hold (official needs "
                              "professional-secrecy, beroepsgeheim)"),
    "consent-missing": N_("record the person's consent first (`schakel consent record`)"),
    "consent-wrong-case": N_("the consent was given for another case"),
    "consent-revoked": N_("the person revoked this consent; ask for a new one"),
    "consent-not-yet-valid": N_("the consent is not in force yet"),
    "consent-expired": N_("the consent has expired; ask for a new one"),
    "consent-not-in-force": N_("the consent is not in force (expired or not yet valid)"),
    "consent-does-not-cover-grantee": N_("the consent does not name this partner or its party type"),
    "consent-not-for-receiver": N_("a referral's consent must name the receiving network's "
                                   "coordinator (--partner KEY_ID or its party type); record one that does"),
    "consent-does-not-cover-class": N_("the person did not consent to one of these classes"),
    "bemoeizorg-not-in-oggz": N_("bemoeizorg exists only in OGGZ networks"),
    "bemoeizorg-disabled": N_("this network's policy does not allow bemoeizorg"),
    "bemoeizorg-role-required": N_("only formal partners with the bemoeizorg role may invoke it"),
    "bemoeizorg-missing": N_("there is no bemoeizorg invocation by you for this"),
    "grant-not-held": N_("there is no grant with this id to you in this network; check the id"),
    "grant-requires-coordinator": N_("only the network's coordinator grants access to identity"),
    "bemoeizorg-ground-invalid": N_("use one of the grounds in the network policy"),
    "bemoeizorg-justification-missing": N_("write why there is no other way (--justification)"),
    "bemoeizorg-four-eyes-required": N_("a colleague with the bemoeizorg role must co-sign first "
                                        "(`schakel bemoeizorg cosign`)"),
    "bemoeizorg-same-person-cosign": N_("the co-signer must be a different person"),
    "bemoeizorg-cosigner-without-role": N_("the co-signer lacks the bemoeizorg role"),
    "bemoeizorg-rate-limit": N_("the daily limit of invocations per person is reached"),
    "lookup-requires-coordinator": N_("only the network's coördinator answers access requests "
                                      "(the one contact point); ask them"),
    "lookup-rate-limit": N_("the daily limit of searches by blind index in this network is "
                            "reached (every search is audited); try again tomorrow or ask the "
                            "server's operator about lookups_per_day"),
    "bemoeizorg-expired": N_("bemoeizorg access has expired; invoke again if still needed"),
    "formal-action-needs-reason": N_("say why informal help is not possible (--informal-not-possible)"),
    "formal-action-reason-says-nothing": N_("write out in a few words why informal help is not "
                                            "possible (--informal-not-possible), not a placeholder"),
    "informal-action-needs-professional": N_("name the professional who supports the volunteer "
                                             "(--supporting-professional KEY_ID)"),
    "anonymous-signals-disabled": N_("this network does not accept anonymous signals"),
    "anonymous-tokens": N_("an anonymous signal cannot carry matching tokens"),
    "signaller-kind-not-on-card": N_("the network's card lists who may signal with it; choose "
                                     "one of them (--signaller-kind)"),
    "card-expired": N_("the network's card has expired; get the current card from the network's "
                       "website or leaflet"),
    "notifications-coordinator-only": N_("the notification feed is the coördinator's "
                                         "(docs/protocol.md §15.2)"),
    "policy-dated-in-future": N_("a policy version is in force from its date: sign it dated "
                                 "now (check this computer's clock)"),
}

EPILOG = N_("""\b
Exit codes:
  0  done
  1  refused: a check failed, or the protocol or the server refused
  2  wrong usage
  3  the keystore could not be opened (wrong passphrase, no home)
  4  a key or signature is not trusted, or the server misbehaved
  5  the server could not be reached

\b
Start: schakel init --home H --name ORG --server URL --acting-user USER
Environment: SCHAKEL_HOME (the --home), SCHAKEL_PASSPHRASE (else a hidden prompt),
  SCHAKEL_AGENT (the key agent's socket: `schakel agent start`),
  SCHAKEL_LANG (nl or en, as --lang; messages are Dutch unless it or LANG asks for English)""")


def _say(line: str) -> None:
    click.echo(line, err=True)


def exit_code(error: ProtocolError) -> int:
    """The exit code of a refusal: what kind of trouble it is, not who noticed it."""
    from schakel.client.errors import ServerMisbehaviour, ServerRefused, ServerUnreachable
    from schakel.protocol.witnessing import NotWitnessedError

    if isinstance(error, ServerUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(error, ServerMisbehaviour):
        return EXIT_UNTRUSTED
    if isinstance(error, ServerRefused):
        if error.code in ("untrusted_key", "bad_signature"):
            return EXIT_UNTRUSTED
        if error.code == "unavailable":
            return EXIT_UNREACHABLE
        return EXIT_REFUSED
    if isinstance(error, KeystoreError):
        return EXIT_KEYSTORE
    if isinstance(error, (UntrustedKeyError, SignatureError, ProofError, ContextMismatchError,
                          DecryptionError, NotWitnessedError)):
        return EXIT_UNTRUSTED
    return EXIT_REFUSED


PII_HINT = N_("replace each identifier by its placeholder ([naam], [telefoon], …) as "
              "suggested, or leave it out; who the person is belongs in the sealed identity "
              "(--identity-file, --given-names …), which only releases open")
EARLY = "refused before sending: "


def fail(error: ProtocolError, *, as_json: bool = False, role: str | None = None) -> NoReturn:
    """Print a refusal a person can act on (what, why, what to do, who can act: by the
    caller's ``role`` in the network, :mod:`schakel.cli.commands.refusal`) and exit with
    its code.  With ``as_json`` the error object is also printed on standard output, and
    a PII refusal shows offsets only, never the text."""
    from schakel.cli.commands.guard import explain
    from schakel.cli.commands.output import print_json
    from schakel.cli.commands.refusal import not_trusted, who_can_act
    from schakel.client.errors import ServerMisbehaviour, ServerRefused
    from schakel.protocol.witnessing import NotWitnessedError

    details = error.details or {}
    message = error.message
    early = bool(details.get("early")) or message.startswith(EARLY)
    if message.startswith(EARLY):
        message = message[len(EARLY):]
    if as_json:
        print_json(error.to_wire())
    pii_refusal = isinstance(error, PolicyViolation) and details.get("findings") is not None
    if pii_refusal:
        _say("schakel: " + _("refused: the PII guard found identifying data in the text "
                             "(docs/protocol.md §8)"))
        for line in explain(error, with_text=not as_json):
            _say(line)
    elif isinstance(error, ServerMisbehaviour):
        if message.startswith(f"{error.what}: "):
            message = message[len(error.what) + 2:]
        _say("schakel: " + _("the server misbehaved ({what}): {message}").format(
            what=error.what, message=message))
        _say("  " + _("this was recorded in your home; nothing from this answer was believed"))
    elif isinstance(error, ServerRefused):
        _say("schakel: " + _("the server refused: {message} ({code}, HTTP {status})").format(
            message=message, code=error.code, status=error.status))
    else:
        _say("schakel: " + _("refused: {message}").format(message=message))
    if isinstance(error, NotWitnessedError):
        _say("  " + _("the network's policy requires cosignatures of its witnesses on the "
                      "log (docs/protocol.md §17.5); nothing newer was believed. Ask the "
                      "coördinator whether the witnesses run; if they do, this is a split "
                      "view: tell the network's auditor"))
    reason = details.get("reason")
    if isinstance(reason, str):
        _say("  " + (_("reason: {reason}: {explanation}").format(
            reason=reason, explanation=_(REASONS[reason])) if reason in REASONS
            else _("reason: {reason}").format(reason=reason)))
    hint: str | None = PII_HINT if pii_refusal else HINTS.get(error.code)
    if early or pii_refusal:
        _say("  " + _("nothing was sent to the server"))
    if isinstance(error, ServerRefused) and error.code in SERVER_HINTS:
        hint = SERVER_HINTS[error.code]
    hint = not_trusted(error) or (_(hint) if hint else None)
    if hint:
        _say("  " + _("what to do: {hint}").format(hint=hint))
    who = who_can_act(error, role)
    if who:
        _say("  " + _("who can act: {who}").format(who=who))
    sys.exit(exit_code(error))


def unreachable(url: str | None, error: BaseException) -> NoReturn:
    where = url or _("the configured address")
    _say("schakel: " + _("cannot reach the server at {where}: is `schakel serve` "
                         "running?").format(where=where))
    detail = getattr(error, "message", None) or str(error).strip() or type(error).__name__
    _say(f"  ({detail})")
    _say("  " + _("what to do: {hint}").format(hint=_(
        "check the address (`schakel whoami`; override with --server URL) and your network "
        "connection")))
    sys.exit(EXIT_UNREACHABLE)


#: Schakel ids are base64url: 16 bytes (22 characters) for objects, 32 bytes (43) for keys
#: and receipts.  One in 64 starts with "-", which a parser takes for an option.
DASH_ID = re.compile(r"-[A-Za-z0-9_-]{21}|-[A-Za-z0-9_-]{42}")


#: The options of ``schakel`` itself that take a value, before the subcommand's name.
GROUP_OPTIONS = ("--lang",)


def asked_language(args: list[str]) -> str | None:
    """The language ``--lang`` asks for among ``schakel``'s own options (before the
    subcommand's name), or None.  A value Schakel does not speak is left to click,
    which refuses it."""
    asked = None
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        name, equals, value = args[i].partition("=")
        if name == "--lang":
            if not equals and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            asked = value if value in LANGUAGES else asked
        i += 1
    return asked


def protect_ids(group: click.Group, ctx: click.Context, args: list[str]) -> list[str]:
    """Let an id that starts with "-" be the argument it is (``case show N -x7…``).

    Finds the command the arguments name, and when one of its positional arguments
    looks like such an id (and is no option of the command), moves the options to
    the front and the positional arguments behind ``--``, in their order. Anything
    else is left for click to parse (and to refuse with its usual message).
    """
    command: click.Command = group
    depth = 0
    while depth < len(args) and args[depth].split("=", 1)[0] in GROUP_OPTIONS:
        depth += 1 if "=" in args[depth] else 2      # ``schakel --lang en case show …``
    while isinstance(command, click.Group) and depth < len(args):
        sub = command.get_command(ctx, args[depth])
        if sub is None:
            return args
        command, depth = sub, depth + 1
    rest = args[depth:]
    takes_value: dict[str, bool] = {"--help": False, "-h": False}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                takes_value[name] = not param.is_flag and not param.count
    options: list[str] = []
    positional: list[str] = []
    moved = False
    i = 0
    while i < len(rest):
        token = rest[i]
        if token == "--":
            return args                      # the user separated them already
        name = token.split("=", 1)[0]
        if name in takes_value:
            options.append(token)
            if takes_value[name] and "=" not in token and i + 1 < len(rest):
                options.append(rest[i + 1])
                i += 1
        elif DASH_ID.fullmatch(token):
            positional.append(token)
            moved = True
        elif token.startswith("-") and token != "-":
            options.append(token)            # an unknown option: click names it
        else:
            positional.append(token)
        i += 1
    if not moved:
        return args
    return [*args[:depth], *options, "--", *positional]


@dataclass(frozen=True, slots=True)
class Lazy:
    """A command imported only when it runs or its own help is asked for: ``target`` is
    ``module:attribute``; ``help`` is its one-line help for ``schakel --help``, which
    so imports no command module (tests/test_cli_help.py keeps the two equal); ``extra``
    are subcommands (``module:attribute``) added to a group when it is loaded."""

    target: str
    help: str
    extra: tuple[str, ...] = ()


def _load(target: str) -> click.Command:
    module, _sep, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


_C = "schakel.cli.commands."

#: Every subcommand, by name.  Importing them all (and through them the client library,
#: the server and the PII guard's word lists) took most of a second before any help was
#: printed; now only the command that runs is imported.
COMMANDS: dict[str, Lazy] = {
    "agent": Lazy(_C + "agent:agent", N_("Keep your home's unlocked key for a session "
                  "(sleutelagent), as ssh-agent does.")),
    "audit": Lazy(_C + "audit:audit", N_("The audit log (auditlog): every release, refusal and "
                  "membership change, in an append-only Merkle tree signed by the server.")),
    "bemoeizorg": Lazy(_C + "bemoeizorg:bemoeizorg", N_("Bemoeizorg (outreach care without "
                       "consent, OGGZ networks only).")),
    "case": Lazy(_C + "case:case", N_("Cases (casussen): create, read, work on, close, share, "
                 "refer.")),
    "consent": Lazy(_C + "consent:consent", N_("A person's consent (toestemming) to release "
                    "identity: record, revoke.")),
    "console": Lazy(_C + "console:console", N_("Open the console: your home's signals and cases "
                    "in your browser, in Dutch.")),
    "demo": Lazy(_C + "demo:demo", N_("Play the report's practices against a real "
                 "`schakel serve`.")),
    "duties": Lazy(_C + "duties:duties", N_("Do this home's duties for a network now (also done "
                   "at every sync).")),
    "grant": Lazy(_C + "grant:grant", N_("Identity releases under consent (vrijgave): create a "
                  "grant, receive it.")),
    "init": Lazy(_C + "init:init", N_("Create your organisation's Schakel home: keys, server "
                 "address, local state.")),
    "keys": Lazy(_C + "keys:keys", N_("Your organisation's keys (sleutels): create, show, hand "
                 "over, rotate."), extra=(_C + "init:keys_bundle",)),
    "member": Lazy(_C + "member:member", N_("Members of a network (deelnemers): add, remove, "
                   "list.")),
    "network": Lazy(_C + "network:network", N_("Networks (netwerken): found one, trust and join "
                    "one, look at one."), extra=(_C + "covenant:covenant_example",)),
    "notifications": Lazy(_C + "notifications:notifications", N_("The coördinator's "
                          "notifications (meldingen), oldest first.")),
    "report": Lazy(_C + "report:report", N_("Reports (rapportage): figures for the "
                   "municipality, a person's access request.")),
    "review": Lazy(_C + "review:review", N_("Review a bemoeizorg invocation as auditor: "
                   "--approve or --question.")),
    "serve": Lazy(_C + "serve:serve", N_("Run the Schakel server until Ctrl-C or SIGTERM.")),
    "server": Lazy(_C + "serve:server", N_("Prepare, inspect, back up and restore a Schakel "
                   "server's data directory."), extra=(_C + "backup:backup_command",
                                                       _C + "backup:restore_command")),
    "signal": Lazy(_C + "signal:signal", N_("Signals of concern (signalen): send, follow, read, "
                   "answer.")),
    "sync": Lazy(_C + "network:sync", N_("Fetch, verify and decrypt what is new (bijwerken), "
                 "then do this home's duties.")),
    "witness": Lazy(_C + "witness:witness", N_("Run a witness that cosigns networks' audit logs "
                    "and refuses split views.")),
    "whoami": Lazy(_C + "init:whoami", N_("Show who this home acts as: organisation, key id, "
                   "fingerprint, server, networks, and any server misbehaviour this home "
                   "caught and recorded.")),
}


class SchakelGroup(SpokenGroup, click.Group):
    """Turns every error into a readable refusal with a meaningful exit code
    instead of a traceback (SCHAKEL_DEBUG=1 shows the traceback of a bug).

    Commands in :data:`COMMANDS` are imported on first use (a lazy group); a command
    added with ``add_command`` works as in any click group.  Its help, and every
    command's, is read in the language spoken now (:mod:`schakel.cli.helptext`), which
    ``--lang`` decides before click parses anything (:func:`asked_language`), so that
    ``schakel --lang en --help`` and click's usage errors are English too.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            asked = asked_language(args)
            if asked is not None:
                use(asked)
            args = protect_ids(self, ctx, args)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = COMMANDS.get(cmd_name)
        if lazy is not None and cmd_name not in self.commands:
            command = _load(lazy.target)
            if isinstance(command, click.Group):
                for extra in lazy.extra:
                    command.add_command(_load(extra))
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``schakel --help`` from :data:`COMMANDS`, importing none."""
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                placeholder = click.Command(name, help=_(COMMANDS[name].help))  # shortened as click does
                rows.append((name, placeholder.get_short_help_str(limit)))
        with formatter.section(_("Commands")):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit,
                KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 -- the last line of defence against tracebacks
            refuse(ctx, error)


def refuse(ctx: click.Context, error: Exception) -> NoReturn:
    """Map any error a command raised to its message and exit code (the library's and
    aiohttp's are imported here, when there is an error, not for every ``--help``)."""
    from schakel.cli.commands.common import JSON_META, SERVER_META
    from schakel.cli.commands.refusal import CALLER_META
    from schakel.client.errors import ServerUnreachable
    from schakel.protocol.pii_lexicon import LexiconUnavailable

    if isinstance(error, ServerUnreachable):
        unreachable(error.details.get("server") or ctx.meta.get(SERVER_META), error)
    if isinstance(error, ProtocolError):
        fail(error, as_json=bool(ctx.meta.get(JSON_META)), role=ctx.meta.get(CALLER_META))
    if "aiohttp" in sys.modules:        # an aiohttp error exists only once aiohttp is loaded
        import aiohttp

        if isinstance(error, (aiohttp.ClientConnectionError, aiohttp.InvalidURL)):
            unreachable(ctx.meta.get(SERVER_META), error)
        if isinstance(error, aiohttp.ClientResponseError):
            _say("schakel: " + _("the server answered HTTP {status} ({message}) at "
                                 "{where}").format(
                status=error.status, message=error.message,
                where=ctx.meta.get(SERVER_META) or _("the configured address")))
            _say("  " + _("what to do: {hint}").format(hint=_(
                "check that the address is a Schakel server (`schakel whoami`)")))
            sys.exit(EXIT_REFUSED)
    if isinstance(error, TimeoutError):     # asyncio.TimeoutError is TimeoutError
        unreachable(ctx.meta.get(SERVER_META), error)
    if isinstance(error, OSError):
        _say("schakel: " + _("refused: {message}").format(
            message=f"{error.strerror or error}"
                    f"{f' ({error.filename})' if error.filename else ''}"))
        sys.exit(EXIT_REFUSED)
    if isinstance(error, LexiconUnavailable):
        _say("schakel: " + _("refused: {message}").format(message=error) + "; "
             + _("nothing was sent to the server"))
        _say("  " + _("what to do: {hint}").format(hint=_(
            "this installation lacks the PII guard's word lists; reinstall schakel with its "
            "dependencies")))
        sys.exit(EXIT_REFUSED)
    if os.environ.get("SCHAKEL_DEBUG"):
        raise error
    _say("schakel: " + _("internal error ({kind}): {error}").format(
        kind=type(error).__name__, error=error))
    _say("  " + _("this is a bug in schakel; run again with SCHAKEL_DEBUG=1 for the "
                  "traceback and report it"))
    sys.exit(EXIT_REFUSED)


speak_for_click()


@click.group(cls=SchakelGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="schakel", help=N_("Show the version and exit."))
@click.option("--lang", type=click.Choice(LANGUAGES), default=None, metavar="nl|en",
              help="The language of messages and refusals: nl (the default) or en. "
                   "Also SCHAKEL_LANG, or LANG/LC_MESSAGES/LANGUAGE set to English.")
def main(lang: str | None) -> None:
    """Schakel: privacy-preserving case sharing for care and signalling networks.

    Partners keep their own keys; the server never reads a case. Identity is
    released only to role-holders, under consent or bemoeizorg, and every
    release is written to an audit log that auditors can verify.

    Commands that act for your organisation take --home (SCHAKEL_HOME) and
    --json; start with `schakel init`.
    """
    if lang is not None:
        use(lang)
    ctx = click.get_current_context()
    if ctx.invoked_subcommand not in ("serve", "server"):
        _client_logging()


def _client_logging() -> None:
    """The library logs retries at info level; a person needs only warnings, on stderr,
    so standard output stays clean for --json (SCHAKEL_DEBUG=1 shows everything).

    structlog is configured so when it is first imported -- the client library imports it
    at its first retry or refusal -- or now, when it is loaded already: a command that
    logs nothing never loads it (with the console printers it loads, a tenth of a second
    of every start)."""
    structlog = sys.modules.get("structlog")
    if structlog is not None:
        _configure(structlog)
    elif not any(isinstance(finder, _WhenImported) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WhenImported("structlog", _configure))


class _WhenImported:
    """Runs ``then`` on the module ``name`` right after its first import has executed it,
    before the importer gets it (a post-import hook), and then leaves the import system.
    A meta path finder, and :class:`_ThenLoader` a loader, by their methods: importing
    :mod:`importlib.abc` for their base classes would cost every start of the command line."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)       # by the finders after this one
        if spec is not None and spec.loader is not None:
            spec.loader = cast("Loader", _ThenLoader(spec.loader, self.then))
        return spec


class _ThenLoader:
    def __init__(self, loader: Loader, then: Callable[[ModuleType], None]) -> None:
        self.loader, self.then = loader, then

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.then(module)

    def __getattr__(self, name: str) -> Any:      # get_source, get_resource_reader, ...
        return getattr(self.loader, name)


def _configure(structlog: Any) -> None:
    level = logging.DEBUG if os.environ.get("SCHAKEL_DEBUG") else logging.WARNING
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.JSONRenderer(sort_keys=True)],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
