"""The worker's metrics endpoint listens on loopback unless configured otherwise."""

from __future__ import annotations

from contextlib import AsyncExitStack

import psutil

from ains.core.platform.settings import Settings
from ains.workers.worker import start_worker_metrics


async def test_worker_metrics_listen_on_loopback_by_default() -> None:
    async with AsyncExitStack() as stack:
        start_worker_metrics(0, None, stack, Settings(environment="development").worker_metrics_host)
        listening = [
            c.laddr
            for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.ip in ("0.0.0.0", "::", "127.0.0.1")
        ]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
