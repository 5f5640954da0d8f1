"""The key agent: one home's unlocked keystore key, kept in memory for a session (ADR 0023).

Unlocking a keystore costs one Argon2id run (256 MiB, about a second); a tutorial of
twenty commands would pay it twenty times.  ``schakel agent start`` pays it once and keeps
the resulting :class:`~schakel.keys.keystore.KeystoreKey` in the memory of a small process
that hands it to the commands of the same user over a Unix socket, as gpg-agent caches a
passphrase.  It forgets the key after ``ttl`` seconds without use and at the latest
``max_ttl`` seconds after the unlock, and never writes it anywhere.

Where the socket is: ``$SCHAKEL_AGENT`` when set (``agent start`` prints it in shell
syntax, for ``eval``), else one path per home, ``<runtime>/agent-<hash of the home>.sock``
where ``<runtime>`` is ``$XDG_RUNTIME_DIR/schakel`` or ``<tmp>/schakel-<uid>``.  That
directory must be the user's own, mode 0700 (a directory another user made or opened up
is refused, not repaired); the socket is made 0600.  Both sides check the other's uid
with ``SO_PEERCRED``: the agent answers only its own user, and a command hands a key
(``add``) only to an agent of its own user.

The wire format (docs/implementation.md, "The key agent"): one connection per request,
one line of JSON each way, at most :data:`MAX_MESSAGE_BYTES`::

    -> {"v": 1, "op": "status"}
    <- {"ok": true, "status": {...}}            (:class:`AgentStatus`)
    -> {"v": 1, "op": "key", "key_id": K, "salt": S}
    <- {"ok": true, "key": "<32 bytes b64url>"}
    -> {"v": 1, "op": "add", "key_id": K, "salt": S, "key": "<b64url>"}
    <- {"ok": true}
    -> {"v": 1, "op": "stop"}
    <- {"ok": true}
    <- {"ok": false, "error": {"code": C, "message": M}}     C: locked, other-keystore,
                                                            bad-key, malformed, refused
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import resource
import signal
import socket
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from schakel.protocol.canonical import canonical_json, parse_json
from schakel.protocol.crypto import ARGON2ID_SALT_BYTES, KEY_BYTES
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import KeystoreError, MalformedError

from schakel.keys.keystore import KeystoreInfo, KeystoreKey, load_keystore

#: The environment variable naming the agent's socket (``eval $(schakel agent start)``).
AGENT_ENV = "SCHAKEL_AGENT"
VERSION = 1
#: Every message, either way, is one line of at most this many bytes.
MAX_MESSAGE_BYTES = 2048
#: Seconds a peer has to send its request, and a command waits for the agent's answer.
IO_TIMEOUT = 2.0
#: Seconds between the agent's checks of its timers and of a stop signal.
POLL = 0.2
#: Connections the agent serves at once, each on its own short-lived thread (a slow or
#: silent peer holds one for at most IO_TIMEOUT); more are closed unanswered.
MAX_PEERS = 16
#: Longest text in an error answer that a command repeats to its user.
MAX_ERROR_CHARS = 300

_OPS: dict[str, frozenset[str]] = {
    "status": frozenset(),
    "key": frozenset({"key_id", "salt"}),
    "add": frozenset({"key_id", "salt", "key"}),
    "stop": frozenset(),
}


class AgentError(Exception):
    """The agent could not help; the message says why and never holds a secret."""


class AgentUnreachable(AgentError):
    """No agent of this user answers at the socket: absent, stale, not private, or not
    speaking this protocol."""


class AgentStale(AgentUnreachable):
    """A socket file is there but nothing listens: its agent stopped or was killed."""


class AgentLocked(AgentError):
    """The agent runs but holds no key: it forgot it (idle or maximum time)."""


# ----------------------------------------------------------------------------- where


def runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's private directory for agent sockets."""
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "schakel"
    return Path(tempfile.gettempdir()) / f"schakel-{os.getuid()}"


