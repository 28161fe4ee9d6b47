"""Trust arithmetic from the seed rules. Pure functions: no I/O, safe inside workflows."""

from __future__ import annotations

from enum import StrEnum

INITIAL_TRUST = 0.5
SUCCESS_DELTA = 0.02
FAILURE_DELTA = -0.05
TIMEOUT_DELTA = -0.03
HIGH_SUCCESS_BONUS = 0.01
HIGH_SUCCESS_RATE = 0.95


class TrustEvent(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    OVERRIDE = "override"


class TrustTier(StrEnum):
    EXCELLENT = "excellent"
    GOOD = "good"
    AVERAGE = "average"
    BELOW_AVERAGE = "below_average"
    POOR = "poor"


_EVENT_DELTA = {
    TrustEvent.SUCCESS: SUCCESS_DELTA,
    TrustEvent.FAILURE: FAILURE_DELTA,
    TrustEvent.TIMEOUT: TIMEOUT_DELTA,
}


def clamp(score: float) -> float:
    return min(1.0, max(0.0, score))


def success_rate(successes: int, total: int) -> float:
    return successes / total if total else 0.0


def next_trust(current: float, event: TrustEvent, prior_successes: int, prior_total: int) -> float:
    """Score after ``event``, given the agent's record *before* this event.

    The +0.01 bonus rewards a success while the agent's success rate so far is above 0.95;
    an agent with no history has no rate yet, so its first success moves trust by exactly +0.02.
    Rounded to 6 places so repeated small deltas do not drift in binary floating point.
    """
    if event is TrustEvent.OVERRIDE:
        raise ValueError("overrides set a score directly; they have no delta")
    delta = _EVENT_DELTA[event]
    if (
        event is TrustEvent.SUCCESS
        and prior_total > 0
        and success_rate(prior_successes, prior_total) > HIGH_SUCCESS_RATE
    ):
        delta += HIGH_SUCCESS_BONUS
    return round(clamp(current + delta), 6)


def tier_of(score: float) -> TrustTier:
    """Tiers use two-decimal boundaries: 0.90-1.00, 0.70-0.89, 0.50-0.69, 0.30-0.49, 0.00-0.29."""
    if score >= 0.90:
        return TrustTier.EXCELLENT
    if score >= 0.70:
        return TrustTier.GOOD
    if score >= 0.50:
        return TrustTier.AVERAGE
    if score >= 0.30:
        return TrustTier.BELOW_AVERAGE
    return TrustTier.POOR
