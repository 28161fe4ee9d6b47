"""/v1/trust: the leaderboard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

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
) -> Response:
    """Most trusted agents first; with ``tag``, ranked by their trust for that capability."""
    # Serialized straight from registry rows (the JSON of Leaderboard, byte for byte), on a plain connection.
    async with state.db.engine.connect() as conn:
        body = await trust.leaderboard_json(conn, limit=limit, tier=tier, tag=tag)
    return Response(body, media_type="application/json")