def home_socket(home: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Path:
    """The well-known socket path of the agent for ``home`` (one per home directory)."""
    digest = hashlib.sha256(os.fsencode(Path(home).resolve())).hexdigest()[:16]
    return runtime_dir(environ) / f"agent-{digest}.sock"


def agent_socket(home: str | os.PathLike[str],
                 environ: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """(socket path, named): ``$SCHAKEL_AGENT`` when set (named), else the home's path."""
    environ = os.environ if environ is None else environ
    named = environ.get(AGENT_ENV, "")
    if named:
        return Path(named), True
    return home_socket(home, environ), False


def check_private_dir(directory: Path, *, create: bool = False) -> None:
    """Refuse a socket directory that is not this user's own with mode 0700 (a directory
    another user made, or a symbolic link, could hand our socket to someone else)."""
    if create:
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as error:
            raise AgentError(f"cannot make the agent's directory {directory}: "
                             f"{error.strerror}") from None
    try:
        info = os.lstat(directory)
    except OSError as error:
        raise AgentUnreachable(f"{directory}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise AgentUnreachable(f"{directory} is not a directory (a link or file is refused)")
    if info.st_uid != os.getuid():
        raise AgentUnreachable(f"{directory} belongs to uid {info.st_uid}, not to you "
                               f"(uid {os.getuid()}); remove it")
    if info.st_mode & 0o077:
        raise AgentUnreachable(f"{directory} has mode {stat.S_IMODE(info.st_mode):04o}: other "
                               f"users can reach it; it must be 0700")


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


# ----------------------------------------------------------------------------- messages


def send(conn: socket.socket, message: Mapping[str, Any]) -> None:
    data = canonical_json(dict(message)) + b"\n"
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError("agent message too large")   # our own bug, never a peer's input
    conn.sendall(data)


def receive(conn: socket.socket) -> dict[str, Any]:
    """One message: a line of strict JSON holding an object, within the size bound.
    :class:`MalformedError` for anything else; :class:`OSError` (a timeout) when the peer
    is too slow."""
    data = bytearray()
    while b"\n" not in data:
        chunk = conn.recv(MAX_MESSAGE_BYTES + 1 - len(data))
        if not chunk:
            raise MalformedError("the connection closed before a whole message")
        data += chunk
        if len(data) > MAX_MESSAGE_BYTES:
            raise MalformedError(f"message longer than {MAX_MESSAGE_BYTES} bytes")
    line, _, rest = bytes(data).partition(b"\n")
    if rest:
        raise MalformedError("one message per connection")
    value = parse_json(line, max_bytes=MAX_MESSAGE_BYTES, max_depth=4)
    if not isinstance(value, dict):
        raise MalformedError("a message is a JSON object")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A validated request: ``op`` and, for ``key`` and ``add``, which keystore."""

    op: str
    key_id: str = ""
    salt: bytes = b""
    key: bytes = b""

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "Request":
        if value.get("v") != VERSION or isinstance(value.get("v"), bool):
            raise MalformedError(f"unknown agent protocol version (this agent speaks {VERSION})")
        op = value.get("op")
        if not isinstance(op, str) or op not in _OPS:
            raise MalformedError(f"unknown op; one of {', '.join(sorted(_OPS))}")
        if set(value) != {"v", "op"} | _OPS[op]:
            raise MalformedError(f"{op} takes exactly: {', '.join(sorted(_OPS[op])) or 'nothing'}")
        key_id = value.get("key_id", "")
        if op in ("key", "add"):
            b64d(key_id, max_length=64, what="key_id")
        salt = b64d(value["salt"], length=ARGON2ID_SALT_BYTES, what="salt") if "salt" in value \
            else b""
        key = b64d(value["key"], length=KEY_BYTES, what="key") if "key" in value else b""
        return cls(op=op, key_id=key_id, salt=salt, key=key)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=0).isoformat()


def _checked(value: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    item = value.get(name)
    if isinstance(item, bool) and kind is not bool:
        raise MalformedError(f"status.{name} has the wrong type")
    if not isinstance(item, kind):
        raise MalformedError(f"status.{name} has the wrong type")
    if isinstance(item, str) and len(item) > MAX_ERROR_CHARS:
        raise MalformedError(f"status.{name} is too long")
    return item


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatus:
    """What ``schakel agent status`` shows.  ``unlocks`` counts the Argon2id runs that
    armed the agent (one at start, one per command that re-armed it after it forgot);
    ``keys_served`` the keys it handed to commands, each of which skipped Argon2id."""

    pid: int
    home: str
    key_id: str
    unlocked: bool
    unlocks: int
    keys_served: int
    refused_peers: int
    started_at: str
    forgets_at: str | None
    ttl_seconds: int
    max_ttl_seconds: int
    dumpable: bool

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, value: Any) -> "AgentStatus":
        if not isinstance(value, dict) or set(value) != set(cls.__slots__):
            raise MalformedError("not an agent status")
        forgets = value.get("forgets_at")
        if forgets is not None:
            _checked(value, "forgets_at", str)
        return cls(pid=_checked(value, "pid", int), home=_checked(value, "home", str),
                   key_id=_checked(value, "key_id", str),
                   unlocked=_checked(value, "unlocked", bool),
                   unlocks=_checked(value, "unlocks", int),
                   keys_served=_checked(value, "keys_served", int),
                   refused_peers=_checked(value, "refused_peers", int),
                   started_at=_checked(value, "started_at", str), forgets_at=forgets,
                   ttl_seconds=_checked(value, "ttl_seconds", int),
                   max_ttl_seconds=_checked(value, "max_ttl_seconds", int),
                   dumpable=_checked(value, "dumpable", bool))


# ----------------------------------------------------------------------------- the client side


def call(path: Path, request: Mapping[str, Any], *, timeout: float = IO_TIMEOUT) -> dict[str, Any]:
    """Send one request to the agent at ``path``; its ``ok`` answer.

    Refuses (:class:`AgentUnreachable`) a socket that is not this user's own in a private
    directory, or whose listening process runs as another user, before sending anything.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise AgentUnreachable(f"no agent socket at {path}") from None
    except OSError as error:
        raise AgentUnreachable(f"{path}: {error.strerror}") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise AgentUnreachable(f"{path} is not a socket")
    if info.st_uid != os.getuid():
        raise AgentUnreachable(f"{path} belongs to uid {info.st_uid}, not to you")
    check_private_dir(path.parent)
    if not hasattr(socket, "SO_PEERCRED"):
        raise AgentUnreachable("this platform cannot tell which user runs the agent "
                               "(SO_PEERCRED); not asking it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(str(path))
        except ConnectionRefusedError:
            raise AgentStale(f"no agent listens at {path} any more (a stale socket: the "
                             f"agent stopped or was killed)") from None
        except OSError as error:
            raise AgentUnreachable(f"cannot connect to {path}: {error.strerror or error}") from None
        uid = peer_uid(conn)
        if uid != os.getuid():
            raise AgentUnreachable(f"the process at {path} runs as uid {uid}, not as you; "
                                   f"not trusting it")
        try:
            send(conn, {"v": VERSION, **request})
            answer = receive(conn)
        except MalformedError as error:
            raise AgentUnreachable(f"the agent at {path} answered something else than the "
                                   f"agent protocol ({error.message})") from None
        except OSError as error:
            raise AgentUnreachable(f"the agent at {path} did not answer "
                                   f"({error.strerror or 'timed out'})") from None
    if answer.get("ok") is True:
        return answer
    refusal = answer.get("error")
    code = refusal.get("code") if isinstance(refusal, dict) else None
    message = refusal.get("message") if isinstance(refusal, dict) else None
    if not isinstance(code, str) or not isinstance(message, str):
        raise AgentUnreachable(f"the agent at {path} answered something else than the agent "
                               f"protocol")
    message = message[:MAX_ERROR_CHARS]
    if code == "locked":
        raise AgentLocked(message)
    raise AgentError(f"the agent refused ({code[:40]}): {message}")


def fetch_key(path: Path, info: KeystoreInfo) -> KeystoreKey:
    """The key of the keystore ``info`` describes, from the agent at ``path``."""
    answer = call(path, {"op": "key", "key_id": info.key_id, "salt": b64e(info.salt)})
    try:
        if set(answer) != {"ok", "key"}:
            raise MalformedError("unexpected fields")
        return KeystoreKey(info.salt, b64d(answer["key"], length=KEY_BYTES, what="key"))
    except MalformedError as error:
        raise AgentUnreachable(f"the agent at {path} sent no valid key ({error.message})") from None


def offer_key(path: Path, info: KeystoreInfo, key: KeystoreKey) -> None:
    """Arm the agent at ``path`` again with a key this command derived (it checks it)."""
    call(path, {"op": "add", "key_id": info.key_id, "salt": b64e(key.salt),
                "key": b64e(key.secret)})


def agent_status(path: Path) -> AgentStatus:
    answer = call(path, {"op": "status"})
    try:
        return AgentStatus.from_json(answer.get("status"))
    except MalformedError as error:
        raise AgentUnreachable(f"the agent at {path} sent a malformed status "
                               f"({error.message})") from None


def stop_agent(path: Path) -> None:
    call(path, {"op": "stop"})


# ----------------------------------------------------------------------------- the agent


def harden_process() -> bool:
    """No core dumps, and (Linux) not dumpable: another process of the same user cannot
    ptrace this one or read its memory through /proc.  True when that took effect."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)                       # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        return False
    return not is_dumpable()


def is_dumpable() -> bool:
    try:
        return bool(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))   # PR_GET_DUMPABLE
    except (OSError, AttributeError):
        return True


class Agent:
    """What the agent holds: one keystore's key while unlocked, its timers and counters.

    ``clock`` (monotonic seconds) decides when the key is forgotten; ``wall`` only
    shows those moments to people.
    """

    def __init__(self, *, home: Path, keystore: Path, info: KeystoreInfo, ttl: float,
                 max_ttl: float, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.home, self.keystore, self.info = home, keystore, info
        self.ttl, self.max_ttl = ttl, max_ttl
        self._clock, self._wall = clock, wall
        self._key: bytearray | None = None
        self._unlocked_at = self._used_at = 0.0
        self.started_at = wall()
        self.unlocks = self.keys_served = self.refused_peers = 0
        self.stopping = False
        self._lock = threading.Lock()          # connections are answered on threads

    def locked(self) -> threading.Lock:
        """The lock that guards the key, the timers and the counters."""
        return self._lock

    @property
    def unlocked(self) -> bool:
        return self._key is not None

    def unlock(self, key: KeystoreKey) -> None:
        """Keep ``key`` after checking that it opens the keystore (no Argon2id here)."""
        if key.salt != self.info.salt:
            raise KeystoreError("the key belongs to another keystore")
        load_keystore(self.keystore, key)
        self.forget()
        self._key = bytearray(key.secret)
        self._unlocked_at = self._used_at = self._clock()
        self.unlocks += 1

    def forget(self) -> None:
        """Drop the key, overwriting this copy (Python may hold others: ADR 0023)."""
        if self._key is not None:
            self._key[:] = bytes(len(self._key))
        self._key = None

    def _deadline(self) -> float:
        return min(self._used_at + self.ttl, self._unlocked_at + self.max_ttl)

    def tick(self) -> None:
        """Forget the key when its idle time or its maximum lifetime has passed."""
        if self._key is not None and self._clock() >= self._deadline():
            self.forget()

    def status(self) -> AgentStatus:
        forgets = (self._wall() + self._deadline() - self._clock()) if self.unlocked else None
        return AgentStatus(pid=os.getpid(), home=str(self.home), key_id=self.info.key_id,
                           unlocked=self.unlocked, unlocks=self.unlocks,
                           keys_served=self.keys_served, refused_peers=self.refused_peers,
                           started_at=_iso(self.started_at),
                           forgets_at=None if forgets is None else _iso(forgets),
                           ttl_seconds=int(self.ttl), max_ttl_seconds=int(self.max_ttl),
                           dumpable=is_dumpable())

    def answer(self, request: Request) -> dict[str, Any]:
        with self._lock:
            return self._answer(request)

    def _answer(self, request: Request) -> dict[str, Any]:
        self.tick()
        if request.op == "status":
            return {"ok": True, "status": self.status().to_json()}
        if request.op == "stop":
            self.stopping = True
            return {"ok": True}
        if request.key_id != self.info.key_id or request.salt != self.info.salt:
            return _refusal("other-keystore", f"this agent serves the keystore of {self.home} "
                                              f"(key id {self.info.key_id}), not this one")
        if request.op == "add":
            try:
                self.unlock(KeystoreKey(request.salt, request.key))
            except KeystoreError:
                return _refusal("bad-key", "the key does not open this agent's keystore")
            return {"ok": True}
        if self._key is None:
            return _refusal("locked", "the agent has forgotten the key (unused for "
                                      f"{duration_text(self.ttl)} or unlocked more than "
                                      f"{duration_text(self.max_ttl)} ago)")
        self._used_at = self._clock()
        self.keys_served += 1
        return {"ok": True, "key": b64e(bytes(self._key))}

    def serve_one(self, conn: socket.socket) -> None:
        """Answer one connection: refuse a peer of another user, bound and validate the
        request, answer it.  Never raises for what a peer sends."""
        conn.settimeout(IO_TIMEOUT)
        try:
            if peer_uid(conn) != os.getuid():
                with self._lock:
                    self.refused_peers += 1
                send(conn, _refusal("refused", "this agent answers only its own user"))
                return
            try:
                request = Request.from_json(receive(conn))
            except MalformedError as error:
                send(conn, _refusal("malformed", error.message[:MAX_ERROR_CHARS]))
                return
            send(conn, self.answer(request))
        except OSError:
            return          # the peer went away or was too slow: nothing to answer


def _refusal(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def duration_text(seconds: float) -> str:
    """``900`` -> ``15 min``: a duration as people read it."""
    s = int(seconds)
    if s % 3600 == 0:
        return f"{s // 3600} h"
    if s % 60 == 0:
        return f"{s // 60} min"
    return f"{s} s"


def bind(path: Path) -> tuple[socket.socket, str | None]:
    """A listening socket at ``path`` (mode 0600, in a private directory), and a note
    when a stale socket of a dead agent was removed.  Refuses when an agent answers, and on
    a platform that cannot tell who connects (no ``SO_PEERCRED``)."""
    if not hasattr(socket, "SO_PEERCRED"):
        raise AgentError("this platform cannot tell which user connects to a socket "
                         "(SO_PEERCRED); the agent does not run here")
    check_private_dir(path.parent, create=True)
    note = None
    if os.path.lexists(path):
        try:
            status = agent_status(path)
        except AgentStale:
            os.unlink(path)
            note = f"removed the stale socket {path} of an agent that stopped or was killed"
        except AgentUnreachable as error:
            raise AgentError(f"cannot use {path}: {error}") from None
        else:
            raise AgentError(f"an agent already runs for {status.home} at {path} (pid "
                             f"{status.pid}); stop it with `schakel agent stop` first")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)             # the socket is born 0600: no window with other modes
    try:
        listener.bind(str(path))
    except OSError as error:
        listener.close()
        raise AgentError(f"cannot listen at {path}: {error.strerror or error}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    listener.listen(16)
    return listener, note


def run(listener: socket.socket, path: Path, agent: Agent) -> None:
    """Serve until ``stop`` or SIGTERM/SIGINT/SIGHUP; then forget the key and remove the
    socket (if it is still ours)."""
    inode = os.stat(path).st_ino

    def stop(signum: int, frame: FrameType | None) -> None:
        agent.stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    listener.settimeout(POLL)
    peers = threading.BoundedSemaphore(MAX_PEERS)

    def serve(conn: socket.socket) -> None:
        try:
            with conn:
                agent.serve_one(conn)
        finally:
            peers.release()

    try:
        while not agent.stopping:
            with agent.locked():
                agent.tick()
            try:
                conn, _ = listener.accept()
            except (TimeoutError, InterruptedError):
                continue
            if not peers.acquire(blocking=False):
                conn.close()                    # too many at once: no answer, no thread
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    finally:
        listener.close()
        _drain(peers)
        with agent.locked():
            agent.forget()
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except OSError:
            pass



def _drain(peers: threading.BoundedSemaphore) -> None:
    """Wait (at most :data:`IO_TIMEOUT`) until every connection taken is answered: the
    one that asked the agent to stop is still sending its ``ok`` when the loop ends, and
    the process must not exit under it."""
    deadline = time.monotonic() + IO_TIMEOUT
    for _ in range(MAX_PEERS):
        if not peers.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return


__all__ = ["AGENT_ENV", "Agent", "AgentError", "AgentLocked", "AgentStale",
           "AgentStatus", "AgentUnreachable", "MAX_MESSAGE_BYTES", "Request", "agent_socket", "agent_status",
           "bind", "call", "check_private_dir", "duration_text", "fetch_key", "harden_process", "home_socket",
           "offer_key", "run", "runtime_dir", "stop_agent"]
