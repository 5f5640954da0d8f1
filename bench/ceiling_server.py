"""The ceiling every server figure is compared with.

A bare aiohttp handler that does the least a signed append must do: read the
body, verify one Ed25519 signature over it, and insert one row into SQLite in
WAL mode with synchronous=FULL (the same durability as the Schakel server),
committing before it answers.  Nothing else: no schema, no routing logic, no
group commit.  Run as a separate process, like the real server:

    python bench/ceiling_server.py --data DIR --port PORT --key PUBLIC_KEY_HEX
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from aiohttp import web

from schakel.protocol.crypto import VerifyKey
from schakel.protocol.errors import SignatureError


def make_app(db_path: Path, key: VerifyKey) -> web.Application:
    db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")

    async def append(request: web.Request) -> web.Response:
        body = await request.read()
        signature, payload = body[:64], body[64:]
        try:
            key.verify(payload, signature)
        except SignatureError:
            return web.json_response({"error": "bad signature"}, status=401)
        cursor = db.execute("INSERT INTO events (body) VALUES (?)", (payload,))
        return web.json_response({"id": cursor.lastrowid}, status=201)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/append", append)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True, help="hex of the Ed25519 public key that signs appends")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    app = make_app(args.data / "ceiling.db", VerifyKey(bytes.fromhex(args.key)))
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
