"""The ``ains`` client commands through Typer's runner against the real stack: ``--output json`` parsed,
exit codes checked, configuration from flags, environment and a profile file."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from ains.models.keys import Scope
from ains.workers.cli import app
from tests.support.receivers import webhook_receiver
from tests.support.stack import Stack

runner = CliRunner()


async def ains(stack: Stack, key: str | None, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``ains`` in a thread (the API serves from this test's event loop)."""
    connection = ["--url", stack.api_url, "--api-key", key] if key else []
    return await asyncio.to_thread(runner.invoke, app, [*connection, *args], env=env)


def parsed(result: Result, code: int = 0) -> Any:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


async def test_task_submit_wait_get_ls_receipt_and_exit_codes(stack: Stack, tmp_path: Path) -> None:
    _, tag = await stack.register_agent("/run")
    _, bad = await stack.register_agent("/fail")
    key, _ = await stack.new_key()
    (tmp_path / "input.json").write_text(json.dumps({"text": "from a file"}))

    done = parsed(
        await ains(stack, key, "task", "submit", "uppercase", "--input", "@" + str(tmp_path / "input.json"),
                   "--capability", tag, "--priority", "7", "--wait", "--output", "json")
    )  # fmt: skip
    assert done["status"] == "succeeded" and done["result"] == {"output": {"text": "FROM A FILE"}}
    assert done["priority"] == 7

    live = await ains(stack, key, "task", "submit", "echo", "-i", '{"delay_seconds": 1.5}', "-c", tag, "--wait")
    assert live.exit_code == 0, live.stderr
    assert "running on agent-" in live.stderr and "succeeded in" in live.stderr, live.stderr  # the status line

    failed = parsed(
        await ains(stack, key, "task", "submit", "echo", "-c", bad, "--max-attempts", "1", "--wait", "-o", "json"), 1
    )
    assert failed["status"] == "failed" and failed["error_code"] == "agent_error"

    got = parsed(await ains(stack, key, "task", "get", done["id"], "-o", "json"))
    assert got["id"] == done["id"]
    listed = parsed(await ains(stack, key, "task", "ls", "--status", "succeeded", "--limit", "1", "-o", "json"))
    assert [t["status"] for t in listed] == ["succeeded"]
    receipt = parsed(await ains(stack, key, "task", "receipt", done["id"], "-o", "json"))
    assert receipt["receipts"][0]["winner_agent_id"] == done["assigned_agent_id"]
    table = await ains(stack, key, "task", "receipt", done["id"])
    assert table.exit_code == 0 and done["assigned_agent_id"] in table.stdout
    rated = parsed(await ains(stack, key, "task", "feedback", done["id"], "0.8", "--label", "good", "-o", "json"))
    assert rated["score"] == 0.8 and rated["label"] == "good" and rated["agent_id"] == done["assigned_agent_id"]
    out_of_range = await ains(stack, key, "task", "feedback", done["id"], "1.5")
    assert out_of_range.exit_code == 2 and "less than or equal to 1" in out_of_range.stderr

    _, hang = await stack.register_agent("/hang")
    started = parsed(await ains(stack, key, "task", "submit", "echo", "-c", hang, "-o", "json"))
    timed_out = await ains(stack, key, "task", "submit", "echo", "-c", hang, "--wait", "--wait-timeout", "1")
    assert timed_out.exit_code == 5 and "not finished after 1.0s" in timed_out.stderr, timed_out.stderr
    cancelled = parsed(await ains(stack, key, "task", "cancel", started["id"], "-o", "json"))
    assert cancelled["id"] == started["id"]

    missing = await ains(stack, key, "task", "get", "tsk_nope")
    assert missing.exit_code == 3 and "404 not_found" in missing.stderr
    bad_input = await ains(stack, key, "task", "submit", "echo", "--input", "[1, 2]")
    assert bad_input.exit_code == 2 and "must be a JSON object" in bad_input.stderr
    unknown_file = await ains(stack, key, "batch", "submit", str(tmp_path / "nope.yaml"))
    assert unknown_file.exit_code == 2 and "cannot read batch file" in unknown_file.stderr
    no_key = await ains(stack, None, "--url", stack.api_url, "task", "ls", env={"AINS_API_KEY": ""})
    assert no_key.exit_code == 3 and "401" in no_key.stderr


