"""The service's logging: one handler on the root logger, JSON lines or readable lines.

``STORYMEDIA_LOG_FORMAT=json`` gives one JSON object per line (:class:`pipeline.logs.JsonFormatter`:
time, level, logger, message, story/job/asset ids); anything else gives readable lines. uvicorn's
own loggers (its errors and its access log) lose their handlers and go through the same one, so
every line of the process has the same shape. Every line is redacted (no URL credentials, tokens,
webhook secrets or URL signatures).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pipeline.logs import JsonFormatter, PlainFormatter
from pipeline.redaction import RedactSecrets

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class _ServiceHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs (found again and replaced on a second call)."""


def configure_logging(format: str, level: int = logging.INFO,
                      stream: TextIO | None = None) -> logging.Handler:
    """Send every log line of the process to ``stream`` (default stderr) as JSON when ``format``
    is ``json``, else as readable lines; returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ServiceHandler)]:
        root.removeHandler(old)
    handler = _ServiceHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format.strip().lower() == "json" else PlainFormatter())
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
