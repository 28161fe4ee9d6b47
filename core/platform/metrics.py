"""AINS domain metrics (Prometheus) recorded where the work happens, mostly in worker processes.

They live in their own registry, ``DOMAIN_REGISTRY``. Each worker process serves one ``/metrics`` on
``AINS_WORKER_METRICS_PORT`` (9464) with both these and the Temporal SDK's worker metrics: the SDK's
Prometheus exporter binds an internal port on 127.0.0.1 and ``serve_worker_metrics`` appends its text to
ours, so one scrape target per worker carries everything. The API's ``/metrics`` appends this registry
too (the API records the few it owns, and in a single-process dev stack the workers share it).

Most are recorded by ``DomainMetricsInterceptor`` around activities, from their typed inputs and
results, so activities stay free of metric code; queue wait and task duration are observed in
core.routing.decide / core.tasks.attempts where the task row is at hand.
"""

from __future__ import annotations

import logging
import socket
import threading
import urllib.request
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from temporalio import activity
from temporalio import client as temporal_client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from ains.models.workflow_io import PLATFORM_ERROR

log = logging.getLogger("ains.metrics")

DOMAIN_REGISTRY = CollectorRegistry()
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

ROUTING_DECISIONS = Counter(
    "ains_routing_decisions",
    "Routing decisions by strategy and outcome (assigned, all_busy, no_capable_agent)",
    ["strategy", "outcome"],
    registry=DOMAIN_REGISTRY,
)
AGENT_CALLS = Counter(
    "ains_agent_calls", "Agent calls by agent and outcome", ["agent_id", "outcome"], registry=DOMAIN_REGISTRY
)
AGENT_CALL_ERRORS = Counter(
    "ains_agent_call_errors",
    "Failed or timed-out agent calls by agent",
    ["agent_id", "outcome"],
    registry=DOMAIN_REGISTRY,
)
AGENT_CALL_DURATION = Histogram(
    "ains_agent_call_duration_seconds",
    "Agent call latency by agent",
    ["agent_id"],
    buckets=DURATION_BUCKETS,
    registry=DOMAIN_REGISTRY,
)
TRUST_CHANGES = Counter(
    "ains_trust_changes", "Trust score changes by event type", ["event_type"], registry=DOMAIN_REGISTRY
)
WEBHOOK_ATTEMPTS = Counter(
    "ains_webhook_delivery_attempts",
    "Webhook delivery attempts by outcome (delivered, failed, refused)",
    ["outcome"],
    registry=DOMAIN_REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "ains_webhook_deliveries",
    "Webhook deliveries finished, by final status (succeeded, dead)",
    ["status"],
    registry=DOMAIN_REGISTRY,
)
QUEUE_WAIT = Histogram(
    "ains_task_queue_wait_seconds",
    "Time from submission to the first agent assignment, by task type",
    ["type"],
    buckets=DURATION_BUCKETS,
    registry=DOMAIN_REGISTRY,
)
TASK_DURATION = Histogram(
    "ains_task_duration_seconds",
    "Time from submission to a final status, by task type and status",
    ["type", "status"],
    buckets=DURATION_BUCKETS,
    registry=DOMAIN_REGISTRY,
)

HANDOVERS = Counter(
    "ains_dispatch_handovers",
    "Freed slots handed to waiting tasks, by who freed them (attempt, finish, routing, agent, reconciler)",
    ["source"],
    registry=DOMAIN_REGISTRY,
)
DISPATCH_REPAIRS = Counter(
    "ains_dispatch_repairs",
    "Work of the dispatch reconciler: signals re-sent, slots released, idle slots handed over, queued tasks "
    "whose queue timeout ran out (their runs started to fail them), runs of pending tasks started again "
    "(idempotently) because none had taken a step",
    ["kind"],
    registry=DOMAIN_REGISTRY,
)

_TRUST_EVENT = {"success": "success", "failure": "failure", "timeout": "timeout"}


def observe_handovers(source: str, count: int) -> None:
    HANDOVERS.labels(source=source).inc(count)


def observe_dispatch_repairs(counts: Mapping[str, int]) -> None:
    """One reconciler round's repairs by kind (core.routing.dispatch.Repairs)."""
    for kind, count in counts.items():
        if count:
            DISPATCH_REPAIRS.labels(kind=kind).inc(count)


def observe_queue_wait(task_type: str, seconds: float) -> None:
    QUEUE_WAIT.labels(type=task_type).observe(max(0.0, seconds))


def observe_task_finished(task_type: str, status: str, seconds: float) -> None:
    TASK_DURATION.labels(type=task_type, status=status).observe(max(0.0, seconds))


def _value(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None)
    return getattr(value, "value", value)


def _on_route(args: tuple[Any, ...], result: Any) -> None:
    if args and result is not None:
        ROUTING_DECISIONS.labels(str(_value(args[0], "strategy")), str(_value(result, "outcome"))).inc()