async def test_configuration_from_environment_and_profile(stack: Stack, tmp_path: Path) -> None:
    key, _ = await stack.new_key()
    env = {"AINS_URL": stack.api_url, "AINS_API_KEY": key, "AINS_CONFIG_FILE": str(tmp_path / "none.toml")}
    assert parsed(await ains(stack, None, "task", "ls", "-o", "json", env=env)) == []

    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.local]\nurl = "{stack.api_url}"\napi_key = "{key}"\n')
    profile_env = {"AINS_CONFIG_FILE": str(config), "AINS_URL": "", "AINS_API_KEY": ""}
    assert parsed(await ains(stack, None, "--profile", "local", "task", "ls", "-o", "json", env=profile_env)) == []
    unknown = await ains(stack, None, "--profile", "prod", "task", "ls", env=profile_env)
    assert unknown.exit_code == 2 and "no profile 'prod'" in unknown.stderr and "local" in unknown.stderr


async def test_batch_chain_and_plan_from_files(stack: Stack, tmp_path: Path) -> None:
    _, tag = await stack.register_agent("/run")
    _, bad = await stack.register_agent("/fail")
    key, _ = await stack.new_key()
    batch = tmp_path / "batch.yaml"
    batch.write_text(
        yaml.safe_dump([{"type": "echo", "input": {"i": i}, "required_capabilities": [tag]} for i in range(3)])
    )
    accepted = parsed(await ains(stack, key, "batch", "submit", str(batch), "-o", "json"))
    assert len(accepted["tasks"]) == 3 and all(t["created"] for t in accepted["tasks"])

    chain = tmp_path / "chain.yaml"
    chain.write_text(
        yaml.safe_dump(
            {
                "name": "shout",
                "steps": [
                    {"name": "up", "type": "uppercase", "input": {"text": "hi"}, "required_capabilities": [tag]},
                    {"name": "back", "type": "reverse", "required_capabilities": [tag]},
                ],
            }
        )
    )
    finished = parsed(await ains(stack, key, "chain", "run", str(chain), "--watch", "-o", "json"))
    assert finished["status"] == "succeeded" and finished["steps"][1]["result"] == {"output": {"text": "IH"}}

    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "steps": [
                    {"name": "ok", "type": "echo", "required_capabilities": [tag]},
                    {"name": "broken", "type": "echo", "required_capabilities": [bad], "max_attempts": 1},
                    {"name": "after", "type": "echo", "required_capabilities": [tag], "depends_on": ["broken"]},
                ]
            }
        )
    )
    watched = await ains(stack, key, "plan", "run", str(plan), "--watch")
    assert watched.exit_code == 1, watched.stderr
    assert "plan pln_" in watched.stdout or "plan " in watched.stdout
    assert "failed" in watched.stdout and "skipped" in watched.stderr  # the live table showed every step
    plan_id = watched.stdout.split()[1].rstrip(":")
    view = parsed(await ains(stack, key, "plan", "get", plan_id, "-o", "json"))
    assert {s["name"]: s["status"] for s in view["steps"]} == {
        "ok": "succeeded",
        "broken": "failed",
        "after": "skipped",
    }

    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text(yaml.safe_dump({"steps": [{"name": "a", "type": "echo", "depends_on": ["a"]}]}))
    refused = await ains(stack, key, "plan", "run", str(cyclic))
    assert refused.exit_code == 3 and "422" in refused.stderr


