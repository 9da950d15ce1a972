"""Webhooks in the service: the rules a URL must pass (from ``STORYMEDIA_WEBHOOK_HOSTS`` and
``STORYMEDIA_WEBHOOK_ALLOW_PRIVATE``) and, in the embedded mode, the background thread that sends
the outbox's due deliveries every second (:func:`pipeline.notify.delivery.deliver_due`). In the
cluster the Celery beat task ``storymedia.deliver_webhooks`` sends them instead.

Two overrides live in ``Service.extras``, for code only (no setting reaches them): ``POLICY``, a
:class:`~pipeline.notify.targets.Policy` that replaces the configured one (the tests allow their
receiver on 127.0.0.1 with ``allow_loopback``), and ``SCHEDULE``, retry delays in seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from api import metrics
from api.service import Service
from pipeline.notify import delivery
from pipeline.notify.targets import Policy
from pipeline.redaction import redact

log = logging.getLogger("storymedia.api.webhooks")

POLICY = "webhook_policy"
SCHEDULE = "webhook_schedule"
SENDER = "webhook_sender"
EVERY = 1.0


def policy(svc: Service) -> Policy:
    """The rules webhook URLs must pass on this service."""
    override = svc.extras.get(POLICY)
    if isinstance(override, Policy):
        return override
    return Policy(hosts=svc.config.webhook_hosts, allow_private=svc.config.webhook_allow_private)


def schedule(svc: Service) -> Sequence[float]:
    override = svc.extras.get(SCHEDULE)
    return tuple(override) if override else delivery.SCHEDULE


class Sender:
    """A thread that runs ``deliver_due`` on the service's private store every ``every`` seconds."""

    def __init__(self, svc: Service, every: float = EVERY) -> None:
        self.svc = svc
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storymedia-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout=wait)

    def tick(self) -> None:
        """Send what is due now, once."""
        sent = delivery.deliver_due(self.svc.backend.private, policy=policy(self.svc),
                                    schedule=schedule(self.svc), budget=30.0)
        for outcome in sent:
            metrics.observe_delivery(self.svc, outcome.outcome)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.tick()
            except Exception as exc:   # the store or a bug: log, and try again on the next tick
                log.warning("webhook deliveries stopped this round: %s: %s", type(exc).__name__,
                            redact(str(exc)))


def start(svc: Service) -> None:
    """Start the embedded sender (nothing in the cluster: the workers' beat task sends)."""
    if svc.backend.mode != "embedded" or SENDER in svc.extras:
        return
    sender = Sender(svc)
    svc.extras[SENDER] = sender
    sender.start()


def stop(svc: Service) -> None:
    sender = svc.extras.pop(SENDER, None)
    if isinstance(sender, Sender):
        sender.stop()
