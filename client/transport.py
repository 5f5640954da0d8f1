"""The client's HTTP connection to a Schakel server (docs/protocol.md §10, §14).

Every signed request is signed with ``schakel.protocol.httpsig.sign_request`` (protocol.md
§10) over the target URI the *server* verifies (its public origin -- the base URL the
client was configured with -- plus the raw path and query), a fresh 16-byte nonce,
``created`` now, the partner's key id and the acting user.

Retries are safe because every write is idempotent on the server (protocol.md §14.3:
an identical retry answers 200 with the first answer; a release retried is decided again
and re-delivers the first answer's envelopes, §15.2): a retry is a *freshly signed*
request (new nonce and ``created``; the server refuses a replayed nonce) carrying the
same body bytes.  Retried: connection errors, timeouts, 503 ``unavailable``, 429
``rate_limited`` (after ``details.retry_after`` seconds when that is short), and one
401 ``stale_request`` (a server restarted after our ``created``).  Attempts are
bounded, with exponential backoff and jitter.

Logging: method, status and attempt only -- never a path with ids in it, a body, a
key, a signature or a receipt token.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from yarl import URL

from schakel.keys import PartnerKeys
from schakel.protocol.canonical import parse_json
from schakel.protocol.crypto import random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.httpsig import sign_request

from schakel.client.errors import ServerRefused, ServerUnreachable


def _log() -> Any:
    """The library's logger.  structlog is imported at the first retry or refusal, not
    with the library: with the console printers it loads on import it cost each start of
    the command line a tenth of a second.  An application configures structlog as before;
    the command line does it when structlog is first imported (:mod:`schakel.cli.main`)."""
    import structlog

    return structlog.get_logger("schakel.client")


JSON_TYPE = "application/json"
#: Largest answer the client parses (a sync page of 500 events of up to 64 KiB each).
MAX_ANSWER_BYTES = 64 << 20
#: Statuses that mean "try again later" (the server is shutting down or busy).
RETRY_STATUSES = frozenset({503})
#: A 429 whose ``retry_after`` is longer than this is given to the caller, not waited out.
MAX_RETRY_AFTER = 10.0


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a server URL; a path is refused (the server's public
    URL has none, and requests are signed for the origin plus the raw path)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("server URL must be http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("server URL must not have a path, query or fragment")
    return f"{parts.scheme}://{parts.netloc}"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Connection:
    """A partner's connection: an ``aiohttp.ClientSession`` (made on first use, inside
    the running loop) and the partner's keys for signing.  ``keys=None`` makes a
    connection that can only send unsigned requests (a resident's anonymous signal)."""

    def __init__(self, server: str, keys: PartnerKeys | None, acting_user: str | None, *,
                 timeout: float = 30.0, attempts: int = 4, backoff: float = 0.25) -> None:
        self.origin = origin_of(server)
        self.keys, self.acting_user = keys, acting_user
        self.timeout, self.attempts, self.backoff = timeout, max(1, attempts), backoff
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ lifecycle

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # ------------------------------------------------------------------ public API

    async def get(self, path: str, params: Mapping[str, Any] | None = None, *,
                  timeout: float | None = None) -> Any:
        """A signed GET; the JSON answer.  ``params`` become the query string."""
        return await self.request("GET", path, params=params, timeout=timeout)

    async def post(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        """A signed POST of ``body`` as JSON; the JSON answer (2xx)."""
        return await self.request("POST", path, body=body, timeout=timeout)

    async def get_unsigned(self, path: str, headers: Mapping[str, str] | None = None, *,
                           params: Mapping[str, Any] | None = None) -> Any:
        return await self.request("GET", path, params=params, headers=headers, signed=False)

    async def post_unsigned(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, body=body, signed=False)

    # ------------------------------------------------------------------ machinery

    def _target(self, path: str, params: Mapping[str, Any] | None) -> str:
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        if params:
            query = urlencode([(k, str(v)) for k, v in params.items() if v is not None])
            if query:
                path = f"{path}?{query}"
        return path

    def _headers(self, method: str, target: str, body: bytes, extra: Mapping[str, str] | None,
                 signed: bool) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = list((extra or {}).items())
        if body or method == "POST":
            headers.append(("Content-Type", JSON_TYPE))
        headers.append(("Accept", JSON_TYPE))
        if signed:
            if self.keys is None or self.acting_user is None:
                raise ValueError("this connection has no keys to sign with")
            headers += list(sign_request(method, self.origin + target, headers, body,
                                         self.keys.signer, created=int(time.time()),
                                         nonce=b64e(random_bytes(16)),
                                         acting_user=self.acting_user).items())
        return headers

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, headers: Mapping[str, str] | None = None,
                      signed: bool = True, timeout: float | None = None) -> Any:
        """Send with bounded retries; the parsed JSON answer of a 2xx, else
        :class:`ServerRefused` (or :class:`ServerUnreachable` when nothing answered)."""
        target = self._target(path, params)
        raw_body = _dumps(body) if body is not None else b""
        url = URL(self.origin + target, encoded=True)
        session = await self._client()
        total = timeout if timeout is not None else self.timeout
        stale_retried = False
        last: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            # A fresh signature each time: new nonce and ``created``; same body bytes.
            sent_headers = self._headers(method, target, raw_body, headers, signed)
            try:
                async with session.request(method, url, data=raw_body or None,
                                           headers=sent_headers, allow_redirects=False,
                                           timeout=aiohttp.ClientTimeout(total=total)) as resp:
                    status = resp.status
                    raw = await resp.read()
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                    asyncio.TimeoutError) as exc:
                last = exc
                _log().info("request failed, retrying", method=method, attempt=attempt,
                         error=type(exc).__name__)
                await self._sleep(attempt)
                continue
            if 200 <= status < 300:
                return parse_json(raw, max_bytes=MAX_ANSWER_BYTES) if raw else None
            refused = _refusal(status, raw)
            _log().info("request refused", method=method, status=status, code=refused.code,
                     attempt=attempt)
            if attempt < self.attempts:
                if status in RETRY_STATUSES:
                    last = refused
                    await self._sleep(attempt)
                    continue
                if status == 429:
                    wait = _retry_after(refused.details)
                    if wait is not None and wait <= MAX_RETRY_AFTER:
                        last = refused
                        await asyncio.sleep(wait)
                        continue
                if status == 401 and refused.code == "stale_request" and not stale_retried:
                    stale_retried = True
                    await asyncio.sleep(1.0)
                    continue
            raise refused
        if isinstance(last, ServerRefused):
            raise last
        raise ServerUnreachable(f"no answer from {self.origin} after {self.attempts} attempts "
                                f"({type(last).__name__ if last else 'unknown'})",
                                details={"server": self.origin})

    async def _sleep(self, attempt: int) -> None:
        if attempt < self.attempts:
            delay = self.backoff * (2 ** (attempt - 1))
            await asyncio.sleep(delay + random.uniform(0, delay / 2))


def _retry_after(details: Mapping[str, Any]) -> float | None:
    value = details.get("retry_after")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _refusal(status: int, raw: bytes) -> ServerRefused:
    """The server's ``error`` object as :class:`ServerRefused`; an answer that is not
    one (a proxy's HTML page) keeps only the status."""
    try:
        value = json.loads(raw)
        error = value["error"]
        code, message = error["code"], error["message"]
        details = error.get("details") or {}
        if isinstance(code, str) and isinstance(message, str) and isinstance(details, dict):
            return ServerRefused(code, status, message[:500], details)
    except (ValueError, KeyError, TypeError):
        pass
    return ServerRefused(f"http_{status}", status, f"the server answered {status}", {})


__all__ = ["Connection", "origin_of", "MAX_ANSWER_BYTES"]
