"""/v1/trust: the leaderboard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ains.api.deps import AgentsRead, State
from ains.api.json_body import SafeJSONRoute
from ains.api.read_cache import cache_key
from ains.core.agents import trust
from ains.models.capabilities import TAG_PATTERN
from ains.models.trust import TrustTier
from ains.models.trust_views import Leaderboard

router = APIRouter(prefix="/v1/trust", tags=["trust"], route_class=SafeJSONRoute)


@router.get("/leaderboard", response_model=Leaderboard)
async def leaderboard(
    request: Request,
    state: State,
    _: AgentsRead,
    limit: Annotated[int, Query(ge=1, le=trust.MAX_PAGE_SIZE)] = 20,
    tier: TrustTier | None = None,
    tag: Annotated[str | None, Query(pattern=TAG_PATTERN)] = None,
) -> Response:
    """Most trusted agents first; with ``tag``, ranked by their trust for that capability. May be up to
    AINS_REGISTRY_READ_CACHE_TTL_SECONDS old (``Cache-Control: no-cache``: fresh)."""

    async def read() -> bytes:
        # Serialized straight from registry rows (the JSON of Leaderboard, byte for byte), on a plain connection.
        async with state.db.engine.connect() as conn:
            return await trust.leaderboard_json(conn, limit=limit, tier=tier, tag=tag)

    # The same for every caller: the key is the query alone.
    params = [("limit", limit), ("tier", None if tier is None else tier.value), ("tag", tag)]
    return await state.read_cache.respond(request, cache_key("/v1/trust/leaderboard", params), read)
