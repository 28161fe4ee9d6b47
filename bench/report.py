"""One report writer for every bench scenario: the same header on each report (the machine, the versions, the
commit, when, the load average at the start and at the end), the body the scenario builds, and how to reproduce
it, written under bench/results/."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import temporalio

import ains.core

RESULTS = Path(__file__).parent / "results"


def _fmt_load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    """The AINS commit measured: AINS_BENCH_COMMIT when set, else the HEAD of the checkout the ``ains`` package is
    installed from (the code the bench's processes run, which need not be this bench's own checkout)."""
    installed = Path(ains.core.__file__).resolve().parents[1]
    return (
        os.environ.get("AINS_BENCH_COMMIT")
        or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=installed, check=False
        ).stdout.strip()
        or "unknown"
    )


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu_model()}, {os.cpu_count()} logical cores, {memory:.1f} GiB; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, temporalio {temporalio.__version__}, SQLite {sqlite3.sqlite_version}"
    )


@dataclass
class Report:
    """A scenario's report. Create it when the scenario starts (the start time and load are taken then), add the
    body, ``write`` it at the end."""

    title: str
    command: str  # how to reproduce it, e.g. "python -m bench.backlog"
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_at_start: tuple[float, float, float] = field(default_factory=os.getloadavg)
    lines: list[str] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.add("| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|")
        self.add(*("| " + " | ".join(row) + " |" for row in rows))
        self.add("")

    def render(self, load_at_end: tuple[float, float, float] | None = None) -> str:
        end = load_at_end or os.getloadavg()
        header = [
            f"# {self.title}",
            "",
            f"Machine: {machine()}.",
            f"Run: {self.started:%Y-%m-%d %H:%M} UTC, AINS commit {commit()}; load average (1 / 5 / 15 min) "
            f"{_fmt_load(self.load_at_start)} at the start, {_fmt_load(end)} at the end.",
            f"Reproduce: `.venv/bin/{self.command}` (bench/README.md).",
            "",
        ]
        return "\n".join([*header, *self.lines]).rstrip("\n") + "\n"

    def write(self, path: Path) -> str:
        """Render and write the report to ``path`` (bench/results/<NAME>.md by convention); returns its text."""
        text = self.render()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"report written to {path}", flush=True)
        return text