async def test_agents_trust_schedules_and_webhooks(stack: Stack) -> None:
    key, _ = await stack.new_key(scopes=[Scope.TASKS_READ, Scope.TASKS_WRITE, Scope.AGENTS_READ, Scope.AGENTS_WRITE])
    agent_id, tag = f"cli-{uuid.uuid4().hex[:8]}", f"cap-{uuid.uuid4().hex[:8]}"
    registered = parsed(
        await ains(stack, key, "agents", "register", agent_id, "--endpoint", f"{stack.demo_url}/run",
                   "-c", f"{tag}:2.1", "-c", "echo", "--max-concurrency", "2", "-o", "json")
    )  # fmt: skip
    assert [(c["tag"], c["version"]) for c in registered["capabilities"]] == [(tag, "2.1"), ("echo", "1.0")]
    updated = parsed(await ains(stack, key, "agents", "update", agent_id, "--max-concurrency", "5", "-o", "json"))
    assert updated["max_concurrency"] == 5
    assert parsed(await ains(stack, key, "agents", "show", agent_id, "-o", "json"))["id"] == agent_id
    assert [a["id"] for a in parsed(await ains(stack, key, "agents", "ls", "--tag", tag, "-o", "json"))] == [agent_id]
    duplicate = await ains(stack, key, "agents", "register", agent_id, "--endpoint", f"{stack.demo_url}/run", "-c", tag)
    assert duplicate.exit_code == 3 and "409" in duplicate.stderr

    done = parsed(await ains(stack, key, "task", "submit", "echo", "-c", f"{tag}>=2", "--wait", "-o", "json"))
    assert done["assigned_agent_id"] == agent_id
    board = parsed(await ains(stack, key, "trust", "leaderboard", "--tag", tag, "-o", "json"))
    assert [e["agent_id"] for e in board["entries"]] == [agent_id]
    history = parsed(await ains(stack, key, "trust", "history", agent_id, "-o", "json"))
    assert [(r["event_type"], r["task_id"]) for r in history] == [("success", done["id"])]

    response = await stack.http.post(
        "/v1/schedules",
        headers={"Authorization": f"Bearer {key}"},
        json={"interval_seconds": 3600, "paused": True,
              "target": {"kind": "task", "task": {"type": "echo", "required_capabilities": [tag]}}},
    )  # fmt: skip
    schedule_id = response.json()["id"]
    assert [s["id"] for s in parsed(await ains(stack, key, "schedules", "ls", "-o", "json"))] == [schedule_id]
    assert parsed(await ains(stack, key, "schedules", "resume", schedule_id, "-o", "json"))["paused"] is False
    paused = parsed(await ains(stack, key, "schedules", "pause", schedule_id, "--note", "cli", "-o", "json"))
    assert paused["paused"] is True and paused["note"] == "cli"
    assert parsed(await ains(stack, key, "schedules", "trigger", schedule_id, "-o", "json"))["id"] == schedule_id
    await stack.http.delete(f"/v1/schedules/{schedule_id}", headers={"Authorization": f"Bearer {key}"})

    # A receiver that always fails: the delivery goes dead (2.5 s retry period in the test stack), then replays.
    # The demo agent cannot do this task type, so the task fails: a task.failed event.
    task_type = f"hooked-{uuid.uuid4().hex[:6]}"
    async with webhook_receiver(always_fail=True) as receiver:
        hook = await stack.http.post(
            "/v1/webhooks",
            headers={"Authorization": f"Bearer {key}"},
            json={"url": receiver.url, "event_types": ["task.failed"], "filter": {"task_types": [task_type]}},
        )
        assert hook.status_code == 201, hook.text
        args = ("task", "submit", task_type, "-c", tag, "--max-attempts", "1", "--wait", "-o", "json")
        assert parsed(await ains(stack, key, *args), 1)["status"] == "failed"
        dead: list[dict[str, Any]] = []
        for _ in range(60):
            dead = parsed(await ains(stack, key, "webhooks", "deliveries", "--dead", "-o", "json"))
            if dead:
                break
            await asyncio.sleep(0.3)
        assert [d["status"] for d in dead] == ["dead"] and dead[0]["event_type"] == "task.failed"
        replayed = parsed(await ains(stack, key, "webhooks", "replay", dead[0]["id"], "-o", "json"))
        assert replayed["id"] == dead[0]["id"] and replayed["replays"] == 1
