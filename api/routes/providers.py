"""/v1/providers: the configured model groups and deployments (never their secrets)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ains.api.deps import AgentsRead, State
from ains.api.json_body import SafeJSONRoute
from ains.core.llm.service import LlmService
from ains.models.providers import ProvidersView

router = APIRouter(prefix="/v1/providers", tags=["llm"], route_class=SafeJSONRoute)


def llm_service(request: Request, state: State) -> LlmService:
    """The API process's LLM service (plan generator), created on first use; litellm loads on the first call."""
    service: LlmService | None = getattr(request.app.state, "ains_llm", None)
    if service is None:
        service = LlmService.from_settings(state.settings, state.db, state.redis)
        request.app.state.ains_llm = service
    return service


@router.get("", response_model=ProvidersView)
async def list_providers(request: Request, state: State, _: AgentsRead) -> ProvidersView:
    """Model groups in fallback order, with weights, rpm/tpm limits, timeouts, prices and cooldown state.

    API keys are never shown: only the name of the environment variable and whether it is set.
    """
    return llm_service(request, state).providers.view()
