"""Bad traffic at the HTTP edge (docs/protocol.md §14, "Connections"; ADR 0013).

What arrives below the application -- uploads cut off mid-body, request heads and bodies
that trickle in, bytes aiohttp's parser refuses, more connections than one address may
hold -- gets the same explained, bounded refusal as bad JSON does: never a 500, never a
traceback, never plain text, never a connection held open past its timeout.

One real ``schakel serve`` subprocess with short timeouts (config.json), spoken to over
raw sockets; loopback has a whole /8, so tests that count connections per address use
their own source addresses (127.0.0.x).  Waits are safety bounds, far above the timeouts
under test: the server without these deadlines held such connections for 75 s.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from multidict import CIMultiDict

from schakel.cli.serverprocess import ServerProcess
from tests.server_harness import Reply, error_shape_problems
from tests.test_server_crash import STEP_TIMEOUT

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
CAP = 16
LIMITS = {"header_timeout": HEADER_TIMEOUT, "body_timeout": BODY_TIMEOUT,
          "max_connections_per_address": CAP, "shutdown_timeout": 2.0}
#: Safety bound on a timeout under test: the timeout, the linger after an answer (2 s), and
#: a wide margin for a busy machine -- far below the 75 s such a connection used to live.
CLOSED_WITHIN = HEADER_TIMEOUT + 2.0 + 12.0
EVENTS = "/v1/networks/AAAAAAAAAAAAAAAAAAAAAA/cases/AAAAAAAAAAAAAAAAAAAAAA/events"

@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("edge")
    server = ServerProcess(root / "data", limits=LIMITS)
    try:
        server.start(timeout=STEP_TIMEOUT)
        yield server
    finally:
        server.stop()


def connect(server: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=CLOSED_WITHIN,
                                    source_address=(source, 0))
    return sock


def answer(sock: socket.socket) -> Reply:
    """Read one HTTP response from ``sock``."""
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return Reply(resp.status, CIMultiDict(resp.getheaders()), resp.read())


def ask(server: ServerProcess, raw: bytes, source: str = "127.0.0.1") -> Reply:
    with connect(server, source) as sock:
        sock.sendall(raw)
        return answer(sock)


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server still sends until it closes ``sock`` (a timeout fails)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0): a client that crashed or lost its network."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def scrape(server: ServerProcess) -> str:
    return ask(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").raw.decode()


def assert_json_refusal(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, reply
    assert not error_shape_problems(reply), (error_shape_problems(reply), reply)
    assert reply.code == code, reply
    assert reply.headers.get("X-Request-Id"), reply.headers


# --------------------------------------------------------------------------- aborted uploads


def test_aborted_uploads_are_not_server_errors(edge: ServerProcess) -> None:
    """200 uploads cut off mid-body -- reset, or half-closed -- to routes that read the
    body (unsigned and signed): 0 answers 5xx, 0 tracebacks; each is logged as 499."""
    before = scrape(edge).count('status="499"')
    for i in range(200):
        path = "/v1/networks" if i % 2 else EVENTS
        sock = connect(edge)
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 4096\r\n\r\n".encode() + b'{"genesis": {"signed": ')
        if i % 4 < 2:
            time.sleep(0.005)                    # let the server start reading the body
            reset(sock)
        else:
            sock.shutdown(socket.SHUT_WR)        # "that is all": the body ends early
            assert closed_by_server(sock) == b""
            sock.close()
    deadline = time.monotonic() + STEP_TIMEOUT
    while (metrics := scrape(edge)).count('status="499"') == before:
        assert time.monotonic() < deadline, "the aborted uploads were never logged"
        time.sleep(0.1)
    assert 'status="5' not in metrics, [m for m in metrics.splitlines() if 'status="5' in m]
    log = edge.output()
    assert "Traceback" not in log and "internal_error" not in log, log[-3000:]
    assert '"client_disconnected"' in log


# --------------------------------------------------------------------------- slow traffic


def test_a_silent_connection_is_closed_within_the_header_timeout(edge: ServerProcess) -> None:
    with connect(edge, "127.0.0.4") as sock:
        assert closed_by_server(sock) == b""     # nothing was asked: nothing is answered


def test_an_idle_keep_alive_connection_is_closed_without_an_answer(edge: ServerProcess) -> None:
    with connect(edge, "127.0.0.4") as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 200 and resp.read() == b'{"status":"ok"}'
        assert closed_by_server(sock) == b""     # no unsolicited 408 on a keep-alive


def test_a_request_head_that_stops_is_answered_408_and_closed(edge: ServerProcess) -> None:
    with connect(edge, "127.0.0.4") as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        reply = answer(sock)
        assert_json_refusal(reply, 408, "request_timeout")
        assert reply.json["error"]["details"] == {"header_timeout_ms": HEADER_TIMEOUT * 1000}
        assert closed_by_server(sock) == b""


async def test_slow_request_heads_are_closed_within_the_header_timeout(edge: ServerProcess) -> None:
    """Slowloris: 100 connections (from 10 addresses, under the cap) each sending its head
    one byte every 0.2 s are all closed by the server."""

    async def trickle(source: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port,
                                                       local_addr=(source, 0))
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

            async def drip() -> None:
                while True:
                    writer.write(b"X")
                    await asyncio.sleep(0.2)

            dripping = asyncio.create_task(drip())
            try:
                while await reader.read(65536):
                    pass
            except ConnectionResetError:
                pass
            finally:
                dripping.cancel()
        finally:
            writer.close()

    sources = [f"127.0.1.{i}" for i in range(1, 11)]
    await asyncio.wait_for(asyncio.gather(*(trickle(s) for s in sources for _ in range(10))),
                           CLOSED_WITHIN)
    assert 'schakel_connections_closed_total{reason="header_timeout"}' in scrape(edge)


def test_a_request_body_that_stops_is_answered_408_and_closed(edge: ServerProcess) -> None:
    with connect(edge, "127.0.0.4") as sock:
        sock.sendall(b"POST /v1/networks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 1000\r\n\r\n{\"genesis\": ")
        reply = answer(sock)
        assert_json_refusal(reply, 408, "request_timeout")
        assert reply.json["error"]["details"] == {"body_timeout_ms": BODY_TIMEOUT * 1000}
        assert reply.headers.get("Connection") == "close"
        assert closed_by_server(sock) == b""


# --------------------------------------------------------------------------- parser refusals

TOO_MANY_HEADERS = b"".join(b"X-H%d: 1\r\n" % i for i in range(200))
REFUSED_BY_THE_PARSER = {
    "0xff in the path": b"GET /v1/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    "too many header fields": b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + TOO_MANY_HEADERS + b"\r\n",
    "a header field too long": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: "
                               + b"a" * 10_000 + b"\r\n\r\n",
    "a request line too long": b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "no HTTP method": b"BREW /pot HTTP/1.1\r\n\r\n",
    "TLS on the HTTP port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 32,
    "a space in a header name": b"GET /healthz HTTP/1.1\r\nHo st: x\r\n\r\n",
    "a Content-Length that is not a number": b"POST /v1/networks HTTP/1.1\r\nHost: x\r\n"
                                             b"Content-Length: ten\r\n\r\n",
    "a broken chunked body": b"POST /v1/networks HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             b"application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n",
}


@pytest.mark.parametrize("raw", REFUSED_BY_THE_PARSER.values(), ids=REFUSED_BY_THE_PARSER.keys())
def test_every_parser_refusal_is_the_json_error_object(edge: ServerProcess, raw: bytes) -> None:
    with connect(edge, "127.0.0.5") as sock:
        sock.sendall(raw)
        reply = answer(sock)
        assert_json_refusal(reply, 400, "malformed")
        assert b"\xff" not in reply.raw and b"aaaa" not in reply.raw   # never the input back
        assert closed_by_server(sock) == b""


# --------------------------------------------------------------------------- the cap


def test_connections_over_the_per_address_cap_are_refused_with_429(edge: ServerProcess) -> None:
    held = [connect(edge, "127.0.0.2") for _ in range(CAP)]
    try:
        with connect(edge, "127.0.0.2") as extra:
            reply = answer(extra)                  # answered at once, nothing asked
            assert_json_refusal(reply, 429, "rate_limited")
            assert reply.headers.get("Retry-After") == "1"
            assert reply.json["error"]["details"] == {"retry_after": 1, "max_connections": CAP}
        assert ask(edge, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.3").status == 200
        for sock in held:                          # each held connection was admitted
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer(sock).status == 200
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + STEP_TIMEOUT     # the server sees the closes a bit later
    while ask(edge, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.2").status != 200:
        assert time.monotonic() < deadline, "closed connections still count against the cap"
        time.sleep(0.1)
    assert 'schakel_connections_closed_total{reason="address_cap"} 1.0' in scrape(edge)


def test_the_connection_limits_are_in_config_json(tmp_path: Path) -> None:
    """The cap and the timeouts are settings of the data directory's config.json
    (protocol.md §14, "Connections"), with their defaults written on first start."""
    from schakel.server.config import load_or_create

    written = json.loads((load_or_create(tmp_path).data_dir / "config.json").read_text())
    assert {k: written["limits"][k] for k in ("header_timeout", "body_timeout",
                                               "max_connections_per_address")} == {
        "header_timeout": 10.0, "body_timeout": 30.0, "max_connections_per_address": 256}


def test_a_second_signal_ends_a_shutdown_held_up_by_a_slow_upload(tmp_path: Path) -> None:
    """A request in progress may hold the graceful shutdown for ``shutdown_timeout``; a
    second SIGTERM ends the process at once (status 1), as ``schakel serve`` documents."""
    server = ServerProcess(tmp_path / "data",
                           limits={"body_timeout": 120.0, "shutdown_timeout": 120.0})
    try:
        server.start(timeout=STEP_TIMEOUT)
        with connect(server) as upload:
            upload.sendall(b"POST /v1/networks HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           b"application/json\r\nContent-Length: 1000\r\n\r\n{")
            time.sleep(0.2)                        # the server is reading the body
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.proc.poll() is None, "the shutdown did not wait for the upload"
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(timeout=STEP_TIMEOUT) == 1, server.tail()
    finally:
        server.stop()
