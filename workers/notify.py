"""The cluster's webhook sender: beat queues ``storymedia.deliver_webhooks`` every
``workers.app.WEBHOOKS_EVERY`` seconds on the ``io`` queue (expiring after as long, so a backlog of
them never piles up); the task runs :func:`pipeline.notify.delivery.deliver_due` on the private
store under a Redis lock, so two workers never send the same delivery at once (a second copy finds
the lock taken and returns).
Allowed hosts come from ``STORYMEDIA_WEBHOOK_HOSTS`` and ``STORYMEDIA_WEBHOOK_ALLOW_PRIVATE``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Mapping
from typing import Any

import redis
from celery import shared_task
from celery.utils.log import get_task_logger

from pipeline.notify.delivery import deliver_due
from pipeline.notify.targets import Policy
from pipeline.storage import Storage
from workers.context import context
from workers.settings import Settings

log = get_task_logger(__name__)

LOCK = "storymedia:lock:webhooks"
DELIVERY_COUNTS = "storymedia:metrics:webhook-deliveries"
"""Delivery attempts by outcome, cluster-wide (a hash: outcome -> count); the service's /metrics
shows it, since the attempts are made here, in the workers."""
BUDGET = 60.0
"""Seconds one run starts new attempts for (each takes at most about 15 s more)."""
LOCK_SECONDS = 120
"""The lock outlives the task's hard limit (``TIME_LIMIT``): a killed run cannot leave it held."""
TIME_LIMIT = 110


def policy(settings: Settings) -> Policy:
    return Policy(hosts=settings.webhook_hosts, allow_private=settings.webhook_allow_private)


def deliver(private: Storage, client: redis.Redis, rules: Policy) -> dict[str, Any]:
    """Send what is due, unless another worker is sending: the outcomes by kind, or ``busy``."""
    lock = client.lock(LOCK, timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        return {"busy": True}
    try:
        outcomes = deliver_due(private, policy=rules, budget=BUDGET)
    finally:
        with contextlib.suppress(redis.RedisError):
            lock.release()
    counts = Counter(outcome.outcome for outcome in outcomes)
    if outcomes:
        log.info("webhooks: %s", ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
        with contextlib.suppress(redis.RedisError):
            count_outcomes(client, counts)
    return dict(counts)


def count_outcomes(client: redis.Redis, counts: Mapping[str, int]) -> None:
    """Add delivery attempts to the cluster-wide count (``DELIVERY_COUNTS``)."""
    pipe = client.pipeline(transaction=False)
    for outcome, number in counts.items():
        pipe.hincrby(DELIVERY_COUNTS, outcome, number)
    pipe.execute()


def delivery_counts(client: redis.Redis) -> dict[str, int]:
    """The cluster-wide count of delivery attempts by outcome."""
    found = client.hgetall(DELIVERY_COUNTS)
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in found.items()}


@shared_task(name="storymedia.deliver_webhooks", soft_time_limit=TIME_LIMIT - 10, time_limit=TIME_LIMIT)
def deliver_webhooks() -> dict[str, Any]:
    """Beat: send the webhook deliveries that are due."""
    ctx = context()
    return deliver(ctx.private, ctx.live.redis, policy(ctx.settings))
