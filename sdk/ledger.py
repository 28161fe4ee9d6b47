"""What an agent remembers between deliveries: signatures already used (replays) and the calls it has run,
keyed by (task id, attempt), so a call AINS delivers again (its worker died mid-call) is answered from the
first run instead of doing the work twice."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

CallKey = tuple[str, int]


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]


class SeenSignatures:
    """Signatures seen within the freshness window; older ones are refused as stale anyway."""

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def first_use(self, signature: str, now: float | None = None) -> bool:
        current = time.time() if now is None else now
        while self._expiry and next(iter(self._expiry.values())) < current:
            self._expiry.popitem(last=False)
        if signature in self._expiry:
            return False
        self._expiry[signature] = current + 2 * self._window  # the timestamp may lie up to a window ahead
        return True


class CallLedger:
    """(task id, attempt) -> the run doing that call. Runs are tasks of their own: a delivery whose connection
    drops does not cancel the work, and a later delivery of the same call waits for the same run."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._runs: OrderedDict[CallKey, asyncio.Task[Answer]] = OrderedDict()
        self.executions: dict[CallKey, int] = {}

    def run(self, key: CallKey, work: Callable[[], Coroutine[Any, Any, Answer]]) -> asyncio.Task[Answer]:
        existing = self._runs.get(key)
        if existing is not None:
            return existing
        self.executions[key] = self.executions.get(key, 0) + 1
        task = asyncio.get_running_loop().create_task(work())
        self._runs[key] = task
        self._forget_oldest()
        return task

    def run_of(self, task_id: str, attempt: int) -> asyncio.Task[Answer]:
        """The run of this call (KeyError if it never reached this agent)."""
        return self._runs[(task_id, attempt)]

    def __contains__(self, key: CallKey) -> bool:
        return key in self._runs

    def _forget_oldest(self) -> None:
        while len(self._runs) > self._limit:
            key, task = next(iter(self._runs.items()))
            if not task.done():
                return  # never forget a run in progress
            del self._runs[key]
            self.executions.pop(key, None)
