"""Adaptive routing as pure functions: evidence per (capability tag, agent), posteriors, Thompson sampling.

Evidence is a discounted sum of observations (quality, latency, cost). Each new observation of a (tag, agent)
multiplies the older ones by ``discount``, so recent evidence weighs more and an agent that changes is
re-learned; observation ``seq`` of a row with ``n`` observations weighs ``discount ** (n - seq)``, which is
what lets an updated feedback score replace its old contribution exactly instead of adding to it.

A decision turns each candidate's evidence into posterior means and spreads of three utilities in [0, 1]
(quality; speed = 1 / (1 + latency / latency scale); cheapness = 1 / (1 + cost / cost scale)), draws one value
of each (Thompson sampling), and takes the candidate with the best weighted sum (the task's objective).
No I/O here: core/routing/adaptive.py loads and writes the evidence, models/routing.py calls ``rank``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ains.models.workflow_io import AdaptiveTuning

# Pseudo-observations the agent's trust is worth as the quality prior: a new agent at trust 0.5 starts at
# Beta(1, 1), an agent trusted at 0.9 at Beta(1.8, 0.2).
PRIOR_STRENGTH = 2.0
# Latency prior: the agent's moving-average response time when it has one, else this; worth one observation.
LATENCY_PRIOR_MS = 1000.0
LATENCY_PRIOR_LOG_SD = 1.0
# LLM agents' cost prior (HTTP agents cost their configured price per call, exactly).
LLM_COST_PRIOR_SD_USD = 0.01
# Draws are truncated at this many standard deviations, which makes each candidate's upper bound exact and
# lets a decision stop sampling once no remaining candidate could win.
BOUND_SDS = 3.0
# At most this many candidates (those with the best upper bounds) are sampled per decision: with thousands of
# equally unknown agents the draw among 64 of them is as fair as among all, at a fraction of the cost.
SAMPLED_LIMIT = 64
_LOG_SD_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class Evidence:
    """The discounted sums of one (tag, agent) row. ``n`` counts observations ever made (it numbers them)."""

    n: int = 0
    weight: float = 0.0
    quality: float = 0.0
    log_latency: float = 0.0
    log_latency_sq: float = 0.0
    cost: float = 0.0
    cost_sq: float = 0.0


@dataclass(frozen=True, slots=True)
class Observation:
    quality: float  # feedback score, else 1.0 for a success and 0.0 for a failure or timeout
    latency_ms: float
    cost_usd: float


def log_latency(latency_ms: float) -> float:
    return math.log(max(latency_ms, 0.1))


def observe(evidence: Evidence, obs: Observation, discount: float) -> Evidence:
    """``evidence`` with ``obs`` added as observation number ``evidence.n + 1``, older ones discounted."""
    y = log_latency(obs.latency_ms)
    d = discount
    return Evidence(
        n=evidence.n + 1,
        weight=d * evidence.weight + 1.0,
        quality=d * evidence.quality + obs.quality,
        log_latency=d * evidence.log_latency + y,
        log_latency_sq=d * evidence.log_latency_sq + y * y,
        cost=d * evidence.cost + obs.cost_usd,
        cost_sq=d * evidence.cost_sq + obs.cost_usd * obs.cost_usd,
    )


def replace_quality(evidence: Evidence, seq: int, old: float, new: float, discount: float) -> Evidence:
    """Observation ``seq``'s quality changed from ``old`` to ``new`` (feedback): swap its contribution."""
    change = (new - old) * discount ** max(evidence.n - seq, 0)
    quality = min(max(evidence.quality + change, 0.0), evidence.weight)
    return Evidence(
        evidence.n,
        evidence.weight,
        quality,
        evidence.log_latency,
        evidence.log_latency_sq,
        evidence.cost,
        evidence.cost_sq,
    )


@dataclass(frozen=True, slots=True)
class Scales:
    """How a task turns latency and cost into utilities, and how far exploration may go."""

    latency_ms: float = 1000.0
    cost_usd: float = 0.01
    exploration_floor: float = 0.02  # every utility's spread is at least this...
    exploration_cap: float = 0.25  # ...and at most this


@lru_cache(maxsize=256)
def scales_of(latency_ms: float, cost_usd: float, floor: float, cap: float) -> Scales:
    """One shared instance per setting, so posteriors can cache their utilities by identity."""
    return Scales(latency_ms, cost_usd, floor, cap)


