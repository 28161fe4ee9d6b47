"""`ains up` as a user runs it: every listener of the stack is on 127.0.0.1, and a worker that dies is restarted
(the stack keeps serving) instead of taking the platform down; Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from ains.core.platform.metrics import free_local_port

ROOT = Path(__file__).resolve().parents[3]
STARTUP_SECONDS = 120


def _listeners(root: psutil.Process) -> set[tuple[str, int, str]]:
    found = set()
    for process in [root, *root.children(recursive=True)]:
        try:
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port, process.name()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_ains_up_binds_loopback_and_restarts_a_killed_worker(tmp_path: Path) -> None:
    ports = {name: free_local_port() for name in ("api", "demo", "temporal", "ui", "metrics")}
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AINS_DATA_DIR": str(tmp_path / "ains"),
        "AINS_API_PORT": str(ports["api"]),
        "AINS_PUBLIC_API_URL": f"http://127.0.0.1:{ports['api']}",
        "AINS_DEMO_AGENT_PORT": str(ports["demo"]),
        "AINS_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "AINS_TEMPORAL_UI_PORT": str(ports["ui"]),
        "AINS_WORKER_METRICS_PORT": str(ports["metrics"]),
        "AINS_LOG_FORMAT": "text",
    }
    for name in ("AINS_DATABASE_URL", "AINS_REDIS_URL", "AINS_TEMPORAL_NAMESPACE"):
        env.pop(name, None)
    up = subprocess.Popen(
        [sys.executable, "-m", "ains.workers.cli", "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(up.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def wait_for(fragment: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(fragment in line for line in lines):
                return
            assert up.poll() is None, "".join(lines)
            time.sleep(0.2)
        raise AssertionError(f"{fragment!r} not printed in {seconds}s:\n{''.join(lines)}")

    try:
        wait_for("Press Ctrl-C to stop.", STARTUP_SECONDS)
        api = f"http://127.0.0.1:{ports['api']}"
        assert httpx.get(f"{api}/ready", timeout=10).status_code == 200
        for _ in range(50):  # the worker's metrics listener comes up with the worker
            listening = _listeners(psutil.Process(up.pid))
            if any(port == ports["metrics"] for _, port, _ in listening):
                break
            time.sleep(0.2)
        assert {p for _, p, _ in listening} >= set(ports.values()), listening
        assert all(ip == "127.0.0.1" for ip, _, _ in listening), listening

        worker_pid = int((tmp_path / "ains" / "run" / "worker.pid").read_text())
        os.kill(worker_pid, signal.SIGKILL)  # the documented way to restart one process
        wait_for("worker restarted", 30)
        new_pid = int((tmp_path / "ains" / "run" / "worker.pid").read_text())
        assert new_pid != worker_pid and psutil.pid_exists(new_pid)
        assert up.poll() is None, "the stack stopped when its worker died"
        assert httpx.get(f"{api}/ready", timeout=10).status_code == 200
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
    assert up.returncode == 0, "".join(lines)
    assert any("stopped" in line for line in lines)
