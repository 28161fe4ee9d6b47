"""Simulated agents with hidden per-tag quality, latency and cost, routed by the pure decision function.

Every strategy runs through ``models.routing.evaluate`` exactly as a worker calls it, over candidates that a
simulated registry keeps up to date the way AINS does: trust by the seed rules (``models.trust.next_trust``,
overall and per tag), the response-time moving average, running attempts, assignment times, and the adaptive
evidence (``models.adaptive.observe``, then ``replace_quality`` when the grader's feedback arrives). The
snapshot the decisions read is refreshed once per simulated second (AINS_ROUTING_CACHE_TTL_SECONDS); live
load and this worker's own assignments are fresh, as in core/routing/decide.py.

Reward of a task = the objective applied to what happened: weight_quality * graded quality (0 on a failure)
+ weight_latency * 1 / (1 + latency / scale) + weight_cost * 1 / (1 + cost / scale). Regret is against an
oracle that knows the hidden distributions and picks the agent with the best expected reward among those
that pass the filters at that moment (capacity included); both are computed on expected rewards, which
removes the grader's noise from the comparison.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

from ains.models import adaptive
from ains.models.capabilities import parse_requirement
from ains.models.routing import Candidate, RoutingQuery, Strategy, TagStats, evaluate
from ains.models.trust import INITIAL_TRUST, TrustEvent, next_trust

TAGS = ("summarize", "translate", "classify")
ARRIVAL_SECONDS = 0.25
SNAPSHOT_TTL_SECONDS = 1.0
MAX_CONCURRENCY = 8
DISCOUNT = 0.98  # AINS_ADAPTIVE_DISCOUNT's default
GRADER_NOISE = 0.1
LATENCY_LOG_SD = 0.3
EMA_WEIGHT = 0.2
MIN_TAG_SAMPLES = 5


@dataclass(frozen=True)
class Hidden:
    """An agent's true behaviour for one tag (the simulation knows it; routing never sees it)."""

    quality: float
    latency_ms: float
    cost_usd: float
    failure: float = 0.02


@dataclass
class SimAgent:
    agent_id: str
    llm: bool  # LLM agents' cost varies per call and is learned; HTTP agents cost their price per call
    hidden: dict[str, Hidden]


def default_agents() -> list[SimAgent]:
    """8 agents, 3 tags: specialists, a generalist, a fast one, a cheap-but-good one, a premium one, a flaky one."""

    def same(quality: float, latency: float, cost: float, failure: float = 0.02) -> dict[str, Hidden]:
        return {t: Hidden(quality, latency, cost, failure) for t in TAGS}

    def per_tag(qualities: tuple[float, float, float], latency: float, cost: float) -> dict[str, Hidden]:
        return {t: Hidden(q, latency, cost) for t, q in zip(TAGS, qualities, strict=True)}

    return [
        SimAgent("generalist", False, same(0.78, 600, 0.004)),
        SimAgent("summarize-expert", True, per_tag((0.96, 0.55, 0.50), 450, 0.004)),
        SimAgent("translate-expert", False, per_tag((0.50, 0.95, 0.60), 450, 0.004)),
        SimAgent("classify-expert", True, per_tag((0.55, 0.60, 0.95), 450, 0.004)),
        SimAgent("fast", False, same(0.70, 100, 0.002)),
        SimAgent("cheap-good", True, same(0.80, 1500, 0.0004)),
        SimAgent("premium", True, same(0.92, 1200, 0.03)),
        SimAgent("flaky", False, same(0.78, 400, 0.002, failure=0.3)),
    ]


@dataclass(frozen=True)
class Weights:
    quality: float = 0.6
    latency: float = 0.2
    cost: float = 0.2
    latency_scale_ms: float = 1000.0
    cost_scale_usd: float = 0.01

    def objective(self) -> adaptive.Objective:
        return adaptive.Objective.of(
            self.quality,
            self.latency,
            self.cost,
            adaptive.scales_of(self.latency_scale_ms, self.cost_scale_usd, 0.02, 0.25),
        )

    def reward(self, quality: float, latency_ms: float, cost_usd: float) -> float:
        total = self.quality + self.latency + self.cost
        speed = 1.0 / (1.0 + latency_ms / self.latency_scale_ms)
        cheap = 1.0 / (1.0 + cost_usd / self.cost_scale_usd)
        return (self.quality * quality + self.latency * speed + self.cost * cheap) / total


@dataclass(frozen=True)
class Drift:
    """From task ``at`` on, ``agent_id``'s quality for ``tag`` is ``quality``."""

    at: int
    agent_id: str
    tag: str
    quality: float