@dataclass(frozen=True, slots=True)
class Objective:
    """Weights of a task's objective (normalised to sum 1) and its scales."""

    quality: float
    latency: float
    cost: float
    scales: Scales

    @classmethod
    def of(cls, quality: float, latency: float, cost: float, scales: Scales) -> Objective:
        total = quality + latency + cost
        if total <= 0:
            return cls(1.0, 0.0, 0.0, scales)
        return cls(quality / total, latency / total, cost / total, scales)

    def weigh(self, quality: float, speed: float, cheap: float) -> float:
        """The objective's value of these utilities (means, upper bounds or draws)."""
        return self.quality * quality + self.latency * speed + self.cost * cheap


@dataclass(frozen=True, slots=True)
class Utilities:
    """A posterior in objective space: mean and (clamped) spread of quality, speed and cheapness."""

    quality: float
    quality_sd: float
    speed: float
    speed_sd: float
    cheap: float
    cheap_sd: float
    quality_hi: float
    speed_hi: float
    cheap_hi: float


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


class Posterior:
    """What is known about one agent for one tag, in native units: built when the snapshot loads."""

    __slots__ = (
        "_figures",
        "_figures_for",
        "_scales",
        "_utilities",
        "cost",
        "cost_sd",
        "log_latency",
        "log_latency_sd",
        "quality",
        "quality_sd",
        "weight",
    )

    def __init__(
        self,
        quality: float,
        quality_sd: float,
        log_latency: float,
        log_latency_sd: float,
        cost: float,
        cost_sd: float,
        weight: float,
    ) -> None:
        self.quality = quality
        self.quality_sd = quality_sd
        self.log_latency = log_latency
        self.log_latency_sd = log_latency_sd
        self.cost = cost
        self.cost_sd = cost_sd
        self.weight = weight  # effective number of observations after discounting
        self._scales: Scales | None = None
        self._utilities: Utilities | None = None
        self._figures_for: Objective | None = None
        self._figures: Figures | None = None

    @property
    def latency_ms(self) -> float:
        """The posterior median latency."""
        return math.exp(self.log_latency)

    def utilities(self, scales: Scales) -> Utilities:
        """This posterior in objective space (cached for the last scales, which rarely change)."""
        if self._scales is scales and self._utilities is not None:
            return self._utilities
        low, high = scales.exploration_floor, scales.exploration_cap
        q_sd = _clamp(self.quality_sd, low, high)
        speed = 1.0 / (1.0 + self.latency_ms / scales.latency_ms)
        s_sd = _clamp(speed * (1.0 - speed) * self.log_latency_sd, low, high)  # delta method
        cheap = 1.0 / (1.0 + max(self.cost, 0.0) / scales.cost_usd)
        c_sd = _clamp(cheap * cheap * self.cost_sd / scales.cost_usd, 0.0 if self.cost_sd == 0 else low, high)
        found = Utilities(
            quality=self.quality,
            quality_sd=q_sd,
            speed=speed,
            speed_sd=s_sd,
            cheap=cheap,
            cheap_sd=c_sd,
            quality_hi=min(1.0, self.quality + BOUND_SDS * q_sd),
            speed_hi=min(1.0, speed + BOUND_SDS * s_sd),
            cheap_hi=min(1.0, cheap + BOUND_SDS * c_sd),
        )
        self._scales, self._utilities = scales, found
        return found

    def figures(self, objective: Objective) -> Figures:
        """The receipt's figures that do not depend on a draw (cached for the last objective)."""
        if self._figures is not None and (self._figures_for is objective or self._figures_for == objective):
            return self._figures
        u = self.utilities(objective.scales)
        found = Figures(
            evidence=round(self.weight, 3),
            quality=round(self.quality, 4),
            quality_sd=round(u.quality_sd, 4),
            latency_ms=round(self.latency_ms, 1),
            cost_usd=round(self.cost, 6),
            objective=round(objective.weigh(u.quality, u.speed, u.cheap), 4),
        )
        self._figures_for, self._figures = objective, found
        return found


@dataclass(frozen=True, slots=True)
class Figures:
    """A posterior's means under an objective, rounded as a receipt shows them."""

    evidence: float
    quality: float
    quality_sd: float
    latency_ms: float
    cost_usd: float
    objective: float


