"""A partner's home directory (ADR 0007, "Home directory").

    HOME/keystore.json   schakel-keystore/v1 (schakel.keys.save_keystore; Argon2id, mode 0600)
    HOME/client.json     {"format", "name", "key_id", "server", "acting_user",
                          "trusted": {network id: coordinator fingerprint digits}}
    HOME/state.db        the local state (client/state.py), sealed to the keystore's box key

``client.json`` holds no secret but it does hold the trust anchors, so it is written
atomically with mode 0600 like the keystore: a half-written file must never lose an
anchor, and another local user must not be able to swap one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schakel.protocol.errors import MalformedError

from schakel.client.transport import origin_of

FORMAT = "schakel-client/v1"
KEYSTORE = "keystore.json"
CONFIG = "client.json"
STATE = "state.db"


@dataclass
class ClientConfig:
    """The contents of ``client.json``."""

    name: str
    key_id: str
    server: str
    acting_user: str
    trusted: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, "key_id": self.key_id,
                "server": self.server, "acting_user": self.acting_user,
                "trusted": dict(sorted(self.trusted.items()))}

    @classmethod
    def from_json(cls, value: Any, where: Path) -> "ClientConfig":
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            raise MalformedError(f"{where} is not a Schakel client configuration")
        try:
            trusted = value.get("trusted", {})
            if not isinstance(trusted, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in trusted.items()):
                raise TypeError
            config = cls(name=str(value["name"]), key_id=str(value["key_id"]),
                         server=str(value["server"]), acting_user=str(value["acting_user"]),
                         trusted=dict(trusted))
        except (KeyError, TypeError):
            raise MalformedError(f"{where}: missing or malformed fields") from None
        origin_of(config.server)
        return config


class Home:
    """Paths of one home directory, and ``client.json`` reading and writing."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def keystore(self) -> Path:
        return self.path / KEYSTORE

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def state_file(self) -> Path:
        return self.path / STATE

    def exists(self) -> bool:
        return self.keystore.exists()

    def prepare(self) -> None:
        """Make the directory (mode 0700) for a new partner; refuse one in use."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for existing in (self.keystore, self.config_file, self.state_file):
            if existing.exists():
                raise MalformedError(f"{existing} already exists: this home is in use")

    def read_config(self) -> ClientConfig:
        try:
            raw = self.config_file.read_bytes()
        except FileNotFoundError:
            raise MalformedError(f"no {CONFIG} in {self.path}: run `schakel init` first") from None
        try:
            value = json.loads(raw)
        except ValueError:
            raise MalformedError(f"{self.config_file} is not JSON") from None
        return ClientConfig.from_json(value, self.config_file)

    def write_config(self, config: ClientConfig) -> None:
        data = (json.dumps(config.to_json(), indent=2, ensure_ascii=False) + "\n").encode()
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{CONFIG}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.config_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


__all__ = ["Home", "ClientConfig", "KEYSTORE", "CONFIG", "STATE", "FORMAT"]
