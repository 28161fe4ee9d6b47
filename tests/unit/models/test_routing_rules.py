"""Routing decisions as pure functions: every strategy and filter, deterministically."""

from __future__ import annotations

from collections import Counter

import pytest

from ains.models import adaptive
from ains.models.capabilities import parse_requirement
from ains.models.routing import (
    DEFAULT_OBJECTIVE,
    Candidate,
    Filter,
    LiveState,
    RoutingQuery,
    SnapshotMemo,
    Strategy,
    TagStats,
    evaluate,
)


def agent(
    agent_id: str,
    *,
    version: str = "1.0",
    available: bool = True,
    running: int = 0,
    max_concurrency: int = 4,
    trust: float = 0.5,
    avg_ms: float | None = None,
    last: float | None = None,
    tag_trust: float = 0.5,
    tag_samples: int = 0,
) -> Candidate:
    return Candidate(
        agent_id=agent_id,
        endpoint_url=f"http://127.0.0.1/{agent_id}",
        available=available,
        max_concurrency=max_concurrency,
        running=running,
        trust=trust,
        avg_response_ms=avg_ms,
        last_assigned_at=last,
        tags={"summarize": TagStats(version=version, trust=tag_trust, samples=tag_samples)},
    )


def query(strategy: Strategy = Strategy.LEAST_LOADED, requirement: str = "summarize", **extra: object) -> RoutingQuery:
    return RoutingQuery(requirements=[parse_requirement(requirement)], strategy=strategy, **extra)  # type: ignore[arg-type]


def test_least_loaded_picks_the_lowest_load_ratio() -> None:
    pool = [
        agent("a", running=2, max_concurrency=4),
        agent("b", running=1, max_concurrency=4),
        agent("c", running=3, max_concurrency=10),
    ]
    result = evaluate(pool, query())
    assert result.winner is not None and result.winner.agent_id == "b"
    assert [r.agent_id for r in result.reports] == ["b", "c", "a"]
    assert result.reports[0].score == pytest.approx(0.75)


def test_least_loaded_ties_go_to_the_least_recently_assigned() -> None:
    pool = [agent("a", last=200.0), agent("b", last=100.0), agent("c", last=300.0)]
    assert evaluate(pool, query()).winner.agent_id == "b"  # type: ignore[union-attr]


def test_round_robin_rotates_through_never_then_least_recent() -> None:
    pool = [agent("a", last=50.0), agent("b", last=None), agent("c", last=10.0)]
    result = evaluate(pool, query(Strategy.ROUND_ROBIN, now=100.0))
    assert [r.agent_id for r in result.reports] == ["b", "c", "a"]
    assert [r.score for r in result.reports] == [100.0, 90.0, 50.0], "idle seconds"
    pool[1] = agent("b", last=99.0)
    assert evaluate(pool, query(Strategy.ROUND_ROBIN, now=100.0)).winner.agent_id == "c"  # type: ignore[union-attr]


def test_fastest_response_prefers_lowest_average_and_measures_unknown_agents_first() -> None:
    pool = [agent("slow", avg_ms=900.0), agent("fast", avg_ms=40.0), agent("mid", avg_ms=200.0)]
    assert evaluate(pool, query(Strategy.FASTEST_RESPONSE)).winner.agent_id == "fast"  # type: ignore[union-attr]
    pool.append(agent("new"))
    assert evaluate(pool, query(Strategy.FASTEST_RESPONSE)).winner.agent_id == "new"  # type: ignore[union-attr]


def test_trust_weighted_is_deterministic_per_seed_and_proportional_to_trust() -> None:
    pool = [agent("low", trust=0.1), agent("high", trust=0.9)]
    first = evaluate(pool, query(Strategy.TRUST_WEIGHTED, seed="task-1:1")).winner
    again = evaluate(pool, query(Strategy.TRUST_WEIGHTED, seed="task-1:1")).winner
    assert first is not None and again is not None and first.agent_id == again.agent_id
    wins = Counter(
        evaluate(pool, query(Strategy.TRUST_WEIGHTED, seed=f"task-{i}:1")).winner.agent_id  # type: ignore[union-attr]
        for i in range(2000)
    )
    assert 0.85 < wins["high"] / 2000 < 0.95
    probabilities = {r.agent_id: r.score for r in evaluate(pool, query(Strategy.TRUST_WEIGHTED, seed="x")).reports}
    assert probabilities == {"low": pytest.approx(0.1), "high": pytest.approx(0.9)}


def test_trust_weighted_with_all_zero_trust_is_uniform() -> None:
    pool = [agent("a", trust=0.0), agent("b", trust=0.0)]
    wins = Counter(evaluate(pool, query(Strategy.TRUST_WEIGHTED, seed=str(i))).winner.agent_id for i in range(400))  # type: ignore[union-attr]
    assert 150 < wins["a"] < 250


@pytest.mark.parametrize(
    ("candidate", "extra", "expected"),
    [
        (agent("x", version="1.5"), {"requirement": "summarize>=2.0"}, Filter.VERSION),
        (agent("x"), {"excluded": frozenset({"x"})}, Filter.EXCLUDED),
        (agent("x", trust=0.4), {"min_trust": 0.6}, Filter.MIN_TRUST),
        (agent("x", available=False), {}, Filter.UNAVAILABLE),
        (agent("x", running=4, max_concurrency=4), {}, Filter.AT_CAPACITY),
    ],
)
def test_each_filter_removes_and_names_itself(candidate: Candidate, extra: dict[str, object], expected: Filter) -> None:
    ok = agent("ok", version="2.5", trust=0.8)
    result = evaluate([candidate, ok], query(**extra))  # type: ignore[arg-type]
    assert result.winner is not None and result.winner.agent_id == "ok"
    removed = next(r for r in result.reports if r.agent_id == "x")
    assert removed.eliminated_by is expected
    assert removed.detail
    assert result.counts == {expected.value: 1}


