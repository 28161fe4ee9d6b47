"""`ains api` keeps idle client connections open for AINS_API_KEEPALIVE_SECONDS (uvicorn's own default is 5 s, shorter
than a load balancer's idle timeout, which makes the balancer reuse connections the API is closing: 502s)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.faults.faultkit import dead_port, kill

IDLE_SECONDS = 6.5  # past uvicorn's default of 5 s


def _get_health(conn: socket.socket) -> bytes:
    """One whole response (head and Content-Length body): a single recv may end before the body, whose bytes
    would then be read as the next request's response."""
    conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data  # closed by the server
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "ains api exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("ains api did not start listening")


def test_an_idle_keep_alive_connection_is_still_served_after_uvicorns_default(tmp_path: Path) -> None:
    port = dead_port()
    env = {
        **os.environ,
        "AINS_API_HOST": "127.0.0.1",
        "AINS_API_PORT": str(port),
        "AINS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        "AINS_DATA_DIR": str(tmp_path),
        "AINS_TEMPORAL_ADDRESS": f"127.0.0.1:{dead_port()}",
        "AINS_REDIS_URL": "",
        "AINS_API_KEEPALIVE_SECONDS": "30",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ains.workers.cli", "api"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for_port(port, process)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            assert _get_health(conn).startswith(b"HTTP/1.1 200"), "first request"
            time.sleep(IDLE_SECONDS)
            assert _get_health(conn).startswith(b"HTTP/1.1 200"), "the idle connection was closed"
    finally:
        kill(process)
