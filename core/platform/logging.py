"""Process logging: JSON (or text) lines carrying request id, task id, workflow id and trace id where known,
with secrets redacted from every line.

* API: the request middleware (api/metrics.py) binds the ASGI scope of the current request with
  ``bind_request``; the filter reads its ``request_id`` and the route's ``task_id`` path parameter.
* Workers: the filter reads ``temporal_workflow`` / ``temporal_activity`` extras that the SDK's
  ``workflow.logger`` and ``activity.logger`` add, and falls back to ``activity.info()`` for plain
  loggers called from inside an activity.
* Secrets: API keys (``ains_`` + 43 characters), bearer credentials and every secret Setting's value
  are replaced with ``[REDACTED]`` in the message, the exception text and string extras.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from typing import IO, Any

from ains.core.platform.settings import Settings, secret_setting_names

REDACTED = "[REDACTED]"
_KEY_PATTERN = re.compile(r"ains_[A-Za-z0-9_\-]{20,}")
_BEARER_PATTERN = re.compile(r"(?i)(bearer\s+|x-api-key[\"':=\s]+)[^\s\"',;]+")
_URL_PASSWORD_PATTERN = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")
CONTEXT_FIELDS = ("request_id", "task_id", "workflow_id", "trace_id", "span_id")

_scope: contextvars.ContextVar[MutableMapping[str, Any] | None] = contextvars.ContextVar("ains_scope", default=None)


def bind_request(scope: MutableMapping[str, Any]) -> contextvars.Token[MutableMapping[str, Any] | None]:
    """Make the current ASGI request's scope the log context of this task (reset with ``unbind_request``)."""
    return _scope.set(scope)


def unbind_request(token: contextvars.Token[MutableMapping[str, Any] | None]) -> None:
    _scope.reset(token)


def task_id_of_workflow(workflow_id: str | None) -> str | None:
    if workflow_id and workflow_id.startswith("task-"):
        return workflow_id[len("task-") :]
    return None


def _workflow_id(record: logging.LogRecord) -> str | None:
    """The workflow id from the SDK's logger extras or the running activity."""
    for attr in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, attr, None)
        if isinstance(info, dict) and info.get("workflow_id"):
            return str(info["workflow_id"])
    try:
        from temporalio import activity

        if activity.in_activity():
            return activity.info().workflow_id
    except Exception:  # pragma: no cover - defensive: never break logging
        pass
    return None


def _trace_context() -> tuple[str | None, str | None]:
    try:
        from opentelemetry import trace
    except ImportError:
        return None, None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


class ContextFilter(logging.Filter):
    """Adds request_id, task_id, workflow_id, trace_id and span_id (None when unknown) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = task_id = None
        scope = _scope.get()
        if scope is not None:
            request_id = (scope.get("state") or {}).get("request_id")
            params = scope.get("path_params") or {}
            task_id = params.get("task_id")
        workflow_id = _workflow_id(record)
        task_id = task_id or task_id_of_workflow(workflow_id)
        trace_id, span_id = _trace_context()
        for name, value in (
            ("request_id", request_id),
            ("task_id", task_id),
            ("workflow_id", workflow_id),
            ("trace_id", trace_id),
            ("span_id", span_id),
        ):
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class RedactingFilter(logging.Filter):
    """Removes API keys, bearer credentials, URL passwords and the given secret values from records."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _KEY_PATTERN.sub(REDACTED, text)
        text = _BEARER_PATTERN.sub(lambda m: m.group(1) + REDACTED, text)
        return _URL_PASSWORD_PATTERN.sub(lambda m: m.group(1) + REDACTED + "@", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw message
            message = str(record.msg)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_STANDARD_ATTRS |= {*CONTEXT_FIELDS, "temporal_workflow", "temporal_activity", "workflow_info", "activity_info"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, extras, exception."""

    def __init__(self, redactor: RedactingFilter | None = None) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRS and not name.startswith("_"):
                if isinstance(value, str) and self._redactor is not None:
                    value = self._redactor.redact(value)
                entry[name] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s task=%(task_id)s] %(message)s"
_HANDLER_MARK = "_ains_handler"


def secret_values(settings: Settings) -> list[str]:
    values = [getattr(settings, name) for name in secret_setting_names()]
    return [v for v in values if isinstance(v, str) and v and "://" not in v]


def build_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    redactor = RedactingFilter(secret_values(settings))
    handler.addFilter(ContextFilter())
    handler.addFilter(redactor)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(redactor))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    setattr(handler, _HANDLER_MARK, True)
    return handler


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Install the AINS handler on the root logger (replacing an earlier one); returns it."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False) or stream is None:
            root.removeHandler(existing)
    handler = build_handler(settings, stream)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for noisy in ("httpx", "alembic", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # uvicorn's own loggers propagate to ours instead of printing in their own format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    return handler
