"""Sending what the outbox holds: every due delivery once per call, on the spec's schedule.

An attempt re-checks the endpoint's URL (:func:`pipeline.notify.targets.check_url`: the allow list
and every resolved address) and connects to the address it checked: the request goes to
``https://<address>:<port>/path`` with the name in the ``Host`` header and as the TLS server name
(httpx's ``sni_hostname``; the certificate is verified against the name), with a client of its own,
no proxy from the environment, no redirect followed (a 3xx is a failure, as the spec says), at most
``TIMEOUT`` per network step, and at most ``READ_AT_MOST`` bytes of the answer read (undecoded),
none after ``BODY_SECONDS``. (The status line and headers are bounded per read only: a receiver
that drips its headers a byte at a time holds one attempt for longer.) Headers:
``webhook-id`` (the delivery's msg id, the same on every attempt), ``webhook-timestamp`` (this
attempt's time) and ``webhook-signature``.

Outcomes: 2xx delivered; 410 disables the endpoint (its other pending deliveries stop too); anything
else is retried after ``schedule[n]`` seconds (n: attempts made so far; the default is the spec's
at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h), with ±``jitter`` and at least the
receiver's ``Retry-After`` (at most a day); after the last, the delivery is ``failed``. The outbox
is all a receiver's answer touches: never a story, a job or a manifest.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from pipeline import __version__
from pipeline.notify import outbox, signing
from pipeline.notify.outbox import Delivery, Endpoint
from pipeline.notify.targets import Policy, Resolver, TargetRefused, check_url, resolve
from pipeline.redaction import redact
from pipeline.storage import Storage

log = logging.getLogger("storymedia.webhooks")

SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
"""Seconds before attempt n+1 (the first: at once), as the Standard Webhooks spec retries."""
JITTER = 0.1
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
READ_AT_MOST = 4096
BODY_SECONDS = 15.0
"""No more of the answer is read once the attempt has taken this long (a receiver that drips)."""
RETRY_AFTER_MAX = 86400.0
USER_AGENT = f"storymedia-webhooks/{__version__}"


@dataclass(frozen=True)
class Answer:
    """What one attempt came to: a status, or an error without one."""

    status: int | None = None
    error: str = ""
    retry_after: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """One delivery after one attempt (what metrics count): ``delivered``, ``retry``, ``failed``
    or ``disabled``."""

    endpoint: str
    delivery: str
    type: str
    outcome: str
    status: int | None
    error: str


def send(endpoint: Endpoint, delivery: Delivery, policy: Policy, resolver: Resolver = resolve,
         verify: ssl.SSLContext | bool = True) -> Answer:
    """One attempt of ``delivery`` to ``endpoint``, the URL checked again first (``verify``: the
    certificates trusted; the system's by default)."""
    started = time.monotonic()
    try:
        target = check_url(endpoint.url, policy, resolver)
    except TargetRefused as exc:
        return Answer(error=f"refused: {exc.reason}", seconds=round(time.monotonic() - started, 3))
    body = delivery.body
    stamp = int(time.time())
    headers = {**signing.headers(endpoint.secret, delivery.msg_id, stamp, body),
               "host": target.host_header, "user-agent": USER_AGENT}
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False, verify=verify) as client:
            request = client.build_request("POST", target.pinned_url(target.addresses[0]), content=body,
                                           headers=headers, extensions=extensions)
            response = client.send(request, stream=True)
            try:
                read = 0
                for chunk in response.iter_raw():
                    read += len(chunk)
                    if read >= READ_AT_MOST or time.monotonic() - started > BODY_SECONDS:
                        break
            finally:
                response.close()
            return Answer(status=response.status_code,
                          retry_after=retry_after(response.headers.get("retry-after")),
                          seconds=round(time.monotonic() - started, 3))
    except httpx.TimeoutException:
        error = "timed out"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {redact(str(exc))[:200]}"
    return Answer(error=error, seconds=round(time.monotonic() - started, 3))


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta seconds or an HTTP date), None if absent
    or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), RETRY_AFTER_MAX)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), RETRY_AFTER_MAX))


def next_delay(schedule: Sequence[float], tries: int, wait_at_least: float | None = None,
               jitter: float = JITTER) -> float | None:
    """Seconds until the next attempt after ``tries`` attempts; None when the schedule is done."""
    if tries >= len(schedule):
        return None
    delay = float(schedule[tries])
    if delay > 0 and jitter > 0:
        delay *= random.uniform(1 - jitter, 1 + jitter)
    return max(delay, wait_at_least or 0.0)


