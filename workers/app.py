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

Importing this module builds no app and reads no setting: :func:`create_app` builds one from the
settings it is given (the command line's, from its flags and the environment). Only ``app``, the
attribute Celery's own command line looks up, is built from the environment, on first use.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery, current_app, signals
from kombu.entity import Queue

from pipeline.errors import ConfigError
from pipeline.redaction import redact_logging
from workers import logs as _logs  # noqa: F401  (connects the JSON log and task id signals)
from workers.settings import Settings

STAGES = ("probe", "image", "video", "io", "manifest")
BREAKING = "breaking-"
QUEUES = (*STAGES, *(BREAKING + stage for stage in STAGES))
WEBHOOKS_EVERY = 5.0
"""Beat: seconds between runs of ``storymedia.deliver_webhooks`` (workers.notify)."""


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
            "deliver-webhooks": {"task": "storymedia.deliver_webhooks", "schedule": WEBHOOKS_EVERY,
                                 "options": {"queue": "io", "expires": WEBHOOKS_EVERY}},
        },
        worker_hijack_root_logger=False,
    )


class ClusterApp(Celery):  # type: ignore[misc]
    """A Celery app of the cluster: Celery's own, plus the settings it was built from."""

    def __init__(self, settings: Settings, main: str = "storymedia", **kwargs: Any) -> None:
        kwargs.setdefault("include", ["workers.tasks", "workers.notify"])
        super().__init__(main, **kwargs)
        self.settings = settings
        self.conf.update(celery_config(settings))

    def __reduce_keys__(self) -> dict[str, Any]:
        return {**super().__reduce_keys__(), "settings": self.settings}


def create_app(settings: Settings) -> ClusterApp:
    """A Celery app for ``settings``: their broker, queues, limits and schedule. The tasks of
    ``workers.tasks`` are shared tasks: they run on whichever app the worker was started with."""
    return ClusterApp(settings)


def app_settings(app: Any = None) -> Settings:
    """The settings ``app`` (default: this process's current Celery app) was built from."""
    found = current_app._get_current_object() if app is None else app
    if not isinstance(found, ClusterApp):
        raise ConfigError("this process has no storymedia Celery app: build one with"
                          " workers.app.create_app(settings)")
    return found.settings


_from_environment: ClusterApp | None = None


def __getattr__(name: str) -> Any:
    """``workers.app.app``: the app of a process Celery starts itself (``celery --app workers.app
    worker|beat|flower``, as docker-compose.yml runs Flower), built from the environment on first
    use. Nothing else reads the environment here."""
    global _from_environment
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _from_environment is None:
        _from_environment = create_app(Settings.from_env())
    return _from_environment


@signals.worker_init.connect
def _refuse_bad_settings(sender: Any = None, **_: Any) -> None:
    """A worker with settings that would run long tasks twice never starts."""
    try:
        app_settings(sender.app).check()
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
