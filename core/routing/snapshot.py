"""The worker's registry snapshot: every agent as routing sees it, indexed by tag and refreshed from the
registry's changes, so a decision reads only the live load from the database."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.routing.candidates import load_agents
from ains.models.routing import (
    Candidate,
    LiveState,
    SnapshotMemo,
    effective_trusts,
)
from ains.models.tables import Agent, utcnow


@dataclass
class SnapshotView:
    """The agents offering every tag of a tag set, their trust for those tags, and where each one sits."""

    candidates: list[Candidate]
    trust: dict[str, float]
    index: dict[str, int]
    memo: SnapshotMemo = field(default_factory=SnapshotMemo)  # what decisions on this view may reuse


class RegistrySnapshot:
    """Every agent with all its capabilities as routing sees them, indexed by tag.

    A view per tag set is built on first use and kept until the snapshot changes, so a decision does no
    per-agent work beyond the filters. Candidates here carry no live load (``running`` is 0).
    """

    MAX_VIEWS = 1024

    def __init__(self) -> None:
        self.agents: dict[str, Candidate] = {}
        self._by_tag: dict[str, set[str]] = {}
        self._views: dict[tuple[str, ...], SnapshotView] = {}

    def replace_all(self, agents: list[Candidate]) -> None:
        self.agents = {}
        self._by_tag = {}
        self._views = {}
        self.update(agents)

    def update(self, changed: list[Candidate]) -> None:
        touched_tags: set[str] = set()
        for candidate in changed:
            previous = self.agents.get(candidate.agent_id)
            if previous is not None:
                touched_tags.update(previous.tags)
                for tag in previous.tags:
                    self._by_tag[tag].discard(candidate.agent_id)
            self.agents[candidate.agent_id] = candidate
            touched_tags.update(candidate.tags)
            for tag in candidate.tags:
                self._by_tag.setdefault(tag, set()).add(candidate.agent_id)
        # Only the views an update can change are rebuilt (on their next use); an agent without tags is
        # only in the view of no tags.
        stale = [key for key in self._views if not key or touched_tags.intersection(key)]
        for key in stale:
            del self._views[key]

    def touch(self, agent_id: str, assigned_at: float) -> None:
        """Record an assignment made by this worker, in place (views keep their positions)."""
        previous = self.agents.get(agent_id)
        if previous is None or (previous.last_assigned_at or 0.0) >= assigned_at:
            return
        touched = LiveState(running={}, last_assigned={agent_id: assigned_at}).apply([previous])[0]
        self.agents[agent_id] = touched
        for view in self._views.values():
            position = view.index.get(agent_id)
            if position is not None:
                view.candidates[position] = touched

    def view(self, tags: list[str]) -> SnapshotView:
        key = tuple(tags)
        found = self._views.get(key)
        if found is not None:
            return found
        if tags:
            ids = set.intersection(*(self._by_tag.get(tag, set()) for tag in tags))
        else:
            ids = set(self.agents)
        candidates = [self.agents[agent_id] for agent_id in ids]
        if len(self._views) >= self.MAX_VIEWS:
            self._views.clear()
        found = self._views[key] = SnapshotView(
            candidates=candidates,
            trust=effective_trusts(candidates, tags),
            index={c.agent_id: position for position, c in enumerate(candidates)},
        )
        return found


class CandidateCache:
    """A worker's snapshot of the registry for routing, brought up to date at most every ``ttl_seconds``.

    Capabilities, versions, trust, availability and limits come from the snapshot (a registry change reaches
    routing within ``ttl_seconds``); live load is read fresh for every decision, and this worker's own
    assignments are written into the snapshot as it makes them (and again after each refresh, which may have
    read the registry before they committed), so round-robin stays exact within one worker. A refresh reads
    only the agents whose row changed since the previous one (every write to an agent or its capabilities
    touches ``agents.updated_at``), with a margin for clock skew between processes and for transactions that
    commit late; a deregistered agent shows as a count mismatch and triggers a full reload, as does age.
    """

    FULL_RELOAD_SECONDS = 300.0
    CHANGE_MARGIN_SECONDS = 5.0

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self.snapshot = RegistrySnapshot()
        self._recent: dict[str, float] = {}  # this worker's assignments within the change margin
        self._checked_at: float | None = None  # monotonic time of the last refresh
        self._full_at = 0.0
        self._since: datetime | None = None
        self._lock = asyncio.Lock()

    @property
    def margin_seconds(self) -> float:
        return max(self.CHANGE_MARGIN_SECONDS, 2 * self.ttl_seconds)

    async def candidates(self, session: AsyncSession, tags: list[str], *, refresh: bool = False) -> SnapshotView:
        """The agents offering all ``tags`` and their trust for those tags (no live load applied).

        ``refresh`` brings the snapshot up to date first whatever its age: for a verdict that is final, such
        as "no agent can ever take this task", which must not rest on a snapshot older than a registration.
        """
        await self._refresh(session, force=refresh)
        return self.snapshot.view(tags)

    def _fresh(self) -> bool:
        return self._checked_at is not None and time.monotonic() - self._checked_at <= self.ttl_seconds

    @property
    def due(self) -> bool:
        """Whether the next decision would refresh the snapshot (callers may do it outside their transaction)."""
        return not self._fresh()

    async def refresh(self, session: AsyncSession) -> None:
        await self._refresh(session)

    async def _refresh(self, session: AsyncSession, force: bool = False) -> None:
        if not force and (self._fresh() or (self._checked_at is not None and self._lock.locked())):
            return  # fresh, or another decision is refreshing it: use the current snapshot meanwhile
        async with self._lock:
            if not force and self._fresh():
                return
            now = time.monotonic()
            started = utcnow()
            if self._since is None or now - self._full_at > self.FULL_RELOAD_SECONDS:
                self.snapshot.replace_all(await load_agents(session))
                self._full_at = now
            else:
                self.snapshot.update(await load_agents(session, changed_since=self._since))
                total = (await session.execute(select(func.count()).select_from(Agent))).scalar_one()
                if total != len(self.snapshot.agents):
                    self.snapshot.replace_all(await load_agents(session))
                    self._full_at = now
            self._since = started - timedelta(seconds=self.margin_seconds)
            self._checked_at = now
            cutoff = self._since.timestamp()
            self._recent = {agent_id: at for agent_id, at in self._recent.items() if at >= cutoff}
            for agent_id, at in self._recent.items():
                self.snapshot.touch(agent_id, at)

    def record_assignment(self, agent_id: str, at: float) -> None:
        self._recent[agent_id] = at
        self.snapshot.touch(agent_id, at)