def _on_agent_call(args: tuple[Any, ...], result: Any) -> None:
    agent_id = str(_value(args[0], "agent_id")) if args else "unknown"
    outcome = str(_value(result, "outcome"))
    if _value(result, "error_code") == PLATFORM_ERROR:
        outcome = PLATFORM_ERROR  # AINS's fault, not the agent's: kept out of the agent's error count
    AGENT_CALLS.labels(agent_id, outcome).inc()
    if outcome not in ("success", PLATFORM_ERROR):
        AGENT_CALL_ERRORS.labels(agent_id, outcome).inc()
    duration_ms = _value(result, "duration_ms")
    if isinstance(duration_ms, int | float):
        AGENT_CALL_DURATION.labels(agent_id).observe(duration_ms / 1000)
    if _value(getattr(result, "finished", None), "applied") is True and outcome != PLATFORM_ERROR:
        TRUST_CHANGES.labels(_TRUST_EVENT.get(outcome, outcome)).inc()  # recorded in the call (one step)


def _on_route_and_call(args: tuple[Any, ...], result: Any) -> None:
    """route_and_call: its routing decision, and its inline call when it made one."""
    if not args:
        return
    _on_route((getattr(args[0], "route", None),), getattr(result, "decision", None))
    called = getattr(result, "result", None)
    if called is not None:
        _on_agent_call((result.decision,), called)  # the decision names the agent called


def _on_record(args: tuple[Any, ...], result: Any) -> None:
    if result is True and args:  # applied now, not a replay or retry of an earlier application
        outcome = str(_value(getattr(args[0], "result", None), "outcome"))
        TRUST_CHANGES.labels(_TRUST_EVENT.get(outcome, outcome)).inc()


def _on_finish_attempt(args: tuple[Any, ...], result: Any) -> None:
    _on_record(args, _value(result, "applied"))


def _on_webhook_attempt(_: tuple[Any, ...], result: Any) -> None:
    if _value(result, "delivered"):
        outcome = "delivered"
        WEBHOOK_DELIVERIES.labels("succeeded").inc()  # a delivered event ends its delivery
    else:
        outcome = "refused" if _value(result, "permanent") else "failed"
    WEBHOOK_ATTEMPTS.labels(outcome).inc()


def _on_webhook_finish(args: tuple[Any, ...], _: Any) -> None:
    # The workflow calls finish only to dead-letter; successes are counted at the delivering attempt.
    if args:
        WEBHOOK_DELIVERIES.labels(str(_value(args[0], "status"))).inc()


_RECORDERS: dict[str, Callable[[tuple[Any, ...], Any], None]] = {
    "route_task": _on_route,
    "call_agent": _on_agent_call,
    "route_and_call": _on_route_and_call,
    "record_attempt": _on_record,
    "finish_attempt": _on_finish_attempt,
    "attempt_webhook_delivery": _on_webhook_attempt,
    "finish_webhook_delivery": _on_webhook_finish,
}


class _ActivityMetrics(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        log.debug("activity %s finished", activity.info().activity_type)
        recorder = _RECORDERS.get(activity.info().activity_type)
        if recorder is None and type(result).__name__ == "AgentCallResult":
            recorder = _on_agent_call  # other agent-call activities (e.g. LLM providers) share the shape
        if recorder is not None:
            try:
                recorder(tuple(input.args), result)
            except Exception:  # metrics must never fail an activity
                log.exception("recording metrics for %s failed", activity.info().activity_type)
        return result


class DomainMetricsInterceptor(temporal_client.Interceptor, Interceptor):
    """Records domain metrics from activity inputs and results; set on the client, so its workers use it."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityMetrics(next)


_servers: dict[int, ThreadingHTTPServer] = {}
SDK_SCRAPE_TIMEOUT_SECONDS = 2.0


def render_worker_metrics(sdk_metrics_url: str | None) -> bytes:
    """This process's AINS metrics followed by the Temporal SDK's (metric names never overlap)."""
    body = generate_latest(DOMAIN_REGISTRY)
    if sdk_metrics_url:
        try:
            with urllib.request.urlopen(sdk_metrics_url, timeout=SDK_SCRAPE_TIMEOUT_SECONDS) as response:
                sdk: bytes = response.read()
        except OSError as exc:
            sdk = f"# Temporal SDK metrics unavailable: {exc}\n".encode()
        body += sdk if sdk.endswith(b"\n") or not sdk else sdk + b"\n"
    return body


def serve_worker_metrics(port: int, sdk_metrics_url: str | None = None, addr: str = "127.0.0.1") -> int:
    """Serve ``/metrics`` (AINS + Temporal SDK metrics) on ``port`` (0 picks one); returns the bound port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = render_worker_metrics(sdk_metrics_url)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line each
            return

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="ains-worker-metrics", daemon=True).start()
    bound = int(server.server_port)
    _servers[bound] = server
    log.info("worker metrics on http://%s:%d/metrics", addr, bound)
    return bound


def stop_worker_metrics(port: int) -> None:
    server = _servers.pop(port, None)
    if server is not None:
        server.shutdown()
        server.server_close()


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
