"""/v1/trust: the leaderboard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AgentsRead, State
from core import trust
from models.capabilities import TAG_PATTERN
from models.trust import TrustTier
from models.trust_views import Leaderboard

router = APIRouter(prefix="/v1/trust", tags=["trust"])


@router.get("/leaderboard", response_model=Leaderboard)
async def leaderboard(
    state: State,
    _: AgentsRead,
    limit: Annotated[int, Query(ge=1, le=trust.MAX_PAGE_SIZE)] = 20,
    tier: TrustTier | None = None,
    tag: Annotated[str | None, Query(pattern=TAG_PATTERN)] = None,
) -> Leaderboard:
    """Most trusted agents first; with ``tag``, ranked by their trust for that capability."""
    async with state.db.session() as session:
        return await trust.leaderboard(session, limit=limit, tier=tier, tag=tag)
