"""The one place configuration is read. Every field maps to an ``AINS_<NAME>`` environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ains.models.feedback import Objectives

DEFAULT_WEBHOOK_SECRET = "dev-insecure-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AINS_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".ains")

    # Registry database. Empty means a SQLite file under data_dir.
    database_url: str = ""
    database_pool_size: int = Field(default=10, ge=1)

    # Redis for rate limits and caches; empty means in-process.
    redis_url: str = ""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    temporal_ui_port: int = 8233
    temporal_priority_levels: int = Field(default=10, ge=1, le=100)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Longer than the idle timeout of a load balancer in front (60 s on AWS ALB and many proxies): a server that
    # closes an idle keep-alive connection first races the balancer's reuse of it, and the client gets a 502.
    api_keepalive_seconds: int = Field(default=75, ge=1, le=3600)
    public_api_url: str = "http://127.0.0.1:8000"
    demo_agent_host: str = "127.0.0.1"
    demo_agent_port: int = 8001

    # Request validation limits.
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    max_task_input_bytes: int = Field(default=262_144, ge=64)
    max_timeout_seconds: int = Field(default=3600, ge=1)
    max_attempts_limit: int = Field(default=10, ge=1)

    # Chains and plans (README "Composition"). Steps per plan and per chain, and the longest dependency chain
    # of a plan in steps (the schema accepts at most 10,000 steps whatever these say).
    max_plan_steps: int = Field(default=1000, ge=1, le=10_000)
    max_plan_depth: int = Field(default=1000, ge=1, le=10_000)
    max_chain_steps: int = Field(default=1000, ge=1, le=10_000)
    # A step's input once references and the previous output are filled in. It lives in the registry DB
    # (never in a Temporal payload); the step's own input, as written in the request, by max_task_input_bytes.
    max_step_input_bytes: int = Field(default=16_777_216, ge=64)
    # A composition's workflow continues as new when its run's history reaches this many events (or when
    # Temporal suggests it), and after this many started steps (0: no step count limit).
    composition_max_history_events: int = Field(default=10_000, ge=100, le=50_000)
    composition_steps_per_run: int = Field(default=0, ge=0)

    default_routing_strategy: Literal[
        "round_robin", "least_loaded", "trust_weighted", "fastest_response", "adaptive"
    ] = "least_loaded"

    # Adaptive routing (README "Adaptive routing"). Objective weights of a task that gives none; latency and
    # cost reach the objective as 1 / (1 + value / scale). Each utility's posterior spread is clamped to
    # [floor, cap] (bounded exploration). Each new observation of a (tag, agent) discounts the older ones
    # by adaptive_discount (recent evidence weighs more; 0.98 keeps about the last 50). adaptive_learning:
    # every attempt feeds the evidence whatever its task's strategy (about 3 ms of worker CPU per attempt);
    # off, only adaptively routed tasks do.
    adaptive_objectives: Objectives = Field(default_factory=Objectives)
    adaptive_latency_scale_ms: float = Field(default=1000.0, gt=0)
    adaptive_cost_scale_usd: float = Field(default=0.01, gt=0)
    adaptive_exploration_floor: float = Field(default=0.02, ge=0, le=0.5)
    adaptive_exploration_cap: float = Field(default=0.25, gt=0, le=1)
    adaptive_discount: float = Field(default=0.98, gt=0, le=1)
    adaptive_learning: bool = False

    # How long a worker reuses agents' capabilities, trust and availability when routing (live load is
    # always fresh); registry changes reach routing within this time. 0 reads everything on every decision.
    routing_cache_ttl_seconds: float = Field(default=1.0, ge=0)

    # Age-based priority boost: a waiting task gains one priority level per this many seconds (0 disables).
    priority_aging_seconds: float = Field(default=60.0, ge=0)
    # Fair share between clients waiting at the same priority: weight per client id (default 1), e.g.
    # AINS_CLIENT_WEIGHTS='{"team-a": 2}' gives team-a two turns for every one of a client of weight 1.
    client_weights: dict[str, Annotated[float, Field(gt=0, le=1000)]] = Field(default_factory=dict)
    # The dispatch reconciler (a Temporal Schedule): how often it runs, and how old a hand-over whose
    # signal was never confirmed, or a wait next to a free capable slot, must be before it repairs it.
    dispatch_reconcile_interval_seconds: float = Field(default=15.0, ge=1)
    dispatch_reconcile_after_seconds: float = Field(default=5.0, gt=0)
    # A waiting task re-checks the registry itself this often (jittered by +-25 %), only as a safety net:
    # slots are handed over by signal.
    dispatch_fallback_recheck_seconds: float = Field(default=300.0, ge=1)
    # A batch bigger than its agents' free slots joins the dispatch queue before its runs start (core.composition.batch_queue);
    # off: every batch task starts its run at once and routes itself, by its own strategy.
    batch_queue_ahead: bool = True

    # Scheduled agent health check (a Temporal Schedule): pings health URLs, expires stale heartbeats.
    health_check_interval_seconds: float = Field(default=30.0, ge=1)
    health_check_timeout_seconds: float = Field(default=3.0, gt=0)
    # Agents that send heartbeats are marked unavailable after this much silence; 0 disables.
    heartbeat_ttl_seconds: float = Field(default=90.0, ge=0)

    # Rate limit applied per API key unless the key sets its own (requests per minute).
    default_rate_limit_per_minute: int = Field(default=6000, ge=1)
    # How long an API process trusts an API key it verified before looking it up again (0: every request).
    # A key revoked through one API process stops working there at once and on the others within this time.
    api_key_cache_ttl_seconds: float = Field(default=5.0, ge=0)
    # How long an API process serves GET /v1/agents and GET /v1/trust/leaderboard from its response cache:
    # live load, trust and other processes' writes show within this time, agent and trust writes through
    # the same process at once (README "API overview"). 0 disables the cache.
    registry_read_cache_ttl_seconds: float = Field(default=1.0, ge=0)
    # GET /v1/tasks/{id}/events: how often the stream reads the task's status from the registry, and how long
    # it may stay silent before it sends a keep-alive comment.
    task_events_poll_seconds: float = Field(default=0.25, gt=0)
    task_events_ping_seconds: float = Field(default=10.0, gt=0)

    # Agent-call activity tuning. The heartbeat timeout bounds how long a task waits
    # after a worker dies mid-call before Temporal re-runs the call on another worker.
    agent_heartbeat_interval_seconds: float = Field(default=1.0, gt=0)
    # Outbound HTTP to agents: the task's own timeout_seconds is the read and total deadline of a call;
    # establishing the connection has this one (a refused or unreachable agent fails fast).
    agent_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    agent_heartbeat_timeout_seconds: float = Field(default=10.0, gt=0)
    # The task queue that runs HTTP agent calls. "orchestration" (default): the worker that runs the task's
    # workflow also makes its agent calls, and takes each one eagerly (handed back with the workflow task that
    # scheduled it: no matching round trip, about a fifth less Temporal server work per task). "agents": a
    # separate worker pool that scales on its own (deploy/k8s sets this). Runs started before keep "agents".
    agent_calls_queue: Literal["orchestration", "agents"] = "orchestration"
    # Concurrent agent calls per worker process, on whichever queue runs them.
    agent_call_concurrency: int = Field(default=500, ge=1)
    # With calls on the orchestration queue, an HTTP agent whose mean response time is at most this many ms is
    # called inline: a local activity of the workflow task that routed the attempt (or started the run handed
    # its slot), not an activity task. That saves a trip through Temporal per call (README, "Inline
    # calls"). Agents not yet measured, slower, or LLM agents take the queue; 0 turns it off. A call still
    # unanswered after 3 s (models.workflow_io.INLINE_CALL_LIMIT_SECONDS) is delivered again through the queue.
    agent_inline_call_max_ms: float = Field(default=500.0, ge=0)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    no_agent_wait_seconds: float = Field(default=300.0, ge=0)
    worker_sticky_timeout_seconds: float = Field(default=10.0, gt=0)
    # Run workflows in Temporal's sandbox, which re-imports each workflow module per run and checks every call
    # against a list of non-deterministic ones: about 8 ms of worker CPU per task, half of AINS's workflow cost.
    # AINS's workflows are its own code, not users': the test suite runs them sandboxed and the recorded
    # histories replay sandboxed in CI, so production runs them without it (README, "Workflow sandbox").
    workflow_sandbox: bool = False
    # In-flight activities get this long to finish on SIGTERM; k8s terminationGracePeriodSeconds must exceed it.
    worker_shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    # Prometheus metrics of each worker process on this port: AINS domain metrics (routing, agent calls,
    # trust, webhooks, queue wait, task duration) and the Temporal SDK's worker metrics; 0 disables.
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    # Loopback like every other listener by default; deployments that scrape workers from elsewhere (compose,
    # k8s) set AINS_WORKER_METRICS_HOST=0.0.0.0 explicitly.
    worker_metrics_host: str = "127.0.0.1"

    # LLM providers and model groups (YAML, see deploy/providers.example.yaml); empty: no model groups.
    # API keys are never in the file: each deployment names the environment variable holding its key.
    providers_file: Path | None = None
    # Response cache of LLM calls per (client, model group, prompt); 0 disables it.
    llm_cache_ttl_seconds: float = Field(default=0.0, ge=0)

    # Signs requests to agents (X-AINS-Signature); must be changed outside development.
    agent_signing_secret: str = DEFAULT_WEBHOOK_SECRET

    # Webhook delivery: each event is retried with exponential backoff (plus up to 20% jitter) until
    # it is delivered or the retry period has passed; then it is dead-lettered.
    webhook_retry_period_seconds: float = Field(default=86_400.0, gt=0)
    webhook_initial_backoff_seconds: float = Field(default=5.0, gt=0)
    webhook_max_backoff_seconds: float = Field(default=3600.0, gt=0)
    webhook_request_timeout_seconds: float = Field(default=10.0, gt=0)
    # Signs per-task callback_url deliveries (subscriptions have their own secrets).
    callback_signing_secret: str = DEFAULT_WEBHOOK_SECRET

    # Outbound URLs (agents, webhooks): link-local and cloud-metadata addresses are always refused.
    # Loopback is allowed unless set to false (default: allowed outside production); private ranges
    # (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10) only when allowed here.
    allow_loopback_urls: bool | None = None
    allow_private_urls: bool = False

    # Observability and hardening (see README "Observability").
    # Log lines as JSON objects (request_id, task_id, workflow_id, trace_id when known) or plain text.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # OpenTelemetry tracing through API, workflows and activities (needs the `otel` extra).
    otel_enabled: bool = False
    otel_service_name: str = "ains"
    # OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces; empty: spans only feed trace ids to logs.
    otel_exporter_endpoint: str = ""
    # Comma-separated origins allowed by CORS, e.g. "https://app.example.com"; empty: no CORS headers at all.
    cors_origins: str = ""
    # Audit log of every mutation under /v1 and every dashboard action (GET /v1/audit).
    audit_enabled: bool = True
    # Dashboard (/ui): signs session cookies and CSRF tokens; must be changed outside development.
    ui_session_secret: str = DEFAULT_WEBHOOK_SECRET
    # A dashboard sign-in lasts this long (and never past the key's own expiry or revocation).
    ui_session_ttl_seconds: int = Field(default=8 * 3600, gt=0, le=30 * 86_400)

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> Settings:
        # Outside development every secret setting must differ from its shipped default and from the
        # well-known development values (docker-compose.yml's credentials included).
        if self.environment == "development":
            return self
        for name in secret_setting_names():
            value = getattr(self, name)
            if isinstance(value, str) and value and _is_default_secret(name, value):
                what = "development credentials" if name in SECRET_URL_SETTINGS else "a default secret"
                raise ValueError(f"AINS_{name.upper()} uses {what}; set a real one outside development")
        return self

    @model_validator(mode="after")
    def _exploration_bounds(self) -> Settings:
        if self.adaptive_exploration_floor > self.adaptive_exploration_cap:
            raise ValueError("AINS_ADAPTIVE_EXPLORATION_FLOOR must not exceed AINS_ADAPTIVE_EXPLORATION_CAP")
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def loopback_urls_allowed(self) -> bool:
        if self.allow_loopback_urls is not None:
            return self.allow_loopback_urls
        return self.environment != "production"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ains.db').resolve()}"

    def inline_call_max_ms(self) -> float:
        """The inline-call limit tasks are started with: 0 (off) when calls have a worker pool of their own."""
        return self.agent_inline_call_max_ms if self.agent_calls_queue == "orchestration" else 0.0

    def workflow_ui_link(self, workflow_id: str) -> str:
        return f"{self.temporal_ui_url}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}"


# Settings holding secrets: never logged, and refused outside development when left at a default.
SECRET_SUFFIXES = ("_secret", "_api_key", "_password", "_token")
SECRET_URL_SETTINGS = ("database_url", "redis_url")
# Compared case-insensitively; includes the placeholders of deploy/k8s/secret.yaml.
KNOWN_DEV_SECRETS = frozenset(
    {
        DEFAULT_WEBHOOK_SECRET,
        "changeme",
        "change-me",
        "change_me",
        "replace_me",
        "replace-me",
        "secret",
        "password",
        "ains",
    }
)
KNOWN_DEV_URL_CREDENTIALS = ("://ains:ains@", "://postgres:postgres@", "://temporal:temporal@", ":replace_me@")


def secret_setting_names() -> list[str]:
    names = [n for n in Settings.model_fields if n.endswith(SECRET_SUFFIXES)]
    return names + [n for n in SECRET_URL_SETTINGS if n in Settings.model_fields]


def _is_default_secret(name: str, value: str) -> bool:
    if name in SECRET_URL_SETTINGS:
        return any(cred in value.lower() for cred in KNOWN_DEV_URL_CREDENTIALS)
    default = Settings.model_fields[name].default
    return value == default or value.lower() in KNOWN_DEV_SECRETS


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
