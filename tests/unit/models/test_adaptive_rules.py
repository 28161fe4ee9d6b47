"""Adaptive routing's pure rules: evidence, feedback replacement, priors, bounded exploration, the decision."""

from __future__ import annotations

from collections import Counter

import pytest

from ains.models import adaptive
from ains.models.capabilities import parse_requirement
from ains.models.routing import Candidate, Filter, RoutingQuery, Strategy, TagStats, evaluate

SCALES = adaptive.scales_of(1000.0, 0.01, 0.02, 0.25)


def evidence_of(
    qualities: list[float], latency_ms: float = 200.0, cost: float = 0.0, discount: float = 0.9
) -> adaptive.Evidence:
    evidence = adaptive.Evidence()
    for q in qualities:
        evidence = adaptive.observe(evidence, adaptive.Observation(q, latency_ms, cost), discount)
    return evidence


def agent(
    agent_id: str,
    qualities: list[float] | None = None,
    *,
    latency_ms: float = 200.0,
    price: float | None = None,
    running: int = 0,
    available: bool = True,
    trust: float = 0.5,
) -> Candidate:
    evidence = evidence_of(qualities, latency_ms) if qualities else None
    learned = adaptive.posterior(evidence, trust, latency_ms if qualities else None, price, False)
    return Candidate(
        agent_id=agent_id,
        endpoint_url=f"http://127.0.0.1/{agent_id}",
        available=available,
        max_concurrency=2,
        running=running,
        trust=trust,
        avg_response_ms=None,
        last_assigned_at=None,
        tags={"summarize": TagStats("1.0", trust, 0, learned)},
    )


def decide(
    candidates: list[Candidate],
    seed: str,
    quality: float = 1.0,
    latency: float = 0.0,
    cost: float = 0.0,
    **extra: object,
) -> str | None:
    query = RoutingQuery(
        requirements=[parse_requirement("summarize")],
        strategy=Strategy.ADAPTIVE,
        seed=seed,
        objective=adaptive.Objective.of(quality, latency, cost, SCALES),
        **extra,  # type: ignore[arg-type]
    )
    winner = evaluate(candidates, query).winner
    return winner.agent_id if winner else None


def test_an_updated_score_replaces_the_old_contribution_exactly() -> None:
    # Feedback of 0.3 on observation 2, later changed to 0.8: the same as if 0.8 had been observed there.
    sent = evidence_of([1.0, 1.0, 1.0, 0.0])
    replaced = adaptive.replace_quality(sent, 2, 1.0, 0.3, 0.9)
    replaced = adaptive.replace_quality(replaced, 2, 0.3, 0.8, 0.9)
    assert replaced.quality == pytest.approx(evidence_of([1.0, 0.8, 1.0, 0.0]).quality)
    assert replaced.weight == sent.weight and replaced.n == 4


def test_recent_evidence_weighs_more() -> None:
    got_worse = adaptive.posterior(evidence_of([1.0] * 20 + [0.0] * 10), 0.5, 200.0, None, False)
    got_better = adaptive.posterior(evidence_of([0.0] * 10 + [1.0] * 20), 0.5, 200.0, None, False)
    assert got_worse.quality < 0.5 < got_better.quality
    assert got_worse.weight == pytest.approx((1 - 0.9**30) / (1 - 0.9))


def test_a_new_agent_starts_from_its_trust() -> None:
    assert adaptive.posterior(None, 0.9, None, None, False).quality == pytest.approx(0.9)
    assert adaptive.posterior(None, 0.5, None, None, False).quality == pytest.approx(0.5)
    assert adaptive.posterior(None, 0.5, 300.0, 0.004, False).latency_ms == pytest.approx(300.0)
    assert adaptive.posterior(None, 0.5, None, 0.004, False).cost == 0.004


def test_exploration_is_bounded_and_decays_with_evidence() -> None:
    new = adaptive.posterior(None, 0.5, None, None, False).utilities(SCALES)
    some = adaptive.posterior(evidence_of([1.0, 0.0] * 3), 0.5, 200.0, None, False).utilities(SCALES)
    lots = adaptive.posterior(evidence_of([1.0] * 2000, discount=1.0), 0.5, 200.0, None, False).utilities(SCALES)
    assert new.quality_sd == 0.25  # capped: Beta(1, 1) has sd 0.29
    assert 0.02 < some.quality_sd < new.quality_sd
    assert lots.quality_sd == 0.02  # floored: never certain enough to stop looking


