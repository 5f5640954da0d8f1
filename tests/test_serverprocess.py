"""The one helper that runs ``schakel serve`` as a child process
(:mod:`schakel.cli.serverprocess`), where the demo and the tests that use it would not
notice it going wrong: a port taken between picking and binding, a server that cannot
start, a server that does not stop on SIGTERM, a restart that must keep its URL."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from schakel.cli import serverprocess
from schakel.cli.serverprocess import ServerDidNotStart, ServerProcess, free_port


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_port_taken_between_picking_and_binding_is_tried_once_more(
        tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    picks = iter([taken_port, free_port()])
    monkeypatch.setattr(serverprocess, "free_port", lambda: next(picks))
    server = ServerProcess(tmp_path / "data")
    try:
        url = server.start()
        assert server.port != taken_port and url == f"http://127.0.0.1:{server.port}"
        assert server.healthy()
    finally:
        server.stop()


def test_a_chosen_port_that_is_taken_is_not_swapped_for_another(
        tmp_path: Path, taken_port: int) -> None:
    """A caller that named the port (or restarts on it) gets that port or an error with
    the server's own words, never a server on another URL."""
    server = ServerProcess(tmp_path / "data", port=taken_port)
    try:
        with pytest.raises(ServerDidNotStart, match="did not come up; its log:"):
            server.start()
        assert server.port == taken_port and not server.running
    finally:
        server.stop()


def test_a_server_that_cannot_start_says_why_with_its_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.json").write_text(json.dumps({"public_url": "ftp://x/path"}))
    server = ServerProcess(data)
    try:
        with pytest.raises(ServerDidNotStart) as refused:
            server.start()
        assert "public URL" in str(refused.value)      # serve's usage error, from the log
        assert not server.running
    finally:
        server.stop()


def test_init_gives_the_fingerprint_and_a_restart_keeps_the_url(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    fingerprint = server.init()
    assert fingerprint and fingerprint == server.fingerprint
    try:
        first = server.start()
        assert server.stop() == 0                      # SIGTERM: a clean shutdown
        assert server.start() == first and server.healthy()
    finally:
        server.stop()
    assert server.output().count(f"Schakel server on {first}") == 2   # one log, both runs


def test_stop_kills_a_server_whose_shutdown_outlasts_the_bound(tmp_path: Path) -> None:
    """An upload in progress holds a graceful shutdown up to ``shutdown_timeout``; stop()
    does not wait that long."""
    server = ServerProcess(tmp_path / "data",
                           limits={"body_timeout": 120.0, "shutdown_timeout": 120.0})
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as upload:
            upload.sendall(b"POST /v1/networks HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           b"application/json\r\nContent-Length: 1000\r\n\r\n{")
            time.sleep(0.2)                            # the server is reading the body
            assert server.stop(timeout=1.0) == -signal.SIGKILL
    finally:
        server.stop()
