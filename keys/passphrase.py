"""Where a keystore passphrase comes from: an environment variable or a prompt.

The environment and the prompt function are parameters (explicit dependencies),
so tests and non-interactive runs (``SCHAKEL_PASSPHRASE=... schakel ...``) need
no monkeypatching.  An environment variable is convenient for scripts and CI,
but is visible to other processes of the same user (``/proc/<pid>/environ``);
the prompt is the default for people.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping

from schakel.protocol.errors import KeystoreError

#: The default environment variable holding a passphrase.
DEFAULT_ENV = "SCHAKEL_PASSPHRASE"


def passphrase_from(env: str | None = DEFAULT_ENV, prompt: str | None = "Passphrase: ", *,
                    confirm: bool = False,
                    environ: Mapping[str, str] | None = None,
                    ask: Callable[[str], str] = getpass.getpass) -> str:
    """Return a passphrase from ``environ[env]`` if set and non-empty, else ask.

    ``env=None`` skips the environment; ``prompt=None`` forbids prompting (then
    a missing variable is an error).  With ``confirm=True`` (creating a
    keystore) a prompted passphrase is asked twice and must match.  An empty
    passphrase is a :class:`KeystoreError`.
    """
    environ = os.environ if environ is None else environ
    if env is not None:
        value = environ.get(env)
        if value:
            return value
    if prompt is None:
        raise KeystoreError(f"no passphrase: set the environment variable {env}"
                            if env else "no passphrase given")
    try:
        value = ask(prompt)
        if confirm and ask("Repeat passphrase: ") != value:
            raise KeystoreError("the passphrases do not match")
    except EOFError:
        raise KeystoreError("no passphrase entered") from None
    if not value:
        raise KeystoreError("empty passphrase")
    return value


__all__ = ["DEFAULT_ENV", "passphrase_from"]
