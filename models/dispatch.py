"""Dispatch order as pure functions: which waiting task a freed slot goes to.

Higher effective priority first, then fair share across clients, then FIFO. Priority classes (the base
priorities 1-10) compete by the effective priority of their oldest waiting task (priority plus the
age-based boost, models.priority), so a low class that has waited long enough overtakes; within a class
clients take turns by weighted virtual time (start-time fair queueing, tags assigned by
core.routing.queue): a task's tag is its client's previous tag, or the queue's frontier when that is
later, plus 1 / weight. A client with 10,000 queued tasks therefore holds another client's next task back
by at most one turn per slot.
"""

from __future__ import annotations

from collections.abc import Iterable

from ains.models.priority import effective_priority


def class_order(heads: Iterable[tuple[int, float]], now: float, aging_seconds: float) -> list[int]:
    """Priority classes best first, from (priority, creation of its oldest waiting task) pairs."""
    ranked = [(effective_priority(priority, now - oldest, aging_seconds), priority) for priority, oldest in heads]
    ranked.sort(reverse=True)
    return [priority for _, priority in ranked]
