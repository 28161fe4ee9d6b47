"""`ains up`'s supervisor with real child processes: a crashed process is restarted with backoff and logged,
one that keeps crashing stops the stack with its log's last lines, and Ctrl-C (the stop event) ends it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from ains.workers.supervisor import Child, GaveUp, RestartPolicy, supervise

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
CRASHER = [sys.executable, "-c", "import sys; print('boom: cannot start', flush=True); sys.exit(3)"]


def _fast() -> RestartPolicy:
    return RestartPolicy(initial_backoff_seconds=0.1, max_backoff_seconds=0.4, window_seconds=30, max_crashes=3)


def test_backoff_doubles_and_gives_up_when_crashes_crowd_the_window() -> None:
    policy = RestartPolicy(initial_backoff_seconds=1, max_backoff_seconds=5, window_seconds=60, max_crashes=4)
    assert [policy.delay_after_crash(t) for t in (0, 1, 2, 3)] == [1, 2, 4, 5]
    assert policy.delay_after_crash(4) is None  # a fifth crash within a minute: it keeps crashing
    calm = RestartPolicy(initial_backoff_seconds=1, window_seconds=60, max_crashes=2)
    assert [calm.delay_after_crash(t) for t in (0, 100, 200)] == [1, 1, 1]  # crashes far apart: never gives up


async def test_a_killed_process_is_restarted_and_logged(tmp_path: Path) -> None:
    child = Child("worker", SLEEPER, tmp_path / "worker.log", dict(os.environ), tmp_path / "run" / "worker.pid")
    stop = asyncio.Event()
    said: list[str] = []
    supervisor = asyncio.create_task(supervise([child], stop, said.append, _fast, poll_seconds=0.05))
    try:
        first = child.process.pid
        assert (tmp_path / "run" / "worker.pid").read_text().strip() == str(first)
        os.kill(first, signal.SIGKILL)  # how a user restarts one process: kill $(cat .ains/run/worker.pid)
        for _ in range(100):
            if child.process.pid != first and child.running():
                break
            await asyncio.sleep(0.05)
        assert child.process.pid != first and child.running() and child.restarts == 1
        assert (tmp_path / "run" / "worker.pid").read_text().strip() == str(child.process.pid)
        assert any("worker exited with code -9; restarting" in line for line in said), said
        assert any("worker restarted" in line for line in said), said
    finally:
        stop.set()
        await supervisor
        child.stop()
    assert not supervisor.exception()
    assert not (tmp_path / "run" / "worker.pid").exists()


async def test_a_process_that_keeps_crashing_stops_the_stack_with_its_log(tmp_path: Path) -> None:
    healthy = Child("api", SLEEPER, tmp_path / "api.log", dict(os.environ))
    crashing = Child("demo-agent", CRASHER, tmp_path / "demo-agent.log", dict(os.environ))
    said: list[str] = []
    try:
        with pytest.raises(GaveUp) as gave_up:
            await asyncio.wait_for(
                supervise([healthy, crashing], asyncio.Event(), said.append, _fast, poll_seconds=0.05), 20
            )
        assert gave_up.value.child is crashing and crashing.restarts == 3
        assert "keeps crashing" in said[-1] and "boom: cannot start" in said[-1], said[-1]
        assert healthy.running() and healthy.restarts == 0
    finally:
        healthy.stop()
        crashing.stop()
