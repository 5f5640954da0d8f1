"""The ``schakel`` command line: one entry point, a subcommand per job.

Output is a readable table by default and JSON with ``--json``.  Errors are one
paragraph a coordinator can act on — what was refused, why, what to do — never
a traceback.  Exit codes (also in ``schakel --help``):

  0  done
  1  refused: a check failed or the protocol refused (details on stderr)
  2  wrong usage (unknown option, missing argument)
  3  the keystore could not be opened (wrong passphrase, damaged or missing file)
  4  a key or signature is not trusted (fingerprint mismatch, bad signature)
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from client.commands.demo import demo
from client.commands.keys import keys
from client.commands.serve import serve, server
from protocol.errors import KeystoreError, ProtocolError, SignatureError, UntrustedKeyError

EXIT_REFUSED, EXIT_KEYSTORE, EXIT_UNTRUSTED = 1, 3, 4

#: What a person can do about each kind of refusal (by wire error code).
HINTS: dict[str, str] = {
    "keystore_error": "check the passphrase (or SCHAKEL_PASSPHRASE) and the --keystore path",
    "untrusted_key": "compare the fingerprint again with the owner of the key, aloud",
    "bad_signature": "the file was changed or signed by another key; ask the sender for a new copy",
    "malformed": "the input is not a valid Schakel object; check that you used the right file",
    "policy_violation": "the network's policy does not allow this; see docs/protocol.md",
}

EPILOG = """\b
Exit codes:
  0  done
  1  refused: a check failed or the protocol refused
  2  wrong usage
  3  the keystore could not be opened
  4  a key or signature is not trusted
"""


def fail(error: ProtocolError) -> NoReturn:
    """Print a refusal a person can act on and exit with its code."""
    click.echo(f"schakel: refused: {error.message}", err=True)
    hint = HINTS.get(error.code)
    if hint:
        click.echo(f"  what to do: {hint}", err=True)
    if isinstance(error, KeystoreError):
        sys.exit(EXIT_KEYSTORE)
    if isinstance(error, (UntrustedKeyError, SignatureError)):
        sys.exit(EXIT_UNTRUSTED)
    sys.exit(EXIT_REFUSED)


class SchakelGroup(click.Group):
    """Turns every ProtocolError into a readable refusal instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProtocolError as error:
            fail(error)
        except OSError as error:
            click.echo(f"schakel: refused: {error.strerror or error}"
                       f"{f' ({error.filename})' if error.filename else ''}", err=True)
            sys.exit(EXIT_REFUSED)


@click.group(cls=SchakelGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="schakel")
def main() -> None:
    """Schakel: privacy-preserving case sharing for care and signalling networks.

    Partners keep their own keys; the server never reads a case. Identity is
    released only to role-holders, under consent or bemoeizorg, and every
    release is written to an audit log that auditors can verify.
    """


main.add_command(keys)
main.add_command(demo)
main.add_command(serve)
main.add_command(server)


if __name__ == "__main__":  # pragma: no cover
    main()
