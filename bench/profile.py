"""Where the CPU went: py-spy samples of a process under load, folded into top functions."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path, rate: int = 100) -> str | None:
    """Sample ``pid`` for ``seconds`` into a folded-stacks file; returns an error message or None."""
    binary = py_spy()
    if binary is None:
        return "py-spy is not installed (pip install py-spy)"
    process = await asyncio.create_subprocess_exec(
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        "--gil",
        "--output",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0 or not await asyncio.to_thread(out.exists):
        return f"py-spy failed: {output.decode(errors='replace')[-300:]}"
    return None


# Always on the stack (entry points, the event loop, thread pools): left out of the package table.
SCAFFOLD = {
    "<frozen runpy>",
    "threading.py",
    "stdlib:threading",
    "asyncio",
    "stdlib:asyncio",
    "concurrent",
    "stdlib:concurrent",
    "ains/workers",
}
AINS_DIRS = ("api", "core", "activities", "workflows", "models", "workers")


def _short(frame: str) -> tuple[str, str]:
    """(function (short path), package): package is a site-packages top-level name, ains/<dir> or stdlib."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip(), "?"
    path = match["file"]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
        package = path.split("/", 1)[0]
    elif "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
        package = "stdlib:" + path.split("/", 1)[0].removesuffix(".py")
    else:
        path = path.rsplit("/main/", 1)[-1]
        top = path.split("/", 1)[0]
        package = f"ains/{top}" if top in AINS_DIRS else top
    return f"{match['func']} ({path})", package


def top_functions(folded: Path, n: int = 12) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(busy samples, top self-time functions, packages on the stack) as shares of busy samples.

    Samples are recorded with ``--gil`` (only threads holding the GIL, i.e. running Python); samples
    whose leaf is the event loop's select/epoll are excluded too, so the shares are of busy time.
    """
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if not f[0].startswith(("process ", "thread "))]
        if not frames or any(w in frames[-1][0] for w in ("select (", "poll (", "epoll")):
            continue
        count = int(count_text)
        total += count
        own[frames[-1][0]] += count
        for package in {pkg for _, pkg in frames}:
            packages[package] += count
    if total == 0:
        return 0, [], []

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, c / total) for name, c in counter.most_common(n + len(SCAFFOLD)) if name not in SCAFFOLD][:n]

    return total, share(own), share(packages)
