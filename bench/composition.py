"""Chain and plan overhead per step, against a bare Temporal child-workflow chain on the same dev server.

Real processes (Temporal dev server, `ains api`, `ains worker`, the demo agent, and a bare worker) on a
fresh SQLite registry. Each run is one composition of N sequential steps, measured from submission to the
composition's final status:

* bare: `BareChainWorkflow`, N child workflows each running one no-op activity (the engine's floor);
* AINS chain: `POST /v1/task-chains`, N `echo` steps on the no-op demo agent, each output merged forward;
* AINS plan: `POST /v1/plans`, the same N steps as a linear DAG.

    .venv/bin/python -m bench.composition [--steps 5] [--runs 5]

Writes bench/results/COMPOSITION.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client

from bench.chain_worker import TASK_QUEUE
from bench.harness import Proc, Stack, say_to
from bench.report import Report

RESULTS = Path(__file__).parent / "results" / "COMPOSITION.md"
say = say_to("composition")


async def bare_run(client: Client, steps: int) -> float:
    started = time.perf_counter()
    await client.execute_workflow("BareChainWorkflow", steps, id=f"bare-{uuid.uuid4().hex}", task_queue=TASK_QUEUE)
    return time.perf_counter() - started


async def ains_run(http: httpx.AsyncClient, key: str, kind: str, steps: int) -> float:
    body = [
        {
            "name": f"s{i}",
            "type": "echo",
            "input": {f"k{i}": i},
            **({"depends_on": [f"s{i - 1}"]} if kind == "plans" and i else {}),
        }
        for i in range(steps)
    ]
    path = "/v1/task-chains" if kind == "chains" else "/v1/plans"
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    response = await http.post(path, headers=headers, json={"steps": body})
    response.raise_for_status()
    view_path = f"{path}/{response.json()['id']}"
    while True:
        view = (await http.get(view_path, headers=headers)).json()
        if view["status"] in {"succeeded", "failed", "cancelled"}:
            break
        await asyncio.sleep(0.02)
    if view["status"] != "succeeded":
        raise RuntimeError(f"{kind} ended {view['status']}: {view}")
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        try:
            await stack.start_temporal([])
            await stack.start_demo_agent()
            await stack.bootstrap(f"sqlite+aiosqlite:///{tmp}/ains.db")
            await stack.start_api()
            stack.start_worker()
            bare = Proc(
                "chain-worker",
                [sys.executable, "-m", "bench.chain_worker", stack.temporal_address],
                dict(os.environ),
                stack.logs / "chain-worker.log",
            ).start()
            stack.procs["chain-worker"] = bare
            client = await Client.connect(stack.temporal_address)
            results: dict[str, list[float]] = {"bare": [], "chains": [], "plans": []}
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
                await asyncio.sleep(3)  # workers connect
                for kind in ("bare", "chains", "plans"):  # warm-up
                    await (bare_run(client, 2) if kind == "bare" else ains_run(http, stack.admin_key, kind, 2))
                for run_index in range(args.runs):
                    for kind in ("bare", "chains", "plans"):
                        seconds = await (
                            bare_run(client, args.steps)
                            if kind == "bare"
                            else ains_run(http, stack.admin_key, kind, args.steps)
                        )
                        results[kind].append(seconds)
                    say(
                        f"run {run_index + 1}/{args.runs}: "
                        + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items())
                    )
        finally:
            stack.stop_all()

    def per_step(kind: str) -> tuple[float, float]:
        values = [v / args.steps * 1000 for v in results[kind]]
        return statistics.median(values), (max(values) - min(values))

    bare_ms, _ = per_step("bare")
    rows = []
    for kind, label in (
        ("bare", "bare Temporal child-workflow chain"),
        ("chains", "AINS chain"),
        ("plans", "AINS plan"),
    ):
        median, spread = per_step(kind)
        overhead = "—" if kind == "bare" else f"{median - bare_ms:+.0f} ms ({median / bare_ms:.1f}x)"
        rows.append(f"| {label} | {median:.0f} | {spread:.0f} | {overhead} |")
    return "\n".join(
        [
            "Temporal dev server (SQLite), registry on SQLite.",
            f"Method: {args.runs} runs of a {args.steps}-step sequential composition per kind, interleaved, after "
            "one warm-up each; time from submission to final status divided by the number of steps; medians, "
            "spread = max - min.",
            "",
            "| kind | median ms per step | spread ms | overhead vs bare |",
            "|---|---|---|---|",
            *rows,
            "",
            "An AINS step is a full task: its task row, a child TaskWorkflow, routing (local activity), the signed "
            "HTTP call to the agent (regular activity), trust recording (local activity), events, plus preparing "
            "the step's input from earlier outputs and saving the composition's state.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    report = Report("Chain and plan overhead per step", "python -m bench.composition")
    report.add(asyncio.run(run(args)))
    print(report.write(RESULTS))


if __name__ == "__main__":
    main()
