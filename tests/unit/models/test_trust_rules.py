"""The seed's trust arithmetic and tiers, exactly."""

from __future__ import annotations

import pytest

from ains.models.trust import INITIAL_TRUST, TrustEvent, TrustTier, next_trust, tier_of


def test_initial_trust_is_half() -> None:
    assert INITIAL_TRUST == 0.5


@pytest.mark.parametrize(
    ("event", "expected"),
    [(TrustEvent.SUCCESS, 0.52), (TrustEvent.FAILURE, 0.45), (TrustEvent.TIMEOUT, 0.47)],
)
def test_event_deltas_without_history(event: TrustEvent, expected: float) -> None:
    assert next_trust(0.5, event, prior_successes=0, prior_total=0) == pytest.approx(expected)


def test_success_bonus_applies_only_while_success_rate_is_above_095() -> None:
    assert next_trust(0.5, TrustEvent.SUCCESS, prior_successes=20, prior_total=20) == pytest.approx(0.53)
    assert next_trust(0.5, TrustEvent.SUCCESS, prior_successes=96, prior_total=100) == pytest.approx(0.53)
    assert next_trust(0.5, TrustEvent.SUCCESS, prior_successes=95, prior_total=100) == pytest.approx(0.52), (
        "0.95 is not above 0.95"
    )
    assert next_trust(0.5, TrustEvent.FAILURE, prior_successes=20, prior_total=20) == pytest.approx(0.45), (
        "no bonus on failure"
    )


@pytest.mark.parametrize(
    ("score", "event", "expected"),
    [
        (0.99, TrustEvent.SUCCESS, 1.0),
        (1.0, TrustEvent.SUCCESS, 1.0),
        (0.03, TrustEvent.FAILURE, 0.0),
        (0.01, TrustEvent.TIMEOUT, 0.0),
    ],
)
def test_scores_are_clamped_to_0_1(score: float, event: TrustEvent, expected: float) -> None:
    assert next_trust(score, event, prior_successes=0, prior_total=0) == expected


def test_repeated_deltas_do_not_drift() -> None:
    score = 0.5
    for _ in range(10):
        score = next_trust(score, TrustEvent.SUCCESS, 0, 0)
    assert score == 0.7


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (1.0, TrustTier.EXCELLENT),
        (0.9, TrustTier.EXCELLENT),
        (0.89, TrustTier.GOOD),
        (0.7, TrustTier.GOOD),
        (0.69, TrustTier.AVERAGE),
        (0.5, TrustTier.AVERAGE),
        (0.49, TrustTier.BELOW_AVERAGE),
        (0.3, TrustTier.BELOW_AVERAGE),
        (0.29, TrustTier.POOR),
        (0.0, TrustTier.POOR),
    ],
)
def test_tiers(score: float, tier: TrustTier) -> None:
    assert tier_of(score) is tier


def test_override_has_no_delta() -> None:
    with pytest.raises(ValueError):
        next_trust(0.5, TrustEvent.OVERRIDE, 0, 0)
