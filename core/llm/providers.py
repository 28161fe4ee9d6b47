"""The AI provider manager: model groups from one YAML file, called through litellm's Router.

litellm does what it does well: deployments, weighted choice, per-deployment rpm/tpm, cooldown (circuit
breaker) and fallbacks. Each priority of a model group is a litellm model group ``<name>@<priority>``; the
first one falls back to the next ones in order. ``num_retries=0``: Temporal owns retries.

API keys are read from the environment variable each deployment names, here and nowhere else (the variable
names are user-chosen, so they cannot be fields of Settings), and are scrubbed from every error message.
litellm is imported on first use only: it takes seconds to import.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ains.core.llm.metrics import PROVIDER_INFO_KEY
from ains.core.platform.errors import InvalidInput
from ains.core.platform.settings import Settings
from ains.models.llm import LlmAnswer, LlmUsage
from ains.models.providers import (
    DeploymentConfig,
    DeploymentView,
    ModelGroupConfig,
    ModelGroupView,
    ProvidersConfig,
    ProvidersView,
)

log = logging.getLogger("ains.llm")

ERROR_CHARS = 500
# A rough count for budget estimates before the call (the real usage settles the reservation).
CHARS_PER_TOKEN = 4
# Local OpenAI-compatible servers need some key; a deployment without api_key_env gets this placeholder.
NO_KEY = "no-key"


def load_providers(settings: Settings) -> tuple[ProvidersConfig, str | None]:
    """The configured providers, or an empty configuration when no file is set."""
    path = settings.providers_file
    if path is None:
        return ProvidersConfig(), None
    return parse_providers_file(path), str(path)


def parse_providers_file(path: Path) -> ProvidersConfig:
    try:
        raw: Any = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise InvalidInput(f"cannot read the providers file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the providers file {path} is not valid YAML: {exc}") from exc
    try:
        return ProvidersConfig.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"the providers file {path} is invalid: {exc}") from exc


class LlmCallFailed(Exception):
    """Every deployment that could be tried failed (or timed out); ``timeout`` tells which."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout


@dataclass(frozen=True)
class Prices:
    input_per_token: float
    output_per_token: float


def _secret(deployment: DeploymentConfig) -> str | None:
    return os.environ.get(deployment.api_key_env) if deployment.api_key_env else None


