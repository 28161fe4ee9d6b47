"""Task priority: 1 (lowest) to 10 (highest), default 5, FIFO within a priority, aged so nothing starves."""

from __future__ import annotations

from temporalio.common import Priority

MIN_PRIORITY = 1
MAX_PRIORITY = 10
DEFAULT_PRIORITY = 5


# Aged tasks stop just below the top level: a priority-10 task always goes first, and below that a task
# that waited long enough outranks newer ones of any lower priority, so nothing below 10 starves.
AGED_CEILING = MAX_PRIORITY - 0.5


def effective_priority(priority: int, waited_seconds: float, aging_seconds: float) -> float:
    """Priority plus one level per ``aging_seconds`` waited, capped just below the top priority."""
    if aging_seconds <= 0:
        return float(priority)
    boosted = priority + max(waited_seconds, 0.0) / aging_seconds
    return boosted if priority >= MAX_PRIORITY else min(boosted, AGED_CEILING)


def ranks_ahead(
    other_priority: float, other_created: float, other_id: str, mine_priority: float, mine_created: float, mine_id: str
) -> bool:
    """Whether another waiting task goes before this one: higher effective priority, then older, then id."""
    return (-other_priority, other_created, other_id) < (-mine_priority, mine_created, mine_id)


def priority_key(priority: float) -> int:
    """Temporal priority key (1 runs first) for an AINS priority: 10 -> 1, 1 -> 10, aged values clamp at 1."""
    return max(1, min(MAX_PRIORITY, MAX_PRIORITY + 1 - int(priority)))


# Temporal limits a fairness key to 64 bytes; client ids are at most 64 characters of [A-Za-z0-9._-].
FAIRNESS_KEY_BYTES = 64


def task_queue_priority(priority: float, client_id: str) -> Priority:
    """Temporal task-queue priority of a task's workflow and agent calls: its (aged) priority, and its client
    as the fairness key, so a client's backlog on a worker queue cannot starve another's at the same level."""
    return Priority(
        priority_key=priority_key(priority),
        fairness_key=client_id.encode()[:FAIRNESS_KEY_BYTES].decode(errors="ignore"),
    )
