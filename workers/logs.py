"""A worker's log lines as JSON (``STORYMEDIA_LOG_FORMAT=json``), with the ids of the task's work.

When Celery has set up a worker's loggers (its ``after_setup_logger`` and ``after_setup_task_logger``
signals), their handlers get :class:`pipeline.logs.JsonFormatter` if the worker's settings ask for
JSON. Around every task the story, job and asset ids of its keyword arguments (``story_id``,
``job_id``, ``order``) are set for the lines logged meanwhile (``task_prerun`` / ``task_postrun``,
in the process that runs the task), whatever the format.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Mapping
from typing import Any

from celery import signals

from pipeline.errors import ConfigError
from pipeline.logs import JsonFormatter, bind_ids, unbind_ids

_bound: dict[str, contextvars.Token[Mapping[str, str] | None]] = {}


def wants_json() -> bool:
    """The worker's settings ask for JSON lines (``STORYMEDIA_LOG_FORMAT=json``)."""
    from workers.app import app_settings  # workers.app imports this module

    try:
        return app_settings().log_format == "json"
    except ConfigError:
        return False


def use_json(logger: logging.Logger) -> None:
    """Every handler of ``logger`` writes JSON lines."""
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _json_lines(logger: Any = None, **_: Any) -> None:
    if isinstance(logger, logging.Logger) and wants_json():
        use_json(logger)


@signals.task_prerun.connect
def _bind_task_ids(task_id: str | None = None, kwargs: Any = None, **_: Any) -> None:
    if not task_id or not isinstance(kwargs, dict):
        return
    order = kwargs.get("order")
    _bound[task_id] = bind_ids(story=_text(kwargs.get("story_id")), job=_text(kwargs.get("job_id")),
                               asset=order if type(order) is int else None)


@signals.task_postrun.connect
def _unbind_task_ids(task_id: str | None = None, **_: Any) -> None:
    token = _bound.pop(task_id or "", None)
    if token is not None:
        with contextlib.suppress(ValueError):   # set in another context (another thread): drop it
            unbind_ids(token)


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None
