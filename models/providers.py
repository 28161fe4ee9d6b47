"""Configuration of LLM providers and model groups (one YAML file) and its public view.

A model group is what an LLM agent names. Its deployments are tried in ``priority`` order (1 first): within
one priority the router spreads calls by ``weight`` and skips deployments that are cooling down or at their
rpm/tpm limit; when every deployment of a priority fails, the next priority is tried. API keys never appear
here: a deployment names the environment variable that holds its key (``api_key_env``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from ains.models.common import StrictModel

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]{0,127}$"


class DeploymentConfig(StrictModel):
    id: str = Field(pattern=NAME_PATTERN, description="Unique across the file; recorded with every call.")
    provider: str = Field(min_length=1, max_length=64, description="Label for usage and metrics, e.g. 'openai'.")
    model: str = Field(min_length=1, max_length=200, description="litellm model string, e.g. 'openai/gpt-4o-mini'.")
    api_base: str | None = Field(default=None, max_length=2048)
    api_key_env: str | None = Field(
        default=None, pattern=ENV_NAME_PATTERN, description="Environment variable holding the API key."
    )
    priority: int = Field(default=1, ge=1, le=100, description="Fallback order: 1 is tried first.")
    weight: int = Field(default=1, ge=1, le=1000, description="Share of calls among deployments of one priority.")
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute this deployment accepts.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute this deployment accepts.")
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600, description="Default: the group's.")
    input_cost_per_million: float | None = Field(default=None, ge=0, description="USD per 1M prompt tokens.")
    output_cost_per_million: float | None = Field(default=None, ge=0, description="USD per 1M completion tokens.")


class ModelGroupConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=500)
    deployments: list[DeploymentConfig] = Field(min_length=1, max_length=50)
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    max_output_tokens: int = Field(default=1024, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)

    def priorities(self) -> list[int]:
        return sorted({d.priority for d in self.deployments})


class CooldownConfig(StrictModel):
    """Circuit breaker: a deployment failing more than ``allowed_fails`` times in a minute rests this long."""

    allowed_fails: int = Field(default=3, ge=0, le=1000)
    cooldown_seconds: float = Field(default=30.0, ge=0, le=86_400)


class ProvidersConfig(StrictModel):
    model_groups: list[ModelGroupConfig] = Field(default_factory=list)
    cooldown: CooldownConfig = Field(default_factory=CooldownConfig)

    @model_validator(mode="after")
    def _unique_names(self) -> ProvidersConfig:
        groups = [g.name for g in self.model_groups]
        repeated = sorted({g for g in groups if groups.count(g) > 1})
        if repeated:
            raise ValueError(f"model group names must be unique; repeated: {', '.join(repeated)}")
        ids = [d.id for g in self.model_groups for d in g.deployments]
        repeated = sorted({d for d in ids if ids.count(d) > 1})
        if repeated:
            raise ValueError(f"deployment ids must be unique across groups; repeated: {', '.join(repeated)}")
        return self

    def group(self, name: str) -> ModelGroupConfig | None:
        return next((g for g in self.model_groups if g.name == name), None)

    def deployment(self, deployment_id: str) -> DeploymentConfig | None:
        return next((d for g in self.model_groups for d in g.deployments if d.id == deployment_id), None)


class DeploymentView(BaseModel):
    id: str
    provider: str
    model: str
    api_base: str | None
    api_key_env: str | None = Field(description="Name of the environment variable only; never its value.")
    credentials_present: bool
    priority: int
    weight: int
    rpm: int | None
    tpm: int | None
    timeout_seconds: float
    input_cost_per_million: float | None
    output_cost_per_million: float | None
    cooling_down: bool


class ModelGroupView(BaseModel):
    name: str
    description: str | None
    max_output_tokens: int
    timeout_seconds: float
    fallback_order: list[list[str]] = Field(description="Deployment ids per priority, tried in this order.")
    deployments: list[DeploymentView]


class ProvidersView(BaseModel):
    source: str | None = Field(description="The providers file, or null when none is configured.")
    cooldown: CooldownConfig
    model_groups: list[ModelGroupView]
