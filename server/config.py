"""The server's configuration: where its data lives, where it listens, and its limits
(docs/protocol.md §14, "Data directory").

``DIR/config.json`` is written on first start with the values given then and read on
every later start; options given on the command line override it for that run.  The
file holds no secret.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONFIG_FILE = "config.json"
DATABASE_FILE = "schakel.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470
#: The URL schemes of ``--database`` (PostgreSQL's own two).
DATABASE_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds on everything a caller controls (style.md: bound everything)."""

    max_body: int = 1 << 20            #: request body bytes (413 above)
    max_skew: int = 300                #: seconds of clock skew for signed requests
    max_wait: int = 30                 #: seconds a sync long-poll may be held (<= 30)
    max_page: int = 500                #: items in one sync page (<= 500)
    max_receipts: int = 16             #: receipt tokens per signal (identical retries)
    max_hints_per_token: int = 20      #: cases one new token is compared against
    #: Lookups by blind index one partner may make in one network per 24 hours
    #: (docs/protocol.md §15.7); each is audited, one more is an audited denial (429).
    lookups_per_day: int = 50
    write_batch: int = 64              #: writes committed together (group commit)
    readers: int = 4                   #: reader threads (own SQLite connections)
    intake_buckets: int = 100_000      #: source addresses the intake limiter remembers
    shutdown_timeout: float = 30.0     #: seconds in-flight requests get on SIGTERM
    retention_interval: float = 300.0  #: seconds between retention passes (server/retention.py)
    #: Seconds between passes that submit each network's newest checkpoints to its policy's
    #: witnesses (server/witnessing.py, docs/protocol.md §17.5).
    witness_interval: float = 5.0
    #: Seconds after which a cosignature of an unchanged checkpoint is asked for again, so
    #: clients that count only recent ones (the policy's max_age_hours, at least 1) find it.
    witness_refresh: float = 900.0
    #: Seconds a connection has to deliver a whole request head (request line and header
    #: fields), counted from the connection opening or the previous response; an idle
    #: keep-alive connection is closed after as long (server/connections.py).
    header_timeout: float = 10.0
    #: Seconds a request body has to arrive in full once its head has (408 after).
    body_timeout: float = 30.0
    #: Connections one client address may hold open at once; more are refused (429).
    #: Behind a reverse proxy every connection comes from the proxy: raise it to match.
    max_connections_per_address: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"limit {f.name} must be a positive number")
        if not 1 <= self.max_skew <= 3600:
            raise ValueError("max_skew must be 1..3600 seconds (docs/protocol.md §10)")
        # The contract's bounds (docs/protocol.md §14); a server may only lower them.
        if self.max_wait > 30 or self.max_page > 500:
            raise ValueError("max_wait is at most 30 seconds and max_page at most 500")


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything the server reads at start-up."""

    data_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    public_url: str | None = None
    limits: Limits = field(default_factory=Limits)
    #: A PostgreSQL URL (``--database``, ``SCHAKEL_DATABASE``; ADR 0051): the server's
    #: data live there instead of in ``DIR/schakel.db``.  Never written to config.json
    #: (it may hold a password), nor shown in the configuration's repr (a traceback that
    #: prints it); given again on every start.
    database_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError("port must be 1..65535")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or \
                    parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError("public URL must be http(s)://host[:port] without a path")
        if self.database_url is not None and \
                not self.database_url.startswith(DATABASE_SCHEMES):
            raise ValueError("the database must be a postgresql:// URL (without one the "
                             "server keeps its data in DIR/schakel.db)")

    @property
    def database(self) -> Path:
        return self.data_dir / DATABASE_FILE

    @property
    def public_origin(self) -> str:
        """Scheme and authority requests are signed for (docs/protocol.md §10, step 6):
        ``--public-url`` if set, else ``http://host:port``."""
        if self.public_url is not None:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "public_url": self.public_url,
                "limits": asdict(self.limits)}

    @classmethod
    def from_json(cls, data_dir: Path, value: Any) -> "ServerConfig":
        if not isinstance(value, dict):
            raise ValueError(f"{data_dir / CONFIG_FILE} is not a JSON object")
        known = {"host", "port", "public_url", "limits"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"{data_dir / CONFIG_FILE}: unknown settings {unknown}")
        limit_names = {f.name for f in fields(Limits)}
        limits = value.get("limits", {})
        if not isinstance(limits, dict) or set(limits) - limit_names:
            raise ValueError(f"{data_dir / CONFIG_FILE}: limits must be an object of "
                             f"{sorted(limit_names)}")
        return cls(data_dir=data_dir, host=value.get("host", DEFAULT_HOST),
                   port=value.get("port", DEFAULT_PORT), public_url=value.get("public_url"),
                   limits=Limits(**limits))


def load_or_create(data_dir: Path, *, host: str | None = None, port: int | None = None,
                   public_url: str | None = None,
                   database_url: str | None = None) -> ServerConfig:
    """Read ``DIR/config.json``, creating the directory and the file on first start.

    Options that are not None override the file for this run (and are what a new file
    is written with)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / CONFIG_FILE
    if path.exists():
        config = ServerConfig.from_json(data_dir, json.loads(path.read_text(encoding="utf-8")))
    else:
        config = ServerConfig(data_dir=data_dir)
    overrides: dict[str, Any] = {k: v for k, v in
                                 (("host", host), ("port", port), ("public_url", public_url))
                                 if v is not None}
    config = replace(config, **overrides, database_url=database_url)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return config


__all__ = ["CONFIG_FILE", "DATABASE_FILE", "DEFAULT_HOST", "DEFAULT_PORT", "Limits",
           "ServerConfig", "load_or_create"]
