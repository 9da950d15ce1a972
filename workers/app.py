"""The Celery application: broker, queues and the settings long media tasks need.

Queues (one pool per queue kind; no broker priorities — on Redis they are emulated and unreliable):

    probe      read and check each raw file (short)
    image      render and store one photo's renditions
    video      render and store one clip's or audio file's renditions (ffmpeg)
    io         start a job, reconcile, clean up incomplete uploads
    manifest   verify every object of a job, write the manifest

Breaking news (a story flag) travels the same stages on its own queues, ``breaking-<stage>``, so a
fast-lane worker is never stuck behind an evening's archive work.

Run a worker with ``storymedia worker --queues image,probe`` (or ``celery -A workers.app worker``);
it refuses to start when the visibility timeout is not above the hard time limit.

Importing this module reads no setting. The command line calls :func:`configure_app` with the
settings its flags gave before it sends anything; a process Celery started (worker, beat, Flower)
configures the app from the environment on first use, through a lazy default.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from celery import Celery, signals
from kombu.entity import Queue

from pipeline.errors import ConfigError
from pipeline.redaction import redact_logging
from workers.settings import Settings

STAGES = ("probe", "image", "video", "io", "manifest")
BREAKING = "breaking-"
QUEUES = (*STAGES, *(BREAKING + stage for stage in STAGES))


def queue(stage: str, breaking: bool = False) -> str:
    """The queue a stage of a job goes to."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    return BREAKING + stage if breaking else stage


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration for these settings."""
    vt = settings.visibility_timeout
    transport = {
        "visibility_timeout": vt,
        # kombu sweeps the unacked messages of dead workers every 10 x 10 s by default.
        "unacked_restore_interval": settings.restore_interval,
        "unacked_restore_throttle": 1,
        "socket_timeout": 30, "socket_connect_timeout": 5, "health_check_interval": 25,
    }
    return dict(
        broker_url=settings.broker_url,
        # No result backend: every stage records its result in the object store, which is also
        # where the fan-in to the manifest is decided (see workers.tasks). Progress is in Redis.
        task_ignore_result=True,
        broker_transport_options=transport,
        visibility_timeout=vt,
        broker_connection_retry_on_startup=True,
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_soft_time_limit=settings.soft_time_limit,
        task_time_limit=settings.time_limit,
        worker_soft_shutdown_timeout=settings.soft_shutdown_timeout,
        worker_enable_soft_shutdown_on_idle=True,
        worker_max_tasks_per_child=20,
        worker_max_memory_per_child=settings.max_memory_mb * 1024,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_default_queue="io",
        task_queues=[Queue(name) for name in QUEUES],  # type: ignore[no-untyped-call]
        task_create_missing_queues=False,
        beat_schedule={
            "reconcile": {"task": "storymedia.reconcile", "schedule": settings.reconcile_every,
                          "options": {"queue": "io", "expires": settings.reconcile_every}},
        },
        worker_hijack_root_logger=False,
    )


app = Celery("storymedia", include=["workers.tasks"])
_configured: Settings | None = None


def current_settings() -> Settings:
    """The settings the app runs with: those given to :func:`configure_app`, else (a process
    Celery started) the environment's, read once."""
    global _configured
    if _configured is None:
        _configured = Settings.from_env()
    return _configured


def configure_app(settings: Settings) -> Celery:
    """Point the app (and ``workers.context.context()``) at ``settings``: its broker, limits and
    queues. Call it before the first message is sent; a later call replaces the configuration and
    drops the broker connections made for the earlier one."""
    global _configured
    _configured = settings
    app.conf.update(celery_config(settings))
    app._pool = None   # connections pooled for another broker, as Celery drops them after a fork
    with contextlib.suppress(AttributeError, KeyError):
        app.__dict__["amqp"]._producer_pool = None
    return app


# A process Celery started configures the app from the environment when it first reads the
# configuration; configure_app's values win over these defaults.
app.add_defaults(lambda: celery_config(current_settings()))


@signals.worker_init.connect
def _refuse_bad_settings(**_: Any) -> None:
    """A worker with settings that would run long tasks twice never starts."""
    try:
        current_settings().check()
    except ConfigError as exc:
        print(f"storymedia worker: refusing to start: {exc.reason}", file=sys.stderr, flush=True)
        sys.exit(78)  # EX_CONFIG


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_log_lines(logger: Any = None, **_: Any) -> None:
    """No log line of a worker carries a password (Celery masks the broker URL in its banner and
    its connection messages; this covers every other line, ours and the libraries')."""
    if logger is not None:
        redact_logging(logger)
