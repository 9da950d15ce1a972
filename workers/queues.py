"""What waits in the cluster's queues, read from the broker without taking anything.

kombu's Redis transport keeps each queue as a list: a message is LPUSHed and workers BRPOP it, so
the oldest waiting message is at index -1. Messages sent with a priority wait in sibling lists
(``<queue>`` + kombu's separator + the priority step). A message that was delivered to a worker
and not yet acknowledged is no longer in the list: it is running (or held for its countdown).

Celery's messages carry no time of sending; every message this project sends carries
:func:`sent_header` so that the age of the oldest one can be told.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import redis
from kombu.transport.redis import PRIORITY_STEPS, Channel

from workers.app import BREAKING, QUEUES

SENT = "storymedia_sent"
"""Message header: when the message was sent (epoch seconds)."""

UNKNOWN_AGE = "the oldest message carries no time of sending (sent by an older version or by hand)"


def sent_header() -> dict[str, float]:
    """The headers every message is sent with: the time it was sent."""
    return {SENT: time.time()}


@dataclass(frozen=True)
class Waiting:
    """One queue as operators see it."""

    name: str
    lane: str
    """``normal`` or ``breaking``."""
    depth: int
    """Messages waiting (every priority)."""
    oldest: float
    """Seconds the oldest waiting message has waited; 0 when none waits or its age is unknown."""
    note: str = ""


def _lists(queue: str) -> list[str]:
    return [queue, *(f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step)]


def sent_at(message: bytes | str | None) -> float | None:
    """The send time in a kombu message read from its list (None: none, or not one of ours)."""
    if message is None:
        return None
    try:
        envelope = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        return None
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    value = headers.get(SENT) if isinstance(headers, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def waiting(client: redis.Redis, now: float | None = None) -> list[Waiting]:
    """Depth and oldest age of every queue of both lanes, in two round trips to Redis: the lengths
    of every list, then the last element of each list that has one (one LINDEX per list)."""
    lengths_pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        for name in _lists(queue):
            lengths_pipe.llen(name)
    lengths = iter(lengths_pipe.execute())
    filled = {queue: [(name, int(next(lengths))) for name in _lists(queue)] for queue in QUEUES}
    oldest_pipe = client.pipeline(transaction=False)
    asked = [(queue, name) for queue in QUEUES for name, length in filled[queue] if length > 0]
    for _, name in asked:
        oldest_pipe.lindex(name, -1)
    messages = oldest_pipe.execute() if asked else []
    now = time.time() if now is None else now
    times: dict[str, list[float | None]] = {}
    for (queue, _), message in zip(asked, messages, strict=True):
        times.setdefault(queue, []).append(sent_at(message))
    found = []
    for queue in QUEUES:
        seen = times.get(queue, [])
        known = [stamp for stamp in seen if stamp is not None]
        found.append(Waiting(
            name=queue, lane="breaking" if queue.startswith(BREAKING) else "normal",
            depth=sum(length for _, length in filled[queue]),
            oldest=round(max(0.0, now - min(known)), 3) if known else 0.0,
            note=UNKNOWN_AGE if len(known) < len(seen) else ""))
    return found
