"""bench/report.py: every scenario's report carries the machine, the commit, when it ran, the load at both ends and
how to reproduce it, above the scenario's own body."""

from __future__ import annotations

from pathlib import Path

from bench.report import Report


def test_a_report_states_machine_commit_time_load_and_how_to_reproduce(tmp_path: Path) -> None:
    report = Report("Dispatch under a backlog", "python -m bench.backlog", load_at_start=(0.1, 0.2, 0.3))
    report.add("One agent with 4 slots.", "")
    report.table(["measure", "sqlite"], [["drain rate", "40.1"]])
    text = report.write(tmp_path / "results" / "BACKLOG.md")
    assert (tmp_path / "results" / "BACKLOG.md").read_text() == text
    lines = text.splitlines()
    assert lines[0] == "# Dispatch under a backlog"
    assert lines[2].startswith("Machine: ") and "logical cores" in lines[2] and "temporalio" in lines[2]
    assert lines[3].startswith(f"Run: {report.started:%Y-%m-%d %H:%M} UTC, AINS commit ")
    assert "0.10 / 0.20 / 0.30 at the start" in lines[3]
    assert lines[4] == "Reproduce: `.venv/bin/python -m bench.backlog` (bench/README.md)."
    assert lines[6:] == ["One agent with 4 slots.", "", "| measure | sqlite |", "|---|---|", "| drain rate | 40.1 |"]