def test_decisions_are_reproducible_per_seed_and_vary_across_seeds() -> None:
    candidates = [agent(f"a{i}") for i in range(5)]
    assert decide(candidates, "t1:1") == decide(candidates, "t1:1")
    assert len({decide(candidates, f"t{i}:1") for i in range(50)}) > 1


def test_the_agent_with_better_quality_wins_most_decisions() -> None:
    candidates = [agent("good", [0.9] * 30), agent("poor", [0.4] * 30), agent("new")]
    wins = Counter(decide(candidates, f"t{i}:1") for i in range(300))
    assert wins["good"] > 250 and wins["poor"] < 5
    assert wins["new"] > 0  # an unknown agent still gets tried


def test_the_objective_picks_the_cheap_agent_or_the_fast_one() -> None:
    cheap = agent("cheap", [0.8] * 30, latency_ms=1500.0, price=0.0005)
    fast = agent("fast", [0.8] * 30, latency_ms=100.0, price=0.01)
    by_cost = Counter(decide([cheap, fast], f"t{i}:1", quality=0.3, cost=0.7) for i in range(100))
    by_latency = Counter(decide([cheap, fast], f"t{i}:1", quality=0.3, latency=0.7) for i in range(100))
    assert by_cost["cheap"] > 95 and by_latency["fast"] > 95


def test_filters_apply_before_sampling() -> None:
    best = agent("best", [1.0] * 30)
    candidates = [
        best,
        agent("busy", [1.0] * 30, running=2),
        agent("down", [1.0] * 30, available=False),
        agent("other", [0.2] * 30),
    ]
    assert decide(candidates, "t:1", excluded=frozenset({"best"})) == "other"
    evaluation = evaluate(
        candidates,
        RoutingQuery([parse_requirement("summarize")], Strategy.ADAPTIVE, seed="t:1"),
    )
    assert evaluation.winner is best
    removed = {r.agent_id: r.eliminated_by for r in evaluation.reports}
    assert removed["busy"] is Filter.AT_CAPACITY and removed["down"] is Filter.UNAVAILABLE


def test_a_decision_samples_only_candidates_whose_bound_could_still_win() -> None:
    # 200 candidates, more than SAMPLED_LIMIT: the winner's sampled objective is the best of every draw made,
    # and no candidate left out had a bound above it.
    candidates = [agent(f"a{i:03d}", [i / 200] * 20) for i in range(200)]
    posteriors = [c.tags["summarize"].learned for c in candidates]
    assert all(p is not None for p in posteriors)
    objective = adaptive.Objective.of(1.0, 0.0, 0.0, SCALES)
    ranking = adaptive.rank([p for p in posteriors if p], [c.agent_id for c in candidates], objective, "s", 50)
    winner, score = ranking.ranked[0]
    sampled = [i for i, d in ranking.draws.items() if d.objective is not None]
    assert all(ranking.draws[i].objective <= score for i in sampled)  # type: ignore[operator]
    assert all(ranking.draws[i].bound < score for i in ranking.draws if i not in sampled)
    assert len(sampled) < 200 and candidates[winner].agent_id >= "a100"


def test_the_receipt_explains_each_candidate() -> None:
    candidates = [agent("a", [0.9] * 10, price=0.002), agent("b")]
    query = RoutingQuery([parse_requirement("summarize")], Strategy.ADAPTIVE, seed="t:1")
    reports = {r.agent_id: r.as_dict() for r in evaluate(candidates, query).reports}
    figures = reports["a"]["adaptive"]
    assert isinstance(figures, dict)
    assert figures["tag"] == "summarize" and figures["cost_usd"]["mean"] == 0.002
    assert set(figures["quality"]) == {"mean", "sd", "sampled"} and figures["evidence"] > 0
    assert set(figures["objective"]) == {"mean", "sampled", "bound"}
