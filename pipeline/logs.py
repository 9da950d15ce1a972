"""Log lines as JSON, one object per line, with the story, job and asset they are about.

:class:`JsonFormatter` writes ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, then
``story``, ``job`` and ``asset`` when known, then any ``extra=`` fields of the call, then ``exc``
(the traceback) when there is one. The ids come from :func:`log_context` (a context variable: set
around a job's or a task's work, every line logged inside it carries them) or from ``extra=``.

Every text that goes out is redacted first: URL credentials (:func:`pipeline.redaction.redact`),
bearer and service tokens, webhook secrets and URL signatures (:func:`redact_secrets`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pipeline.redaction import MASK, redact

IDS = ("story", "job", "asset")

_context: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("storymedia_log_ids",
                                                                                     default=None)

_SECRETS = (
    re.compile(r"(?P<keep>\bBearer\s+)[^\s,;\"']+", re.IGNORECASE),          # Authorization values
    re.compile(r"(?P<keep>)\bsmt_[A-Za-z0-9_-]{8,}"),                           # the service's tokens
    re.compile(r"(?P<keep>)\bwhsec_[A-Za-z0-9+/=_-]{8,}"),                      # webhook secrets
    re.compile(r"(?P<keep>[?&](?:X-Amz-)?Signature=)[^&\s\"']+", re.IGNORECASE),  # presigned URLs
)

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime",
                                                                                "taskName"}


def redact_secrets(text: str) -> str:
    """``text`` without URL credentials, bearer or service tokens, webhook secrets or signatures."""
    text = redact(text)
    for pattern in _SECRETS:
        text = pattern.sub(lambda found: found["keep"] + MASK, text)
    return text


def _ids(story: str | None, job: str | None, asset: int | str | None) -> dict[str, str]:
    given = {"story": story, "job": job, "asset": asset}
    return {name: str(value) for name, value in given.items() if value is not None and value != ""}


def bind_ids(story: str | None = None, job: str | None = None,
             asset: int | str | None = None) -> contextvars.Token[Mapping[str, str] | None]:
    """Add ids to the current context; undo with :func:`unbind_ids` (for code that cannot use a
    ``with`` block, such as a task's before and after signals)."""
    return _context.set({**(_context.get() or {}), **_ids(story, job, asset)})


def unbind_ids(token: contextvars.Token[Mapping[str, str] | None]) -> None:
    _context.reset(token)


@contextmanager
def log_context(story: str | None = None, job: str | None = None,
                asset: int | str | None = None) -> Iterator[None]:
    """Every line logged inside the block carries these ids (the ids already set stay)."""
    token = bind_ids(story, job, asset)
    try:
        yield
    finally:
        unbind_ids(token)


def current_ids() -> dict[str, str]:
    return dict(_context.get() or {})


def _plain(value: Any) -> Any:
    """A JSON-able copy of an ``extra=`` value; strings redacted, other objects as text."""
    if isinstance(value, str):
        return redact_secrets(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return redact_secrets(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_secrets(record.getMessage()),
        }
        document.update(current_ids())
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                document[name] = _plain(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exc"] = redact_secrets(record.exc_text)
        if record.stack_info:
            document["stack"] = redact_secrets(record.stack_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """A readable line (``time level logger [story= job= asset=]: message``), redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        ids = {**current_ids(), **{name: str(getattr(record, name)) for name in IDS
                                   if getattr(record, name, None) not in (None, "")}}
        line = super().formatMessage(record)
        if ids:
            where = " [" + " ".join(f"{name}={ids[name]}" for name in IDS if name in ids) + "]"
            head = f"{record.name}: "
            line = line.replace(head, f"{record.name}{where}: ", 1)
        return line

    def format(self, record: logging.LogRecord) -> str:
        return redact_secrets(super().format(record))