def _attempt_record(answer: Answer, at: float, replay: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {"at": outbox.iso(at), "seconds": answer.seconds}
    if answer.status is not None:
        record["status"] = answer.status
    else:
        record["error"] = answer.error
    if replay:
        record["replay"] = True
    return record


def _outcome(delivery: Delivery, outcome: str, answer: Answer) -> Outcome:
    return Outcome(endpoint=delivery.endpoint, delivery=delivery.id, type=delivery.type, outcome=outcome,
                   status=answer.status, error=answer.error)


def _gone(private: Storage, endpoint: Endpoint, delivery: Delivery) -> Delivery:
    """The receiver answered 410 Gone: the delivery and the endpoint are disabled."""
    saved = outbox.save_delivery(private, replace(delivery, state="disabled"), None)
    outbox.disable_endpoint(private, endpoint, "the receiver answered 410 Gone")
    log.warning("webhook endpoint %s answered 410 Gone: disabled", endpoint.id)
    return saved


def _settle(private: Storage, endpoint: Endpoint, delivery: Delivery, answer: Answer, now: float,
            schedule: Sequence[float], jitter: float) -> tuple[Delivery, str]:
    """Record a scheduled attempt and decide what follows."""
    delivery = replace(delivery.with_attempt(_attempt_record(answer, now)), tries=delivery.tries + 1)
    if answer.status is not None and 200 <= answer.status < 300:
        return outbox.save_delivery(private, replace(delivery, state="delivered"), None), "delivered"
    if answer.status == 410:
        return _gone(private, endpoint, delivery), "disabled"
    delay = next_delay(schedule, delivery.tries, answer.retry_after, jitter)
    if delay is None:
        return outbox.save_delivery(private, replace(delivery, state="failed"), None), "failed"
    return outbox.save_delivery(private, delivery, now + answer.seconds + delay), "retry"


def _deliver_one(private: Storage, due: outbox.Due, policy: Policy, schedule: Sequence[float],
                 jitter: float, resolver: Resolver, now: float) -> Outcome | None:
    delivery = outbox.read_delivery(private, due.endpoint, due.delivery)
    if delivery is None or delivery.state != "pending" or delivery.marker != due.marker:
        private.delete(due.marker)   # stale: the record moved on, or is gone
        return None
    endpoint = outbox.read_endpoint(private, due.endpoint)
    if endpoint is None:   # deleted while this delivery waited
        private.delete(outbox.delivery_key(due.endpoint, due.delivery))
        private.delete(due.marker)
        return None
    if not endpoint.enabled:
        outbox.save_delivery(private, replace(delivery, state="disabled"), None)
        return Outcome(endpoint.id, delivery.id, delivery.type, "disabled", None, "the endpoint is disabled")
    answer = send(endpoint, delivery, policy, resolver)
    settled, outcome = _settle(private, endpoint, delivery, answer, now, schedule, jitter)
    if outcome != "delivered":
        log.info("webhook %s to endpoint %s: %s (%s)", delivery.id, endpoint.id, outcome,
                 answer.status if answer.status is not None else answer.error)
    return _outcome(settled, outcome, answer)


def deliver_due(private: Storage, now: float | None = None, *, policy: Policy,
                schedule: Sequence[float] = SCHEDULE, jitter: float = JITTER, limit: int = 100,
                budget: float = 60.0, resolver: Resolver = resolve) -> list[Outcome]:
    """Send every delivery due at ``now`` once (at most ``limit``, and none started after
    ``budget`` seconds), earliest first; record each attempt and schedule the next."""
    when = time.time() if now is None else now
    started = time.monotonic()
    outcomes: list[Outcome] = []
    for due in list(outbox.due(private, when)):
        if len(outcomes) >= limit or time.monotonic() - started > budget:
            break
        with outbox.locked(private):
            outcome = _deliver_one(private, due, policy, schedule, jitter, resolver, when)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def replay(private: Storage, endpoint_id: str, delivery_id: str, *, policy: Policy,
           resolver: Resolver = resolve) -> tuple[Delivery, Outcome]:
    """One more attempt of a delivery now, with the same ``webhook-id``. A 2xx makes it delivered;
    a failure leaves its state and schedule as they were (410 still disables the endpoint).
    LookupError when the endpoint or the delivery is not there, OutboxError when the endpoint is
    disabled."""
    with outbox.locked(private):
        endpoint = outbox.read_endpoint(private, endpoint_id)
        delivery = outbox.read_delivery(private, endpoint_id, delivery_id) if endpoint else None
        if endpoint is None or delivery is None:
            raise LookupError(delivery_id)
        if not endpoint.enabled:
            why = endpoint.disabled_reason or "by an operator"
            raise outbox.OutboxError(f"the endpoint is disabled ({why})")
        now = time.time()
        answer = send(endpoint, delivery, policy, resolver)
        delivery = delivery.with_attempt(_attempt_record(answer, now, replay=True))
        if answer.status is not None and 200 <= answer.status < 300:
            saved = outbox.save_delivery(private, replace(delivery, state="delivered"), None)
            outcome = "delivered"
        elif answer.status == 410:
            saved, outcome = _gone(private, endpoint, delivery), "disabled"
        else:
            due_at = outbox.epoch(delivery.next_at) if delivery.next_at else None
            saved = outbox.save_delivery(private, delivery, due_at)
            outcome = "retry" if delivery.state == "pending" else "failed"
        return saved, _outcome(saved, outcome, answer)
