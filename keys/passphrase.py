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
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from schakel.protocol.crypto import random_bytes
from schakel.protocol.encoding import b64e
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


def service_passphrase(path: Path, env: str, environ: Mapping[str, str], *, create: bool,
                       who: str) -> str:
    """The passphrase of a service's keystore (the server's, a witness's): ``environ[env]``
    when set, else the text of ``path``; with ``create``, 256 random bits written to a new
    ``path`` (mode 0600, fsynced) when neither exists.  ``who`` names the service in
    errors ("server", "witness")."""
    value = environ.get(env)
    if value:
        return value
    if path.exists():
        text = path.read_text(encoding="ascii").strip()
        if not text:
            raise KeystoreError(f"{path} is empty")
        return text
    if not create:
        raise KeystoreError(f"no {who} passphrase: set {env} or restore {path}")
    text = b64e(random_bytes(32))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    return text


__all__ = ["DEFAULT_ENV", "passphrase_from", "service_passphrase"]