def test_agents_that_failed_the_task_are_skipped_while_others_exist() -> None:
    result = evaluate([agent("failed"), agent("fresh", running=3)], query(failed_on_task=frozenset({"failed"})))
    assert result.winner is not None and result.winner.agent_id == "fresh"


def test_a_failed_agent_gets_a_second_chance_when_it_is_the_only_capable_one() -> None:
    result = evaluate([agent("only")], query(failed_on_task=frozenset({"only"})))
    assert result.winner is not None and result.winner.agent_id == "only"


def test_busy_or_unavailable_agents_mean_wait_but_permanent_filters_mean_fail() -> None:
    busy = evaluate([agent("a", running=4, max_concurrency=4), agent("b", available=False)], query())
    assert busy.winner is None and busy.waiting_is_useful
    never = evaluate([agent("a", version="1.0")], query(requirement="summarize>=3"))
    assert never.winner is None and not never.waiting_is_useful
    too_low = evaluate([agent("a", trust=0.2)], query(min_trust=0.5))
    assert too_low.winner is None and not too_low.waiting_is_useful


def test_tag_trust_replaces_overall_trust_once_it_has_enough_samples() -> None:
    newcomer = agent("a", trust=0.9, tag_trust=0.1, tag_samples=4)
    veteran = agent("b", trust=0.9, tag_trust=0.1, tag_samples=5)
    result = evaluate([newcomer, veteran], query(min_trust=0.5))
    assert result.winner is not None and result.winner.agent_id == "a"
    assert next(r for r in result.reports if r.agent_id == "b").eliminated_by is Filter.MIN_TRUST


def test_aging_raises_priority_but_never_above_a_fresh_priority_10() -> None:
    from ains.models.priority import effective_priority, ranks_ahead

    assert effective_priority(2, 0, 60) == 2
    assert effective_priority(2, 120, 60) == 4
    assert effective_priority(2, 100_000, 60) < effective_priority(10, 0, 60)
    old_low = effective_priority(1, 600, 60)
    new_mid = effective_priority(5, 0, 60)
    assert ranks_ahead(old_low, 0.0, "a", new_mid, 600.0, "b"), "an old priority-1 task outranks a new priority-5"
    assert effective_priority(3, 10, 0) == 3, "aging disabled"


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_snapshot_memo_never_changes_a_decision(strategy: Strategy) -> None:
    # Workers keep filter verdicts and adaptive preparations per snapshot view (SnapshotMemo); decisions over
    # the same view with different live loads, failures and filters must equal those made from scratch.
    versions = ["1.0", "1.5", "2.0"]
    pool = [
        agent(
            f"a{i:03d}",
            version=versions[i % 3],
            available=i % 7 != 0,
            trust=0.3 + (i % 10) / 15,
            avg_ms=float(50 + i % 13) if i % 4 else None,
            last=float(i * 7 % 97) if i % 5 else None,
        )
        for i in range(150)
    ]
    memo = SnapshotMemo()
    for n in range(40):
        live = LiveState(running={f"a{i:03d}": (i + n) % 5 for i in range(0, 150, 3)}, last_assigned={})
        candidates = live.apply(pool, {c.agent_id: i for i, c in enumerate(pool)})
        q = query(
            strategy,
            requirement=["summarize", "summarize>=1.5", "summarize<2"][n % 3],
            min_trust=0.5 if n % 4 == 0 else None,
            excluded=frozenset({"a001", "a002"}) if n % 2 else frozenset(),
            failed_on_task=frozenset({f"a{n:03d}"}),
            seed=f"task-{n}:1",
        )
        fresh, kept = evaluate(candidates, q), evaluate(candidates, q, memo=memo)
        assert kept.winner == fresh.winner and kept.counts == fresh.counts
        assert sorted(c.agent_id for c in kept.eligible) == sorted(c.agent_id for c in fresh.eligible)
        assert [r.as_dict() for r in kept.reports] == [r.as_dict() for r in fresh.reports]


def test_a_memo_keeps_the_entries_in_use_when_tasks_bring_objectives_of_their_own() -> None:
    pool = [agent(f"a{i}") for i in range(5)]
    memo = SnapshotMemo()
    common = query(Strategy.ADAPTIVE, seed="t:0")
    evaluate(pool, common, memo=memo)
    for n in range(3 * SnapshotMemo.LIMIT):  # each task its own objective; the common one keeps being used
        own = adaptive.Objective.of(1.0, n / 100, 0.5, adaptive.scales_of(1000.0, 0.01, 0.02, 0.25))
        evaluate(pool, query(Strategy.ADAPTIVE, seed=f"t:{n}", objective=own), memo=memo)
        evaluate(pool, common, memo=memo)
    assert len(memo.adaptive) == SnapshotMemo.LIMIT
    assert ("summarize", DEFAULT_OBJECTIVE) in memo.adaptive