class ProviderManager:
    """One per process; builds the litellm Router on first call."""

    def __init__(self, config: ProvidersConfig, source: str | None = None) -> None:
        self.config = config
        self.source = source
        self._router: Any = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderManager:
        config, source = load_providers(settings)
        return cls(config, source)

    # --- configuration views ------------------------------------------------------------------------
    def group(self, name: str) -> ModelGroupConfig:
        group = self.config.group(name)
        if group is None:
            known = ", ".join(g.name for g in self.config.model_groups) or "none configured"
            raise InvalidInput(f"model group {name!r} is not configured (known: {known})")
        return group

    def view(self) -> ProvidersView:
        cooling = self._cooling_down()
        groups = []
        for g in self.config.model_groups:
            deployments = [
                DeploymentView(
                    id=d.id,
                    provider=d.provider,
                    model=d.model,
                    api_base=d.api_base,
                    api_key_env=d.api_key_env,
                    credentials_present=d.api_key_env is None or bool(_secret(d)),
                    priority=d.priority,
                    weight=d.weight,
                    rpm=d.rpm,
                    tpm=d.tpm,
                    timeout_seconds=d.timeout_seconds or g.timeout_seconds,
                    input_cost_per_million=d.input_cost_per_million,
                    output_cost_per_million=d.output_cost_per_million,
                    cooling_down=d.id in cooling,
                )
                for d in g.deployments
            ]
            order = [[d.id for d in g.deployments if d.priority == p] for p in g.priorities()]
            groups.append(
                ModelGroupView(
                    name=g.name,
                    description=g.description,
                    max_output_tokens=g.max_output_tokens,
                    timeout_seconds=g.timeout_seconds,
                    fallback_order=order,
                    deployments=deployments,
                )
            )
        return ProvidersView(source=self.source, cooldown=self.config.cooldown, model_groups=groups)

    def _cooling_down(self) -> set[str]:
        if self._router is None:
            return set()
        try:
            from litellm.router_utils.cooldown_handlers import _get_cooldown_deployments

            return set(_get_cooldown_deployments(litellm_router_instance=self._router, parent_otel_span=None))  # type: ignore[misc]
        except Exception:  # a private helper of litellm: its absence must not break the listing
            return set()

    # --- prices and estimates -----------------------------------------------------------------------
    def prices(self, deployment: DeploymentConfig) -> Prices:
        if deployment.input_cost_per_million is not None or deployment.output_cost_per_million is not None:
            return Prices(
                (deployment.input_cost_per_million or 0.0) / 1e6, (deployment.output_cost_per_million or 0.0) / 1e6
            )
        import litellm  # the local cost map (LITELLM_LOCAL_MODEL_COST_MAP=True), no network

        info = litellm.model_cost.get(deployment.model) or litellm.model_cost.get(deployment.model.split("/", 1)[-1])
        if not info:
            return Prices(0.0, 0.0)
        return Prices(float(info.get("input_cost_per_token") or 0.0), float(info.get("output_cost_per_token") or 0.0))

    def estimate_cost(self, group: ModelGroupConfig, prompt: str) -> float:
        """The most this call can cost: the dearest deployment, the prompt, and the full output allowance."""
        prompt_tokens = len(prompt) // CHARS_PER_TOKEN + 16
        worst = 0.0
        for d in group.deployments:
            p = self.prices(d)
            worst = max(worst, prompt_tokens * p.input_per_token + group.max_output_tokens * p.output_per_token)
        return round(worst, 8)

    def cost(self, deployment: DeploymentConfig, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.prices(deployment)
        return round(prompt_tokens * p.input_per_token + completion_tokens * p.output_per_token, 10)

    # --- calling ------------------------------------------------------------------------------------
    def _model_list(self) -> tuple[list[dict[str, Any]], list[dict[str, list[str]]]]:
        model_list: list[dict[str, Any]] = []
        fallbacks: list[dict[str, list[str]]] = []
        for g in self.config.model_groups:
            tiers = [f"{g.name}@{p}" for p in g.priorities()]
            if len(tiers) > 1:
                fallbacks.append({tiers[0]: tiers[1:]})
            for d in g.deployments:
                params: dict[str, Any] = {
                    "model": d.model,
                    "api_key": _secret(d) or NO_KEY,
                    "timeout": d.timeout_seconds or g.timeout_seconds,
                    "weight": d.weight,
                }
                if d.api_base:
                    params["api_base"] = d.api_base
                if d.rpm is not None:
                    params["rpm"] = d.rpm
                if d.tpm is not None:
                    params["tpm"] = d.tpm
                model_list.append(
                    {
                        "model_name": f"{g.name}@{d.priority}",
                        "litellm_params": params,
                        "model_info": {"id": d.id, PROVIDER_INFO_KEY: d.provider},
                    }
                )
        return model_list, fallbacks

    def preload(self) -> None:
        """Import litellm now when model groups are configured: done lazily inside the first call, the import
        (seconds on a small machine) blocks the worker's event loop, so every call in flight misses its
        heartbeats and Temporal cancels and retries them."""
        if self.config.model_groups:
            import litellm.router  # noqa: F401

            from ains.core.llm.metrics import install_litellm_callback  # noqa: F401

    async def router(self) -> Any:
        if self._router is not None:
            return self._router
        async with self._lock:
            if self._router is None:
                from litellm.router import Router

                from ains.core.llm.metrics import install_litellm_callback

                install_litellm_callback()
                model_list, fallbacks = self._model_list()
                cooldown = self.config.cooldown
                self._router = Router(
                    model_list=model_list,
                    fallbacks=fallbacks,
                    num_retries=0,  # Temporal owns retries
                    max_fallbacks=max(len(g.priorities()) for g in self.config.model_groups)
                    if self.config.model_groups
                    else 0,
                    allowed_fails=cooldown.allowed_fails,
                    cooldown_time=cooldown.cooldown_seconds,
                    enable_pre_call_checks=True,  # skips deployments at their rpm limit
                    routing_strategy="simple-shuffle",  # weighted
                )
        return self._router

    def _scrub(self, text: str) -> str:
        for g in self.config.model_groups:
            for d in g.deployments:
                secret = _secret(d)
                if secret and len(secret) >= 4:
                    text = text.replace(secret, "***")
        return text[:ERROR_CHARS]

    async def complete(self, group_name: str, messages: list[dict[str, str]]) -> LlmAnswer:
        """One completion from ``group_name``, after cooldowns and fallbacks; raises LlmCallFailed."""
        group = self.group(group_name)
        router = await self.router()
        from litellm.exceptions import Timeout

        kwargs: dict[str, Any] = {"max_tokens": group.max_output_tokens}
        if group.temperature is not None:
            kwargs["temperature"] = group.temperature
        started = time.perf_counter()
        try:
            response = await router.acompletion(
                model=f"{group.name}@{group.priorities()[0]}", messages=messages, **kwargs
            )
        except Timeout as exc:
            raise LlmCallFailed(
                f"model group {group.name!r} timed out (its deployments' timeout_seconds in the providers file): "
                f"{self._scrub(str(exc))}",
                timeout=True,
            ) from exc
        except Exception as exc:  # litellm raises many types; all mean no deployment answered
            raise LlmCallFailed(
                f"model group {group.name!r} failed: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from exc
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        hidden: dict[str, Any] = getattr(response, "_hidden_params", {}) or {}
        deployment = self.config.deployment(str(hidden.get("model_id") or ""))
        if deployment is None:
            raise LlmCallFailed(
                f"model group {group.name!r}: the answering deployment is unknown ({hidden.get('model_id')})"
            )
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        content = response.choices[0].message.content or ""
        return LlmAnswer(
            content=content,
            model_group=group.name,
            deployment_id=deployment.id,
            provider=deployment.provider,
            model=deployment.model,
            usage=LlmUsage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
                cost_usd=self.cost(deployment, prompt_tokens, completion_tokens),
            ),
            latency_ms=latency_ms,
        )
