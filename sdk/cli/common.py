"""What every client command shares: the client from flags/env/profile, output as tables or JSON, input
files, and exit codes scripts can rely on:

0 done (a waited task, chain or plan succeeded) · 1 it finished but did not succeed · 2 bad usage or input ·
3 the API refused the request (4xx: auth, scope, not found, conflict, validation) · 4 AINS unreachable or
unavailable (5xx, 503 after retries) · 5 gave up waiting (--wait-timeout)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from ains.sdk.client import Client
from ains.sdk.config import ConfigError
from ains.sdk.errors import ApiError, ClientError, TransportError, WaitTimeout

EXIT_OK = 0
EXIT_UNSUCCESSFUL = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 4
EXIT_WAIT_TIMEOUT = 5

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table for people, json for scripts")]


@dataclass
class Connection:
    url: str | None = None
    api_key: str | None = None
    profile: str | None = None

    def client(self) -> Client:
        return Client(self.url, self.api_key, profile=self.profile)


def connection(ctx: typer.Context) -> Connection:
    found = ctx.find_object(Connection)
    return found if found is not None else Connection()


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def reporting() -> Iterator[None]:
    """Map SDK errors to a clear message and the documented exit code."""
    try:
        yield
    except ApiError as exc:
        details = f"\n{json.dumps(exc.details, indent=2, default=str)}" if exc.details else ""
        code = EXIT_UNAVAILABLE if exc.status_code >= 500 else EXIT_REFUSED
        fail(f"{exc.status_code} {exc.code}: {exc.message}{details}", code)
    except WaitTimeout as exc:
        fail(str(exc), EXIT_WAIT_TIMEOUT)
    except TransportError as exc:
        fail(f"cannot reach AINS: {exc}", EXIT_UNAVAILABLE)
    except (ConfigError, ValidationError) as exc:
        fail(str(exc), EXIT_USAGE)
    except ClientError as exc:
        fail(str(exc), EXIT_UNAVAILABLE)


def run(ctx: typer.Context, action: Callable[[Client], None]) -> None:
    with reporting(), connection(ctx).client() as client:
        action(client)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    grid = Table(title=title, show_lines=False, header_style="bold")
    first_width = max([len(columns[0]), *(len(str(row[0])) for row in rows)])
    grid.add_column(columns[0], no_wrap=True, min_width=first_width)  # ids stay whole, to copy and paste
    for column in columns[1:]:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*["" if cell is None else str(cell) for cell in row])
    out.print(grid)


def fields(pairs: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        if value is None or value == [] or value == {}:
            continue
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
        out.print(f"[bold]{key.ljust(width)}[/]  {shown}", highlight=False)


def parse_json_arg(value: str, what: str) -> Any:
    """``value`` is JSON, or ``@path`` to a JSON (or YAML) file."""
    if value.startswith("@"):
        return read_document(Path(value[1:]), what)
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON ({exc}); pass JSON or @file", EXIT_USAGE)


def read_document(path: Path, what: str) -> Any:
    """A JSON or YAML file (YAML is a superset of JSON)."""
    try:
        text = path.read_text()
    except OSError as exc:
        fail(f"cannot read {what} file {path}: {exc.strerror}", EXIT_USAGE)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        fail(f"{what} file {path} is neither JSON nor YAML: {exc}", EXIT_USAGE)


def seconds_between(start: Any, end: Any) -> str:
    if start is None or end is None:
        return ""
    return f"{(end - start).total_seconds():.1f}s"
