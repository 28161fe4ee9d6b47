"""Task priority: 1 (lowest) to 10 (highest), default 5, FIFO within a priority, aged so nothing starves."""

from __future__ import annotations

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
