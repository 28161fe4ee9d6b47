"""Observability: domain metrics from the workers, search attributes in Temporal, structured logs with
request/task/workflow ids, secrets never logged, OpenTelemetry tracing."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ains.api.app import create_app
from ains.core.platform.logging import REDACTED, build_handler
from ains.core.platform.metrics import free_local_port, serve_worker_metrics, stop_worker_metrics
from ains.core.platform.temporal import connect
from tests.support.receivers import webhook_receiver
from tests.support.servers import serve
from tests.support.stack import CALLBACK_SECRET, SIGNING_SECRET, Stack, auth

# ----------------------------------------------------------------------------- helpers


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


@contextmanager
def captured_logs(stack: Stack, level: int = logging.DEBUG, **overrides: Any) -> Iterator[io.StringIO]:
    """Everything logged in this process (API, in-process workers, libraries) as the AINS handler writes it."""
    stream = io.StringIO()
    settings = stack.settings.model_copy(update={"log_format": "json", **overrides})
    handler = build_handler(settings, stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- metrics


async def test_domain_metrics_appear_after_tasks_run(stack: Stack) -> None:
    port = serve_worker_metrics(0, addr="127.0.0.1")  # what `ains worker` serves on AINS_WORKER_METRICS_PORT
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as scrape:
            before = samples((await scrape.get("/metrics")).text)
            ok_agent, ok_tag = await stack.register_agent("/run")
            bad_agent, bad_tag = await stack.register_agent("/fail")
            key, _ = await stack.new_key()
            async with webhook_receiver() as receiver:
                good = await stack.submit(
                    key,
                    type="uppercase",
                    input={"text": "a"},
                    required_capabilities=[ok_tag],
                    callback_url=receiver.url,
                )
                bad = await stack.submit(key, type="reverse", required_capabilities=[bad_tag], max_attempts=1)
                assert (await stack.wait_for(key, good["id"]))["status"] == "succeeded"
                assert (await stack.wait_for(key, bad["id"]))["status"] == "failed"
                await receiver.wait_for(1)
                deadline = time.monotonic() + 10
                # The delivery's finish step runs just after the receiver answered, and an agent call's
                # counters are recorded when its activity returns, just after it wrote the task's final status.
                while True:
                    after = samples((await scrape.get("/metrics")).text)
                    delivered = value(after, "ains_webhook_deliveries_total", status="succeeded") - value(
                        before, "ains_webhook_deliveries_total", status="succeeded"
                    )
                    calls = [
                        value(after, "ains_agent_calls_total", agent_id=agent, outcome=outcome)
                        - value(before, "ains_agent_calls_total", agent_id=agent, outcome=outcome)
                        for agent, outcome in ((ok_agent, "success"), (bad_agent, "failure"))
                    ]
                    if (delivered >= 1 and min(calls) >= 1) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)

        def grew(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert grew("ains_agent_calls_total", agent_id=ok_agent, outcome="success") == 1
        assert grew("ains_agent_calls_total", agent_id=bad_agent, outcome="failure") == 1
        assert grew("ains_agent_call_errors_total", agent_id=bad_agent, outcome="failure") == 1
        assert grew("ains_agent_call_errors_total", agent_id=ok_agent, outcome="failure") == 0
        assert grew("ains_agent_call_duration_seconds_count", agent_id=ok_agent) == 1
        assert grew("ains_routing_decisions_total", strategy="least_loaded", outcome="assigned") >= 2
        assert grew("ains_trust_changes_total", event_type="success") >= 1
        assert grew("ains_trust_changes_total", event_type="failure") >= 1
        assert grew("ains_task_queue_wait_seconds_count", type="uppercase") >= 1
        assert grew("ains_task_duration_seconds_count", type="uppercase", status="succeeded") >= 1
        assert grew("ains_task_duration_seconds_count", type="reverse", status="failed") >= 1
        assert grew("ains_webhook_delivery_attempts_total", outcome="delivered") >= 1
        assert grew("ains_webhook_deliveries_total", status="succeeded") >= 1
    finally:
        stop_worker_metrics(port)

    # Overrides happen in the API process and are counted there.
    before_override = samples((await stack.http.get("/metrics")).text)
    override = await stack.http.post(
        f"/v1/agents/{ok_agent}/trust", headers=auth(stack.admin_key), json={"score": 0.9, "reason": "metrics test"}
    )
    assert override.status_code == 201, override.text
    api_metrics = samples((await stack.http.get("/metrics")).text)
    assert value(api_metrics, "ains_trust_changes_total", event_type="override") == (
        value(before_override, "ains_trust_changes_total", event_type="override") + 1
    )
    assert value(api_metrics, "ains_tasks_by_type", status="succeeded", type="uppercase") >= 1
    assert value(api_metrics, "ains_tasks_by_type", status="failed", type="reverse") >= 1


async def test_a_worker_process_serves_sdk_and_ains_metrics_on_one_port(stack: Stack) -> None:
    port = free_local_port()
    env = {
        **os.environ,
        "AINS_DATABASE_URL": stack.settings.effective_database_url,
        "AINS_TEMPORAL_ADDRESS": stack.settings.temporal_address,
        "AINS_TEMPORAL_NAMESPACE": stack.settings.temporal_namespace,
        "AINS_AGENT_SIGNING_SECRET": SIGNING_SECRET,
        "AINS_WORKER_METRICS_PORT": str(port),
        "AINS_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ains.workers.cli",
        "worker",
        "--queue",
        "webhooks",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        text = ""
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline and "temporal_" not in text:
                try:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.3)
        assert "# TYPE ains_agent_calls_total counter" in text  # AINS domain metrics
        assert "# TYPE ains_webhook_deliveries_total counter" in text
        assert any(line.startswith("temporal_") for line in text.splitlines()), text[-2000:]  # the SDK's
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    # Its log lines are JSON.
    lines = [line for line in stderr.decode().splitlines() if line.startswith("{")]
    assert any(json.loads(line)["message"].startswith("worker polling") for line in lines), stderr.decode()[-2000:]


# ----------------------------------------------------------------------------- Temporal visibility


async def test_search_attributes_are_set_and_queryable(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run")
    key, client_id = await stack.new_key()
    task = await stack.submit(key, type="word_count", input={"text": "a b c"}, priority=8, required_capabilities=[tag])
    await stack.wait_for(key, task["id"])
    client = await connect(stack.settings)
    queries = [
        f'AinsClientId="{client_id}" AND AinsStatus="succeeded"',
        f'AinsAgentId="{agent_id}"',
        f'AinsClientId="{client_id}" AND AinsTaskType="word_count" AND AinsPriority >= 8',
        # the README's examples
        f'AinsClientId="{client_id}" AND AinsStatus IN ("succeeded", "failed", "timed_out")',
        f'AinsAgentId="{agent_id}" AND StartTime > "2020-01-01T00:00:00Z" AND ExecutionStatus="Completed"',
    ]
    for query in queries:
        deadline = time.monotonic() + 15  # visibility is eventually consistent
        found: list[str] = []
        while not found and time.monotonic() < deadline:
            found = [wf.id async for wf in client.list_workflows(query)]
            if not found:
                await asyncio.sleep(0.2)
        assert found == [task["workflow_id"]], query
    none = [wf.id async for wf in client.list_workflows(f'AinsClientId="{client_id}" AND AinsStatus="failed"')]
    assert none == []
    description = await client.get_workflow_handle(task["workflow_id"]).describe()
    attrs = {key.name: value for key, value in description.typed_search_attributes}
    assert attrs["AinsClientId"] == client_id and attrs["AinsAgentId"] == agent_id
    assert attrs["AinsTaskType"] == "word_count" and attrs["AinsPriority"] == 8


# ----------------------------------------------------------------------------- logs


async def test_log_lines_are_json_with_request_task_and_workflow_ids(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    with captured_logs(stack) as stream:
        task = await stack.submit(key, type="echo", required_capabilities=[tag])
        await stack.wait_for(key, task["id"])
        request_id = f"req-{uuid.uuid4().hex}"
        got = await stack.http.get(f"/v1/tasks/{task['id']}", headers={**auth(key), "X-Request-Id": request_id})
        assert got.headers["x-request-id"] == request_id
    lines = json_lines(stream)
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    access = [line for line in lines if line["logger"] == "ains.access" and line.get("request_id") == request_id]
    assert len(access) == 1
    assert access[0]["task_id"] == task["id"]
    assert access[0]["route"] == "/v1/tasks/{task_id}" and access[0]["status"] == 200
    # Worker side: lines logged while an activity of this task's workflow runs carry both ids.
    worker = [line for line in lines if line.get("workflow_id") == task["workflow_id"]]
    assert worker, "no worker log line carried the workflow id"
    assert all(line["task_id"] == task["id"] for line in worker)
    assert {line["message"] for line in worker} >= {"activity route_and_call finished", "activity call_agent finished"}


async def test_text_log_format_is_selectable(stack: Stack) -> None:
    with captured_logs(stack, level=logging.INFO, log_format="text") as stream:
        await stack.http.get("/health", headers={"X-Request-Id": "text-format-check"})
    line = next(line for line in stream.getvalue().splitlines() if "text-format-check" in line)
    assert "[req=text-format-check" in line and not line.startswith("{")


async def test_secrets_are_never_logged(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    with captured_logs(stack) as stream:
        created = await stack.http.post(
            "/v1/keys", headers=auth(stack.admin_key), json={"client_id": f"c-{uuid.uuid4().hex[:6]}"}
        )
        assert created.status_code == 201
        new_key = created.json()["key"]
        task = await stack.submit(new_key, type="echo", required_capabilities=[tag])
        await stack.wait_for(new_key, task["id"])
        wrong_key = "ains_" + uuid.uuid4().hex + uuid.uuid4().hex
        assert (await stack.http.get("/v1/tasks", headers=auth(wrong_key))).status_code == 401
        hook = await stack.http.post(
            "/v1/webhooks", headers=auth(new_key), json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
        )
        hook_secret = hook.json().get("secret", "") if hook.status_code == 201 else ""
        # Even code that carelessly logs a secret cannot leak it.
        log = logging.getLogger("ains.test")
        log.warning("careless: key=%s header=Bearer %s signing=%s", new_key, stack.admin_key, SIGNING_SECRET)
        log.warning("careless extra", extra={"callback_secret": CALLBACK_SECRET})
        try:
            raise ValueError(f"boom with {new_key}")
        except ValueError:
            log.exception("careless exception")
    text = stream.getvalue()
    assert len(json_lines(stream)) > 5
    for secret in (new_key, stack.admin_key, wrong_key, SIGNING_SECRET, CALLBACK_SECRET, hook_secret):
        if secret:
            assert secret not in text
    careless = [line for line in json_lines(stream) if line["message"].startswith("careless")]
    assert len(careless) == 3 and all(REDACTED in json.dumps(line) for line in careless)


# ----------------------------------------------------------------------------- tracing


async def test_tracing_spans_api_requests_and_propagates_into_workflows(stack: Stack) -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ains.core.platform import tracing

    exporter = InMemorySpanExporter()
    settings = stack.settings.model_copy(update={"otel_enabled": True})
    assert tracing.setup_tracing(settings, exporter)
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    server = await serve(create_app(settings))
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            submitted = await http.post(
                "/v1/tasks", headers=auth(key), json={"type": "echo", "required_capabilities": [tag]}
            )
            assert submitted.status_code == 202, submitted.text
            with captured_logs(stack, level=logging.INFO) as stream:
                await http.get("/v1/tasks", headers={**auth(key), "X-Request-Id": "traced"})
    finally:
        await server.stop()
    task = submitted.json()
    await stack.wait_for(key, task["id"])
    spans = exporter.get_finished_spans()
    server_spans = [s for s in spans if s.attributes and s.attributes.get("http.route") == "/v1/tasks"]
    assert server_spans, [s.name for s in spans]
    assert any(s.name.startswith("StartWorkflow:TaskWorkflow") for s in spans), [s.name for s in spans]
    # The trace context travels in the workflow's start header, so workers with tracing continue the trace.
    client = await connect(stack.settings)
    history = await client.get_workflow_handle(task["workflow_id"]).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert "_tracer-data" in started.header.fields
    (line,) = [entry for entry in json_lines(stream) if entry.get("request_id") == "traced"]
    assert len(line["trace_id"]) == 32
