"""Keeping the processes of `ains up` running: a child that exits unexpectedly is restarted with backoff.

``RestartPolicy`` decides (pure, by the clock it is given): the n-th crash within ``window_seconds`` waits
``initial_backoff * 2**(n-1)`` seconds (capped) before the restart; more than ``max_crashes`` crashes within
the window means the process keeps crashing, and the supervisor gives up, printing the last lines of its log.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ains.workers.child_processes import die_with_parent

STOP_TIMEOUT_SECONDS = 20
LOG_TAIL_LINES = 20


@dataclass
class RestartPolicy:
    initial_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    window_seconds: float = 60.0
    max_crashes: int = 5
    _crashes: deque[float] = field(default_factory=deque)

    def delay_after_crash(self, now: float) -> float | None:
        """Seconds to wait before restarting after a crash at ``now``; None: it keeps crashing, give up."""
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.window_seconds:
            self._crashes.popleft()
        if len(self._crashes) > self.max_crashes:
            return None
        delay: float = self.initial_backoff_seconds * 2 ** (len(self._crashes) - 1)
        return min(self.max_backoff_seconds, delay)


class Child:
    """One child process with its log file (appended to across restarts) and a pid file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_file: Path,
        env: dict[str, str],
        pid_file: Path | None = None,
        restart: bool = True,
    ) -> None:
        self.name = name
        self.restart_on_exit = restart
        self.args = args
        self.env = env
        self.log_file = log_file
        self.pid_file = pid_file
        self.restarts = 0
        self._log = log_file.open("ab")
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # A session of its own: Ctrl-C reaches only `ains up`, which stops children in order.
        process = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        if self.pid_file is not None:
            self.pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(f"{process.pid}\n")
        return process

    def running(self) -> bool:
        return self.process.poll() is None

    def restart(self) -> None:
        self.restarts += 1
        self.process = self._spawn()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        self._log.flush()
        try:
            text = self.log_file.read_bytes()[-64_000:].decode("utf-8", "replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def stop(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)


class GaveUp(Exception):
    """A supervised process kept crashing."""

    def __init__(self, child: Child) -> None:
        super().__init__(f"{child.name} keeps crashing")
        self.child = child


async def supervise(
    children: list[Child],
    stop: asyncio.Event,
    say: Callable[[str], None],
    policy: Callable[[], RestartPolicy] = RestartPolicy,
    poll_seconds: float = 0.5,
) -> None:
    """Restart any of ``children`` that exits until ``stop`` is set; raise GaveUp when one keeps crashing."""
    policies = {child.name: policy() for child in children}
    due: dict[str, float] = {}  # name -> monotonic time of its pending restart
    while not stop.is_set():
        now = time.monotonic()
        for child in children:
            if child.name in due:
                if now >= due[child.name]:
                    del due[child.name]
                    child.restart()
                    say(f"{child.name} restarted (pid {child.process.pid}, restart #{child.restarts})")
                continue
            if child.running():
                continue
            code = child.process.returncode
            if not child.restart_on_exit:
                tail = "\n".join(f"    {line}" for line in child.log_tail())
                say(f"{child.name} exited with code {code}; stopping. Last lines of {child.log_file}:\n{tail}")
                raise GaveUp(child)
            delay = policies[child.name].delay_after_crash(now)
            if delay is None:
                tail = "\n".join(f"    {line}" for line in child.log_tail())
                say(
                    f"{child.name} exited with code {code} and keeps crashing "
                    f"({policies[child.name].max_crashes}+ times in {policies[child.name].window_seconds:.0f}s); "
                    f"giving up. Last lines of {child.log_file}:\n{tail}"
                )
                raise GaveUp(child)
            say(f"{child.name} exited with code {code}; restarting in {delay:.0f}s (log: {child.log_file})")
            due[child.name] = now + delay
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
        except TimeoutError:
            pass
