"""Routing rules as pure functions: filter candidate agents, score them by a strategy, explain the choice.

No I/O here: core/routing/candidates.py loads the candidates, core/routing/decide.py stores the receipt. Keeping
the decision pure makes every strategy and filter deterministic and testable without a database.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from ains.models import adaptive
from ains.models.agents import kind_of_endpoint
from ains.models.capabilities import CapabilityRequirement

# Per-capability trust replaces the overall score once the agent has this many tasks for the tag.
MIN_TAG_SAMPLES = 5
RECEIPT_CANDIDATE_LIMIT = 50


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    TRUST_WEIGHTED = "trust_weighted"
    FASTEST_RESPONSE = "fastest_response"
    ADAPTIVE = "adaptive"


class Filter(StrEnum):
    """Why a candidate was removed, in the order the filters apply."""

    VERSION = "version"
    EXCLUDED = "excluded"
    MIN_TRUST = "min_trust"
    UNAVAILABLE = "unavailable"
    ALREADY_FAILED = "already_failed"
    AT_CAPACITY = "at_capacity"


# Filters whose verdict cannot change by waiting: when they remove everyone, the task fails at once.
PERMANENT_FILTERS = frozenset({Filter.VERSION, Filter.EXCLUDED, Filter.MIN_TRUST})


@dataclass(frozen=True, slots=True)
class TagStats:
    version: str
    trust: float
    samples: int
    learned: adaptive.Posterior | None = None  # adaptive routing's posterior (core.routing.adaptive attaches it)


@dataclass(frozen=True, slots=True)
class Candidate:
    agent_id: str
    endpoint_url: str
    available: bool
    max_concurrency: int
    running: int
    trust: float
    avg_response_ms: float | None
    last_assigned_at: float | None  # epoch seconds; None = never assigned
    tags: dict[str, TagStats]
    registered_at: float = 0.0  # epoch seconds

    def effective_trust(self, tags: list[str]) -> float:
        """Mean over the required tags of the tag's trust (once it has enough samples) or the overall trust."""
        if not tags:
            return self.trust
        if len(tags) == 1:  # the common case, without building a list per candidate
            stats = self.tags.get(tags[0])
            return round(stats.trust if stats is not None and stats.samples >= MIN_TAG_SAMPLES else self.trust, 6)
        values = [
            self.tags[t].trust if t in self.tags and self.tags[t].samples >= MIN_TAG_SAMPLES else self.trust
            for t in tags
        ]
        return round(sum(values) / len(values), 6)