def posterior(
    evidence: Evidence | None,
    trust: float,
    avg_response_ms: float | None,
    price_usd: float | None,
    is_llm: bool,
) -> Posterior:
    """Evidence combined with priors from what the registry knows already (trust, response time, price)."""
    if evidence is None or evidence.weight <= 0:
        return prior(trust, avg_response_ms, price_usd, is_llm)
    e = evidence
    w = e.weight
    alpha = PRIOR_STRENGTH * trust + e.quality
    beta = PRIOR_STRENGTH * (1.0 - trust) + (w - e.quality)
    total = max(alpha + beta, 1e-9)
    q = _clamp(alpha / total, 0.0, 1.0)
    q_sd = math.sqrt(q * (1.0 - q) / (total + 1.0))
    mu0 = math.log(avg_response_ms) if avg_response_ms and avg_response_ms > 0 else math.log(LATENCY_PRIOR_MS)
    mean_y = e.log_latency / w
    spread = max(e.log_latency_sq - w * mean_y * mean_y, 0.0)
    k = 1.0 + w
    mu = (mu0 + e.log_latency) / k
    noise = (LATENCY_PRIOR_LOG_SD**2 + spread + (w / k) * (mean_y - mu0) ** 2) / k
    y_sd = max(math.sqrt(noise / k), _LOG_SD_FLOOR)
    if is_llm:
        mean_c = e.cost / w
        var_c = max(e.cost_sq / w - mean_c * mean_c, 0.0)
        cost, cost_sd = mean_c, math.sqrt((LLM_COST_PRIOR_SD_USD**2 + w * var_c) / k) / math.sqrt(k)
    else:
        cost, cost_sd = price_usd or 0.0, 0.0
    return Posterior(q, q_sd, mu, y_sd, cost, cost_sd, w)


def prior(trust: float, avg_response_ms: float | None, price_usd: float | None, is_llm: bool) -> Posterior:
    """The posterior of an agent nothing has been observed of yet for a tag."""
    return _prior(round(trust, 6), avg_response_ms, price_usd, is_llm)


@lru_cache(maxsize=4096)
def _prior(trust: float, avg_response_ms: float | None, price_usd: float | None, is_llm: bool) -> Posterior:
    """A posterior without evidence; shared by every agent in the same situation (cheap for big registries)."""
    q = _clamp(trust, 0.0, 1.0)
    q_sd = math.sqrt(q * (1.0 - q) / (PRIOR_STRENGTH + 1.0))
    mu = math.log(avg_response_ms) if avg_response_ms and avg_response_ms > 0 else math.log(LATENCY_PRIOR_MS)
    cost, cost_sd = (0.0, LLM_COST_PRIOR_SD_USD) if is_llm else (price_usd or 0.0, 0.0)
    return Posterior(q, q_sd, mu, LATENCY_PRIOR_LOG_SD, cost, cost_sd, 0.0)


@dataclass
class Draw:
    """One candidate's part in a decision, for the receipt."""

    posterior: Posterior
    utilities: Utilities
    bound: float
    quality: float | None = None
    speed: float | None = None
    cheap: float | None = None
    objective: float | None = None

    def explain(self, tag: str, objective: Objective) -> dict[str, object]:
        f, s = self.posterior.figures(objective), objective.scales

        def back(utility: float | None, scale: float) -> float | None:
            if utility is None:
                return None
            return round(scale * (1.0 / max(utility, 1e-9) - 1.0), 6)

        return {
            "tag": tag,
            "evidence": f.evidence,
            "quality": {"mean": f.quality, "sd": f.quality_sd, "sampled": _r(self.quality)},
            "latency_ms": {"mean": f.latency_ms, "sampled": back(self.speed, s.latency_ms)},
            "cost_usd": {"mean": f.cost_usd, "sampled": back(self.cheap, s.cost_usd)},
            "objective": {"mean": f.objective, "sampled": _r(self.objective), "bound": round(self.bound, 4)},
            "weights": {"quality": objective.quality, "latency": objective.latency, "cost": objective.cost},
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def seeded_random(seed: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))


@dataclass
class Ranking:
    """Candidates best first with their scores (the sampled objective; for the candidates whose bound could
    not beat the winner, which were not sampled, the posterior-mean objective, after the sampled ones in
    order of their bounds), and each one's draw."""

    ranked: list[tuple[int, float]]  # (position in the eligible list, score)
    draws: dict[int, Draw] = field(default_factory=dict)