@dataclass
class Scenario:
    name: str
    tasks: int = 2000
    weights: Weights = field(default_factory=Weights)
    drift: Drift | None = None


def _draw(hidden: Hidden, rng: random.Random) -> tuple[bool, float, float, float]:
    """One call: (succeeded, graded quality, latency ms, cost USD)."""
    ok = rng.random() >= hidden.failure
    latency = hidden.latency_ms * math.exp(rng.gauss(0.0, LATENCY_LOG_SD))
    cost = max(hidden.cost_usd * (1.0 + rng.gauss(0.0, 0.2)), 0.0)
    quality = min(max(rng.gauss(hidden.quality, GRADER_NOISE), 0.0), 1.0) if ok else 0.0
    return ok, quality, latency, cost


def expected_reward(hidden: Hidden, llm: bool, weights: Weights, samples: int = 4000) -> float:
    rng = random.Random(f"{hidden}:{llm}:{weights}")
    total = 0.0
    for _ in range(samples):
        _, quality, latency, cost = _draw(hidden, rng)
        total += weights.reward(quality, latency, cost if llm else hidden.cost_usd)
    return total / samples


@dataclass
class _Row:
    """The simulated registry's view of one agent."""

    trust: float = INITIAL_TRUST
    total: int = 0
    successes: int = 0
    avg_ms: float | None = None
    last_assigned: float | None = None
    running: int = 0
    tag_trust: dict[str, float] = field(default_factory=lambda: {t: INITIAL_TRUST for t in TAGS})
    tag_total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TAGS, 0))
    tag_successes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TAGS, 0))
    evidence: dict[str, adaptive.Evidence] = field(default_factory=lambda: {t: adaptive.Evidence() for t in TAGS})


@dataclass
class Run:
    strategy: str
    scenario: str
    seed: int
    rewards: list[float]  # expected reward of the chosen agent, per task
    best: list[float]  # the oracle's expected reward, per task
    chosen: list[str]
    tags: list[str]

    def reward(self, start: int = 0) -> float:
        return sum(self.rewards[start:])

    def regret(self, start: int = 0) -> float:
        return sum(b - r for b, r in zip(self.best[start:], self.rewards[start:], strict=True))

    def oracle(self, start: int = 0) -> float:
        return sum(self.best[start:])

    def share(self, agent_id: str, start: int, end: int, tag: str | None = None) -> float:
        picks = [a for a, t in zip(self.chosen[start:end], self.tags[start:end], strict=True) if tag in (None, t)]
        return sum(1 for a in picks if a == agent_id) / max(len(picks), 1)