@dataclass
class CandidateReport:
    agent_id: str
    eliminated_by: Filter | None
    detail: str
    trust: float
    running: int
    max_concurrency: int
    score: float | None = None
    adaptive: dict[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        extra = {"adaptive": self.adaptive} if self.adaptive is not None else {}
        return {
            **extra,
            "agent_id": self.agent_id,
            "eliminated_by": self.eliminated_by.value if self.eliminated_by else None,
            "detail": self.detail,
            "trust": self.trust,
            "running": self.running,
            "max_concurrency": self.max_concurrency,
            "score": self.score,
        }


@dataclass
class RoutingQuery:
    requirements: list[CapabilityRequirement]
    strategy: Strategy
    min_trust: float | None = None
    excluded: frozenset[str] = frozenset()
    failed_on_task: frozenset[str] = frozenset()
    seed: str = ""
    now: float = 0.0  # epoch seconds, supplied by the caller so the decision stays a pure function
    objective: adaptive.Objective | None = None  # the adaptive strategy's (None: the default objective)


@dataclass(frozen=True)
class LiveState:
    """What changes between decisions, layered over (possibly cached) candidates without copying them."""

    running: dict[str, int]
    last_assigned: dict[str, float]

    def apply(self, candidates: list[Candidate], index: dict[str, int] | None = None) -> list[Candidate]:
        """Candidates whose load or assignment time differs, replaced; the rest reused as they are.

        With ``index`` (agent id -> position), ``candidates`` are taken to carry no load of their own (a
        snapshot) and only the agents named in this live state are looked at, not every candidate.
        """
        if index is None:
            return [self._updated(c) for c in candidates]
        updated = list(candidates)
        for agent_id in self.running.keys() | self.last_assigned.keys():
            position = index.get(agent_id)
            if position is not None:
                updated[position] = self._updated(updated[position])
        return updated

    def _updated(self, c: Candidate) -> Candidate:
        running = self.running.get(c.agent_id, 0)
        last = self.last_assigned.get(c.agent_id)
        if running == c.running and (last is None or last == c.last_assigned_at):
            return c
        # Positional construction: dataclasses.replace costs several times more.
        return Candidate(
            c.agent_id,
            c.endpoint_url,
            c.available,
            c.max_concurrency,
            running,
            c.trust,
            c.avg_response_ms,
            last if last is not None else c.last_assigned_at,
            c.tags,
            c.registered_at,
        )


@dataclass
class Evaluation:
    winner: Candidate | None
    reports: list[CandidateReport]
    waiting_is_useful: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    eligible: list[Candidate] = field(default_factory=list)  # every eligible candidate, unordered
    total: int = 0

    def summary(self) -> str:
        parts = [f"{n} {name.replace('_', ' ')}" for name, n in sorted(self.counts.items()) if n]
        return ", ".join(parts) if parts else "none removed"


@dataclass(frozen=True, slots=True)
class _Checks:
    """A query's filters in the shape the per-candidate loop wants (it runs for hundreds of agents)."""

    versions: tuple[tuple[str, CapabilityRequirement | None], ...]  # requirement None: any version will do
    excluded: frozenset[str]
    min_trust: float | None
    failed: frozenset[str]

    @classmethod
    def of(cls, query: RoutingQuery) -> _Checks:
        return cls(
            versions=tuple((r.tag, r if r.spec else None) for r in query.requirements),
            excluded=query.excluded,
            min_trust=query.min_trust,
            failed=query.failed_on_task,
        )


def _static_eliminator(checks: _Checks) -> Callable[[Candidate, float], Filter | None]:
    """The filters that depend on the registry alone (versions, exclusions, min_trust, availability), as one
    function of (candidate, its trust). A closure, so the hot loop reads the query's values from local cells."""
    versions = checks.versions
    excluded = checks.excluded
    min_trust = checks.min_trust

    def eliminate(candidate: Candidate, trust: float) -> Filter | None:
        tags = candidate.tags
        for tag, requirement in versions:
            stats = tags.get(tag)
            if stats is None or (requirement is not None and not requirement.accepts(stats.version)):
                return Filter.VERSION
        if candidate.agent_id in excluded:
            return Filter.EXCLUDED
        if min_trust is not None and trust < min_trust:
            return Filter.MIN_TRUST
        if not candidate.available:
            return Filter.UNAVAILABLE
        return None

    return eliminate


def _live_verdict(candidate: Candidate, failed: frozenset[str]) -> Filter | None:
    """The filters that depend on this task's earlier attempts and the agent's live load."""
    if candidate.agent_id in failed:
        return Filter.ALREADY_FAILED
    if candidate.running >= candidate.max_concurrency:
        return Filter.AT_CAPACITY
    return None


def _eliminator(checks: _Checks) -> Callable[[Candidate, float], Filter | None]:
    """Every filter of ``checks``, in order: which one removes the candidate, if any."""
    static = _static_eliminator(checks)
    failed = checks.failed

    def eliminate(candidate: Candidate, trust: float) -> Filter | None:
        return static(candidate, trust) or _live_verdict(candidate, failed)

    return eliminate


@dataclass(frozen=True, slots=True)
class _StaticVerdicts:
    passing: list[int]  # positions that pass every registry filter
    removed: list[tuple[int, Filter]]
    counts: dict[Filter, int]


@dataclass
class SnapshotMemo:
    """What decisions over one snapshot view may reuse: filter verdicts that depend on the registry alone and
    the adaptive strategy's preparations. Positions are the view's, so a memo lives exactly as long as its view.
    """

    # Entries per kind, least recently used dropped first: tasks with objectives or filters of their own add
    # entries, and must not push out the ones every other task uses.
    LIMIT: ClassVar[int] = 32

    static: OrderedDict[tuple[object, ...], _StaticVerdicts] = field(default_factory=OrderedDict)
    adaptive: OrderedDict[tuple[str | None, adaptive.Objective], adaptive.Prepared] = field(default_factory=OrderedDict)


def _recall(table: OrderedDict[Any, Any], key: object) -> Any:
    found = table.get(key)
    if found is not None:
        table.move_to_end(key)
    return found


def _remember(table: OrderedDict[Any, Any], key: object, value: object) -> None:
    table[key] = value
    if len(table) > SnapshotMemo.LIMIT:
        table.popitem(last=False)


def _filter(
    candidates: list[Candidate], trust: dict[str, float], checks: _Checks, memo: SnapshotMemo | None
) -> tuple[list[int], list[tuple[int, Filter]], dict[Filter, int]]:
    """Every candidate through every filter: eligible positions, removed (position, filter), counts per filter.

    With ``memo`` the registry filters' verdicts are computed once per view and only the live filters run
    per decision (this runs for every candidate of every decision).
    """
    key = (tuple((tag, str(r.spec) if r else "") for tag, r in checks.versions), checks.excluded, checks.min_trust)
    static: _StaticVerdicts | None = _recall(memo.static, key) if memo is not None else None
    if static is None:
        eliminate = _static_eliminator(checks)
        passing: list[int] = []
        removed: list[tuple[int, Filter]] = []
        counts: dict[Filter, int] = {}
        for i, c in enumerate(candidates):
            why = eliminate(c, trust[c.agent_id])
            if why is None:
                passing.append(i)
            else:
                removed.append((i, why))
                counts[why] = counts.get(why, 0) + 1
        static = _StaticVerdicts(passing, removed, counts)
        if memo is not None:
            _remember(memo.static, key, static)
    eligible_at: list[int] = []
    removed = list(static.removed)
    counts = dict(static.counts)
    failed = checks.failed
    for i in static.passing:
        live = _live_verdict(candidates[i], failed)
        if live is None:
            eligible_at.append(i)
        else:
            removed.append((i, live))
            counts[live] = counts.get(live, 0) + 1
    return eligible_at, removed, counts


def _detail(candidate: Candidate, why: Filter | None, query: RoutingQuery, trust: float) -> str:
    """Human-readable reason; only computed for the candidates that make it into the receipt."""
    if why is Filter.VERSION:
        wanted = ", ".join(f"{r.tag}{r.spec}" for r in query.requirements)
        have = ", ".join(f"{t} {s.version}" for t, s in sorted(candidate.tags.items()))
        return f"needs {wanted}, has {have}"
    if why is Filter.EXCLUDED:
        return "excluded by the task"
    if why is Filter.MIN_TRUST:
        return f"trust {trust:.3f} below min_trust {query.min_trust:.3f}"
    if why is Filter.UNAVAILABLE:
        return "marked unavailable"
    if why is Filter.ALREADY_FAILED:
        return "already failed an earlier attempt of this task"
    if why is Filter.AT_CAPACITY:
        return f"{candidate.running}/{candidate.max_concurrency} running"
    return "eligible"


def _top(eligible: list[Candidate], keys: list[tuple[object, ...]], limit: int) -> list[Candidate]:
    """The ``limit`` candidates with the smallest keys; each key ends with the agent id, so ties are stable.

    Keys are built by a comprehension and sorted in C: cheaper than heapq.nsmallest with a key function,
    which loops in Python, for the few hundred eligible agents of a decision.
    """
    order = sorted(range(len(eligible)), key=keys.__getitem__)
    return [eligible[i] for i in order[:limit]]


def _rank(
    eligible: list[Candidate], query: RoutingQuery, trust: dict[str, float], limit: int
) -> list[tuple[Candidate, float]]:
    """The best ``limit`` eligible candidates, best first, each with the strategy's score (higher is better).

    Only the top of the order is scored (a receipt shows at most ``limit``).
    """
    limit = max(limit, 1)
    never = float("-inf")
    if query.strategy is Strategy.LEAST_LOADED:
        keys: list[tuple[object, ...]] = [
            (c.running / c.max_concurrency, c.last_assigned_at or never, c.agent_id) for c in eligible
        ]
        return [(c, round(1 - c.running / c.max_concurrency, 6)) for c in _top(eligible, keys, limit)]
    if query.strategy is Strategy.ROUND_ROBIN:
        # Least recently assigned first; never-assigned agents come before all others, oldest first.
        # The score is how long the agent has been idle (since its last task, or since it registered).
        def idle_since(c: Candidate) -> float:
            return c.last_assigned_at if c.last_assigned_at is not None else c.registered_at

        keys = [(c.last_assigned_at is not None, idle_since(c), c.agent_id) for c in eligible]
        return [(c, round(max(query.now - idle_since(c), 0.0), 3)) for c in _top(eligible, keys, limit)]
    if query.strategy is Strategy.FASTEST_RESPONSE:
        # Agents without a measurement are tried first so they get one (optimistic exploration).
        keys = [(c.avg_response_ms is not None, c.avg_response_ms or 0.0, c.agent_id) for c in eligible]
        best = _top(eligible, keys, limit)
        return [(c, -(c.avg_response_ms if c.avg_response_ms is not None else 0.0)) for c in best]
    return _trust_weighted(eligible, query.seed, trust, limit)


def _trust_weighted(
    eligible: list[Candidate], seed: str, trust: dict[str, float], limit: int
) -> list[tuple[Candidate, float]]:
    """Draw the winner with probability proportional to trust; seeded, so a given task/attempt is reproducible."""
    ordered = sorted(eligible, key=lambda c: c.agent_id)
    weights = [max(trust[c.agent_id], 0.0) for c in ordered]
    total = sum(weights)
    if total == 0:
        weights = [1.0] * len(ordered)
        total = float(len(ordered))
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    winner = random.Random(digest).choices(ordered, weights=weights, k=1)[0]
    weight = dict(zip((c.agent_id for c in ordered), weights, strict=True))
    rest = heapq.nsmallest(
        limit - 1, (c for c in ordered if c is not winner), key=lambda c: (-weight[c.agent_id], c.agent_id)
    )
    return [(c, round(weight[c.agent_id] / total, 6)) for c in [winner, *rest]]


DEFAULT_OBJECTIVE = adaptive.Objective.of(0.6, 0.2, 0.2, adaptive.scales_of(1000.0, 0.01, 0.02, 0.25))


def posterior_of(candidate: Candidate, tag: str | None, trust: float) -> adaptive.Posterior:
    """The candidate's learned posterior for ``tag``, or its prior when the snapshot carries none."""
    stats = candidate.tags.get(tag) if tag is not None else None
    if stats is not None and stats.learned is not None:
        return stats.learned
    return adaptive.prior(trust, candidate.avg_response_ms, None, kind_of_endpoint(candidate.endpoint_url) == "llm")


def _adaptive(
    candidates: list[Candidate],
    eligible_at: list[int],
    query: RoutingQuery,
    trust: dict[str, float],
    limit: int,
    memo: SnapshotMemo | None,
) -> tuple[list[tuple[Candidate, float]], dict[str, dict[str, object]]]:
    """Thompson sampling on the posteriors of the task's first required tag (models.adaptive).

    With ``memo`` (kept by the caller for as long as ``candidates`` come from the same snapshot, positions
    included) every candidate's posterior and bound is prepared once; otherwise only the eligible ones'.
    """
    tag = min((r.tag for r in query.requirements), default=None)
    objective = query.objective or DEFAULT_OBJECTIVE
    pool, allowed = (
        (candidates, frozenset(eligible_at)) if memo is not None else ([candidates[i] for i in eligible_at], None)
    )
    prepared: adaptive.Prepared | None = _recall(memo.adaptive, (tag, objective)) if memo is not None else None
    if prepared is None:
        posteriors = [posterior_of(c, tag, trust[c.agent_id]) for c in pool]
        prepared = adaptive.prepare(posteriors, [c.agent_id for c in pool], objective)
        if memo is not None:
            _remember(memo.adaptive, (tag, objective), prepared)
    ranking = adaptive.rank_prepared(prepared, query.seed, max(limit, 1), allowed)
    ranked = [(pool[i], score) for i, score in ranking.ranked]
    explained = {pool[i].agent_id: ranking.draws[i].explain(tag or "", objective) for i, _ in ranking.ranked}
    return ranked, explained


def effective_trusts(candidates: list[Candidate], tags: list[str]) -> dict[str, float]:
    """Each candidate's trust for ``tags``: the same for every decision on a snapshot, so callers may keep it."""
    return {c.agent_id: c.effective_trust(tags) for c in candidates}


def evaluate(
    candidates: list[Candidate],
    query: RoutingQuery,
    receipt_limit: int = RECEIPT_CANDIDATE_LIMIT,
    trust: dict[str, float] | None = None,
    memo: SnapshotMemo | None = None,
) -> Evaluation:
    """Apply the filters, then the strategy. An agent that already failed this task is used again only when
    no other capable agent remains (a one-agent pool would otherwise wait out its queue timeout).

    Every candidate is filtered and counted; detailed reports are built for at most ``receipt_limit`` of
    them (the ranked eligible ones first), which keeps a decision over thousands of agents cheap.
    ``trust`` is ``effective_trusts(candidates, tags)`` when the caller already has it; ``memo`` is given
    when ``candidates`` are a snapshot view's (with live load applied in place), and kept with that view.
    """
    tags = sorted({r.tag for r in query.requirements})
    if trust is None:
        trust = effective_trusts(candidates, tags)
    eligible_at, removed, counts_by_filter = _filter(candidates, trust, _Checks.of(query), memo)
    second_chance: set[str] = set()
    others_may_free_up = any(
        why not in PERMANENT_FILTERS and why is not Filter.ALREADY_FAILED for why in counts_by_filter
    )
    if not eligible_at and not others_may_free_up:
        eligible_at = [
            i
            for i, why in removed
            if why is Filter.ALREADY_FAILED and candidates[i].running < candidates[i].max_concurrency
        ]
        second_chance = {candidates[i].agent_id for i in eligible_at}
        if second_chance:
            removed = [(i, why) for i, why in removed if candidates[i].agent_id not in second_chance]
            counts_by_filter[Filter.ALREADY_FAILED] -= len(second_chance)
    eligible = [candidates[i] for i in eligible_at]
    explained: dict[str, dict[str, object]] = {}
    if eligible and query.strategy is Strategy.ADAPTIVE:
        ranked, explained = _adaptive(candidates, eligible_at, query, trust, receipt_limit, memo)
    else:
        ranked = _rank(eligible, query, trust, receipt_limit) if eligible else []
    counts = {why.value: n for why, n in counts_by_filter.items() if n}
    shown: list[tuple[Candidate, Filter | None, float | None]] = [
        (c, None, score) for c, score in ranked[:receipt_limit]
    ]
    room = receipt_limit - len(shown)
    if room > 0:
        shown += [
            (candidates[i], why, None)
            for i, why in heapq.nsmallest(room, removed, key=lambda iw: candidates[iw[0]].agent_id)
        ]
    reports = [
        CandidateReport(
            agent_id=c.agent_id,
            eliminated_by=why,
            detail="eligible again: no other capable agent can take the task"
            if c.agent_id in second_chance
            else _detail(c, why, query, trust[c.agent_id]),
            trust=trust[c.agent_id],
            running=c.running,
            max_concurrency=c.max_concurrency,
            score=score,
            adaptive=explained.get(c.agent_id),
        )
        for c, why, score in shown
    ]
    waiting = not ranked and any(why not in PERMANENT_FILTERS for why in counts_by_filter if counts_by_filter[why])
    return Evaluation(
        winner=ranked[0][0] if ranked else None,
        reports=reports,
        waiting_is_useful=waiting,
        counts=counts,
        eligible=eligible,
        total=len(candidates),
    )


def could_use(candidate: Candidate, query: RoutingQuery) -> bool:
    """Whether ``candidate`` passes the task's permanent filters (capability versions, exclusions, min_trust)."""
    trust = candidate.effective_trust(sorted({r.tag for r in query.requirements}))
    why = _eliminator(_Checks.of(query))(candidate, trust)
    return why not in PERMANENT_FILTERS


def accepts(candidate: Candidate, query: RoutingQuery) -> bool:
    """Whether ``candidate`` passes every filter for the task now, its capacity included (hand-over)."""
    trust = candidate.effective_trust(sorted({r.tag for r in query.requirements}))
    return _eliminator(_Checks.of(query))(candidate, trust) is None