@dataclass(frozen=True)
class Prepared:
    """Candidates' posteriors under one objective with their upper bounds, best bound first (ties by agent id).

    Depends only on the posteriors and the objective, so a worker keeps it with its registry snapshot and a
    decision does no per-candidate work beyond walking the order.
    """

    posteriors: Sequence[Posterior]
    agent_ids: Sequence[str]
    objective: Objective
    utilities: list[Utilities]
    bounds: list[float]
    order: list[int]  # positions, by (-bound, agent id)


def prepare(posteriors: Sequence[Posterior], agent_ids: Sequence[str], objective: Objective) -> Prepared:
    utilities = [p.utilities(objective.scales) for p in posteriors]
    bounds = [objective.weigh(u.quality_hi, u.speed_hi, u.cheap_hi) for u in utilities]
    order = sorted(range(len(bounds)), key=lambda i: (-bounds[i], agent_ids[i]))
    return Prepared(posteriors, agent_ids, objective, utilities, bounds, order)


def rank(
    posteriors: Sequence[Posterior],
    agent_ids: Sequence[str],
    objective: Objective,
    seed: str,
    limit: int,
) -> Ranking:
    """Thompson sampling over ``objective``: draw each candidate's utilities, the best weighted sum wins."""
    return rank_prepared(prepare(posteriors, agent_ids, objective), seed, limit)


def rank_prepared(prepared: Prepared, seed: str, limit: int, allowed: Container[int] | None = None) -> Ranking:
    """``rank`` over the candidates of ``prepared`` whose positions are ``allowed`` (None: all of them).

    Candidates are sampled in order of their upper bound (every draw is truncated at ``BOUND_SDS``), and
    sampling stops once the next bound is below the best draw so far: the result is the same as sampling
    everyone. Seeded by task and attempt, so a decision is reproducible.
    """
    weigh = prepared.objective.weigh
    bounds, utilities, posteriors = prepared.bounds, prepared.utilities, prepared.posteriors
    walk = prepared.order if allowed is None else [i for i in prepared.order if i in allowed]
    rng = seeded_random(seed)
    if len(walk) > SAMPLED_LIMIT:
        # The best SAMPLED_LIMIT bounds; among candidates tied at the last of them, a seeded draw (with
        # thousands of equally unknown agents, always the same alphabetical few would never be explored).
        threshold = bounds[walk[SAMPLED_LIMIT - 1]]
        above = list(itertools.takewhile(lambda i: bounds[i] > threshold, walk))
        ties = list(itertools.takewhile(lambda i: bounds[i] == threshold, walk[len(above) :]))
        chosen = above + sorted(rng.sample(ties, SAMPLED_LIMIT - len(above)), key=lambda i: prepared.agent_ids[i])
    else:
        chosen = list(walk)
    draws: dict[int, Draw] = {}
    best = -math.inf
    gauss = rng.gauss
    for i in chosen:
        if bounds[i] < best:
            break
        u = utilities[i]
        q = _clamp(u.quality + u.quality_sd * _clamp(gauss(), -BOUND_SDS, BOUND_SDS), 0.0, 1.0)
        s = _clamp(u.speed + u.speed_sd * _clamp(gauss(), -BOUND_SDS, BOUND_SDS), 1e-9, 1.0)
        c = _clamp(u.cheap + u.cheap_sd * _clamp(gauss(), -BOUND_SDS, BOUND_SDS), 1e-9, 1.0)
        value = weigh(q, s, c)
        draws[i] = Draw(posteriors[i], u, bounds[i], q, s, c, value)
        if value > best:
            best = value
    agent_ids = prepared.agent_ids
    sampled = sorted(draws, key=lambda i: (-(draws[i].objective or 0.0), agent_ids[i]))
    ranked: list[tuple[int, float]] = [(i, round(draws[i].objective or 0.0, 6)) for i in sampled[:limit]]
    room = limit - len(ranked)
    if room > 0:  # the receipt's other candidates: the best bounds among those not sampled
        for i in itertools.islice((i for i in walk if i not in draws), room):
            u = utilities[i]
            draws[i] = Draw(posteriors[i], u, bounds[i])
            ranked.append((i, round(weigh(u.quality, u.speed, u.cheap), 6)))
    return Ranking(ranked=ranked, draws=draws)


def objective_for(tuning: AdaptiveTuning | None) -> Objective | None:
    """A task's objective as fixed at submission (None: the strategy's default)."""
    if tuning is None:
        return None
    scales = scales_of(tuning.latency_scale_ms, tuning.cost_scale_usd, tuning.exploration_floor, tuning.exploration_cap)
    return Objective.of(tuning.quality, tuning.latency, tuning.cost, scales)