class Simulation:
    def __init__(self, agents: list[SimAgent], scenario: Scenario, seed: int) -> None:
        self.agents = {a.agent_id: a for a in agents}
        self.scenario = scenario
        self.seed = seed
        self.rows = {a.agent_id: _Row() for a in agents}
        self.snapshot: dict[str, Candidate] = {}
        self.refreshed_at = -math.inf
        self.objective = scenario.weights.objective()
        self._expected: dict[tuple[str, str, float], float] = {}

    def hidden(self, agent_id: str, tag: str, task: int) -> Hidden:
        h = self.agents[agent_id].hidden[tag]
        d = self.scenario.drift
        if d is not None and task >= d.at and d.agent_id == agent_id and d.tag == tag:
            return Hidden(d.quality, h.latency_ms, h.cost_usd, h.failure)
        return h

    def expected(self, agent_id: str, tag: str, task: int) -> float:
        h = self.hidden(agent_id, tag, task)
        key = (agent_id, tag, h.quality)
        if key not in self._expected:
            self._expected[key] = expected_reward(h, self.agents[agent_id].llm, self.scenario.weights)
        return self._expected[key]

    def _refresh(self, now: float) -> None:
        """Rebuild the snapshot from the registry, as a worker's refresh does (load + core.routing.adaptive.attach)."""
        for agent_id, row in self.rows.items():
            agent = self.agents[agent_id]
            tags: dict[str, TagStats] = {}
            for tag in TAGS:
                tag_trust = row.tag_trust[tag] if row.tag_total[tag] >= MIN_TAG_SAMPLES else row.trust
                price = None if agent.llm else agent.hidden[tag].cost_usd
                learned = adaptive.posterior(row.evidence[tag], tag_trust, row.avg_ms, price, agent.llm)
                tags[tag] = TagStats("1.0", row.tag_trust[tag], row.tag_total[tag], learned)
            self.snapshot[agent_id] = Candidate(
                agent_id=agent_id,
                endpoint_url=f"llm://{agent_id}" if agent.llm else f"http://127.0.0.1/{agent_id}",
                available=True,
                max_concurrency=MAX_CONCURRENCY,
                running=0,
                trust=row.trust,
                avg_response_ms=row.avg_ms,
                last_assigned_at=row.last_assigned,
                tags=tags,
            )
        self.refreshed_at = now

    def _candidates(self) -> list[Candidate]:
        out = []
        for agent_id, c in self.snapshot.items():
            row = self.rows[agent_id]
            out.append(
                Candidate(
                    c.agent_id,
                    c.endpoint_url,
                    c.available,
                    c.max_concurrency,
                    row.running,
                    c.trust,
                    c.avg_response_ms,
                    row.last_assigned,
                    c.tags,
                )
            )
        return out

    def _record(self, agent_id: str, tag: str, ok: bool, quality: float, latency: float, cost: float) -> None:
        """core.tasks.attempts.record_attempt + core.routing.adaptive: trust, EMA, evidence; then the grader's feedback."""
        row = self.rows[agent_id]
        event = TrustEvent.SUCCESS if ok else TrustEvent.FAILURE
        row.trust = next_trust(row.trust, event, row.successes, row.total)
        row.total += 1
        row.tag_trust[tag] = next_trust(row.tag_trust[tag], event, row.tag_successes[tag], row.tag_total[tag])
        row.tag_total[tag] += 1
        if ok:
            row.successes += 1
            row.tag_successes[tag] += 1
            row.avg_ms = latency if row.avg_ms is None else row.avg_ms + EMA_WEIGHT * (latency - row.avg_ms)
        outcome = 1.0 if ok else 0.0
        evidence = adaptive.observe(row.evidence[tag], adaptive.Observation(outcome, latency, cost), DISCOUNT)
        if ok:  # the grader's score replaces the provisional success
            evidence = adaptive.replace_quality(evidence, evidence.n, outcome, quality, DISCOUNT)
        row.evidence[tag] = evidence
        row.running -= 1

    def run(self, strategy: str) -> Run:
        rng = random.Random(f"{self.seed}:{self.scenario.name}:world")
        task_rng = random.Random(f"{self.seed}:{self.scenario.name}:tasks")
        pending: list[tuple[float, int, str, str, bool, float, float, float]] = []
        rewards: list[float] = []
        best: list[float] = []
        chosen: list[str] = []
        tags: list[str] = []
        for task in range(self.scenario.tasks):
            now = task * ARRIVAL_SECONDS
            while pending and pending[0][0] <= now:
                _, _, agent_id, tag, ok, quality, latency, cost = heapq.heappop(pending)
                self._record(agent_id, tag, ok, quality, latency, cost)
            if now - self.refreshed_at >= SNAPSHOT_TTL_SECONDS:
                self._refresh(now)
            tag = task_rng.choice(TAGS)
            candidates = self._candidates()
            free = [c.agent_id for c in candidates if c.running < c.max_concurrency]
            if not free:  # every agent busy: this simulation drops the task rather than model the queue
                continue
            winner = self._choose(strategy, candidates, tag, task, now)
            h = self.hidden(winner, tag, task)
            ok, quality, latency, cost = _draw(h, rng)
            if not self.agents[winner].llm:
                cost = h.cost_usd
            row = self.rows[winner]
            row.running += 1
            row.last_assigned = now
            heapq.heappush(pending, (now + latency / 1000.0, task, winner, tag, ok, quality, latency, cost))
            rewards.append(self.expected(winner, tag, task))
            best.append(max(self.expected(a, tag, task) for a in free))
            chosen.append(winner)
            tags.append(tag)
        return Run(strategy, self.scenario.name, self.seed, rewards, best, chosen, tags)

    def _choose(self, strategy: str, candidates: list[Candidate], tag: str, task: int, now: float) -> str:
        if strategy == "oracle":
            free = [c for c in candidates if c.running < c.max_concurrency]
            return max(free, key=lambda c: (self.expected(c.agent_id, tag, task), c.agent_id)).agent_id
        query = RoutingQuery(
            requirements=[parse_requirement(tag)],
            strategy=Strategy(strategy),
            seed=f"sim-{self.seed}-{task}:1",
            now=now,
            objective=self.objective,
        )
        winner = evaluate(candidates, query).winner
        assert winner is not None
        return winner.agent_id


STRATEGIES = ("round_robin", "least_loaded", "trust_weighted", "fastest_response", "adaptive")


def simulate(scenario: Scenario, strategy: str, seed: int, agents: list[SimAgent] | None = None) -> Run:
    return Simulation(agents or default_agents(), scenario, seed).run(strategy)
