"""The webhook outbox: endpoints and deliveries as JSON records in the PRIVATE store.

    webhooks/endpoints/<endpoint>.json                 url, events, secret, enabled, created,
                                                       description, disabled_reason
    webhooks/deliveries/<endpoint>/<delivery>.json     event type, msg id (the ``webhook-id``, the
                                                       same on every attempt), payload, attempts,
                                                       state, next_at, the due marker it waits on
    webhooks/due/<due ms>.<endpoint>.<delivery>        empty: the delivery is due at that time

Delivery ids begin with their creation time, so an endpoint's deliveries list oldest first; due
markers begin with the time they are due, so :func:`due` stops at the first one in the future
without reading any record. A marker is written before the record that names it and removed after,
so a crash leaves at worst a stale marker (dropped when it comes due) or a second attempt of the same
message, never a delivery nobody will send. States: ``pending`` (an attempt is due at ``next_at``),
``delivered`` (a 2xx), ``failed`` (the last attempt of the schedule failed), ``disabled`` (the
endpoint answered 410 or was disabled). The secret is in the endpoint's record only: listings use
:meth:`Endpoint.public`; it is shown once, when the endpoint is made.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import StorageError
from pipeline.notify.signing import new_secret
from pipeline.storage import NO_CACHE, Locking, Storage

log = logging.getLogger("storymedia.webhooks")

MANIFEST_PUBLISHED = "story.manifest.published"
JOB_FAILED = "job.failed"
EVENTS = (MANIFEST_PUBLISHED, JOB_FAILED)
STATES = ("pending", "delivered", "failed", "disabled")

MAX_ENDPOINTS = 50
KEEP_DELIVERIES = 1000
"""Per endpoint: older finished deliveries are removed when a new one is published."""
KEEP_ATTEMPTS = 50
"""Attempts kept in a delivery's record (the newest; ``tries`` counts the scheduled ones)."""
MAX_DESCRIPTION = 500

ENDPOINTS = "webhooks/endpoints/"
DELIVERIES = "webhooks/deliveries/"
DUE = "webhooks/due/"
ENDPOINT_ID = re.compile(r"ep_[0-9a-f]{16}")
DELIVERY_ID = re.compile(r"dlv_[0-9a-f]{20}")
MSG_ID = re.compile(r"msg_[0-9A-Za-z_-]{16,64}")
_MARKER = re.compile(r"(\d{13})\.(ep_[0-9a-f]{16})\.(dlv_[0-9a-f]{20})")


class OutboxError(ValueError):
    """A request the outbox refuses (too many endpoints, an unknown event); says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str = field(repr=False)
    enabled: bool
    created: str
    description: str = ""
    disabled_reason: str = ""

    def public(self) -> dict[str, Any]:
        """The endpoint without its secret (what listings show)."""
        return {"id": self.id, "url": self.url, "events": list(self.events), "enabled": self.enabled,
                "created": self.created, "description": self.description,
                "disabled_reason": self.disabled_reason}

    def to_json(self) -> dict[str, Any]:
        return {"schema": "storymedia/webhook-endpoint@1", **self.public(), "secret": self.secret}

    @classmethod
    def from_json(cls, data: Any) -> Endpoint:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        events = data.get("events")
        if not isinstance(events, list) or not all(e in EVENTS for e in events):
            raise ValueError("events")
        for name in ("id", "url", "secret", "created", "description", "disabled_reason"):
            if not isinstance(data.get(name, ""), str):
                raise ValueError(name)
        if not ENDPOINT_ID.fullmatch(data["id"]) or not isinstance(data.get("enabled"), bool):
            raise ValueError("id or enabled")
        return cls(id=data["id"], url=data["url"], events=tuple(events), secret=data["secret"],
                   enabled=data["enabled"], created=data["created"],
                   description=data.get("description", ""), disabled_reason=data.get("disabled_reason", ""))


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint: str
    type: str
    msg_id: str
    payload: dict[str, Any]
    created: str
    state: str = "pending"
    next_at: str | None = None
    tries: int = 0
    """Scheduled attempts made (a replay does not count: it does not move the schedule)."""
    attempts: tuple[dict[str, Any], ...] = ()
    """``{at, status | error, seconds, replay?}``, oldest first (the newest ``KEEP_ATTEMPTS``)."""
    marker: str | None = None
    """The due marker this delivery waits on (None when nothing is due)."""

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint": self.endpoint, "type": self.type, "msg_id": self.msg_id,
                "payload": self.payload, "created": self.created, "state": self.state,
                "next_at": self.next_at, "tries": self.tries, "attempts": list(self.attempts)}

    def to_json(self) -> dict[str, Any]:
        return {"schema": "storymedia/webhook-delivery@1", **self.public(), "marker": self.marker}

    @classmethod
    def from_json(cls, data: Any) -> Delivery:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if not (isinstance(data.get("id"), str) and DELIVERY_ID.fullmatch(data["id"])
                and isinstance(data.get("endpoint"), str) and ENDPOINT_ID.fullmatch(data["endpoint"])
                and isinstance(data.get("msg_id"), str) and MSG_ID.fullmatch(data["msg_id"])
                and data.get("type") in EVENTS and data.get("state") in STATES
                and isinstance(data.get("payload"), dict) and isinstance(data.get("created"), str)
                and type(data.get("tries", 0)) is int and isinstance(data.get("attempts", []), list)
                and all(isinstance(a, dict) for a in data.get("attempts", []))
                and isinstance(data.get("next_at") or "", str) and isinstance(data.get("marker") or "", str)):
            raise ValueError("fields")
        return cls(id=data["id"], endpoint=data["endpoint"], type=data["type"], msg_id=data["msg_id"],
                   payload=data["payload"], created=data["created"], state=data["state"],
                   next_at=data.get("next_at"), tries=data.get("tries", 0),
                   attempts=tuple(data.get("attempts", [])), marker=data.get("marker"))

    @property
    def body(self) -> bytes:
        """The bytes every attempt sends (and signs): the payload as compact JSON."""
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def with_attempt(self, attempt: Mapping[str, Any]) -> Delivery:
        return replace(self, attempts=(*self.attempts, dict(attempt))[-KEEP_ATTEMPTS:])


# keys ---------------------------------------------------------------------------------------------

def endpoint_key(endpoint_id: str) -> str:
    return f"{ENDPOINTS}{endpoint_id}.json"


def delivery_key(endpoint_id: str, delivery_id: str) -> str:
    return f"{DELIVERIES}{endpoint_id}/{delivery_id}.json"


def marker_key(at: float, endpoint_id: str, delivery_id: str) -> str:
    return f"{DUE}{max(0, round(at * 1000)):013d}.{endpoint_id}.{delivery_id}"


def new_delivery_id(now: float) -> str:
    return f"dlv_{round(now * 1000):012x}{secrets.token_hex(4)}"


def locked(private: Storage) -> AbstractContextManager[None]:
    """One writer of outbox records at a time within this store's processes (a lock file in the
    embedded service; the cluster's sender holds a Redis lock instead)."""
    if isinstance(private, Locking):
        return private.exclusive("webhook-outbox", timeout=60)
    return contextlib.nullcontext()


def _put(private: Storage, key: str, document: dict[str, Any]) -> None:
    private.replace(key, json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"),
                    content_type="application/json", cache_control=NO_CACHE)


def _get(private: Storage, key: str) -> Any:
    try:
        return json.loads(private.get_bytes(key))
    except StorageError:
        if not private.exists(key):
            return None
        raise
    except ValueError:
        log.warning("the webhook record %s is not JSON; ignored", key)
        return None


# endpoints ----------------------------------------------------------------------------------------

def create_endpoint(private: Storage, url: str, events: Sequence[str], description: str = "",
                    now: float | None = None) -> Endpoint:
    """Record a new endpoint with a new secret (the caller has checked the URL). The secret is in
    the returned endpoint: show it once."""
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise OutboxError(f"events must be one or more of {', '.join(EVENTS)}")
    if len(list(private.list(ENDPOINTS))) >= MAX_ENDPOINTS:
        raise OutboxError(f"this service has {MAX_ENDPOINTS} webhook endpoints already; delete one first")
    endpoint = Endpoint(id=f"ep_{secrets.token_hex(8)}", url=url, events=tuple(dict.fromkeys(events)),
                        secret=new_secret(), enabled=True, created=iso(time.time() if now is None else now),
                        description=description[:MAX_DESCRIPTION])
    _put(private, endpoint_key(endpoint.id), endpoint.to_json())
    return endpoint


def read_endpoint(private: Storage, endpoint_id: str) -> Endpoint | None:
    if not ENDPOINT_ID.fullmatch(endpoint_id):
        return None
    data = _get(private, endpoint_key(endpoint_id))
    if data is None:
        return None
    try:
        return Endpoint.from_json(data)
    except ValueError:
        log.warning("the webhook endpoint record %s is damaged; ignored", endpoint_id)
        return None


def endpoints(private: Storage) -> list[Endpoint]:
    found = []
    for key in private.list(ENDPOINTS):
        endpoint = read_endpoint(private, key[len(ENDPOINTS):].removesuffix(".json"))
        if endpoint is not None:
            found.append(endpoint)
    return found


def delete_endpoint(private: Storage, endpoint_id: str) -> bool:
    """Remove the endpoint and its outbox (deliveries, due markers); False when it is not there."""
    if read_endpoint(private, endpoint_id) is None:
        return False
    for key in list(private.list(f"{DELIVERIES}{endpoint_id}/")):
        private.delete(key)
    for key in list(private.list(DUE)):
        found = _MARKER.fullmatch(key[len(DUE):])
        if found and found.group(2) == endpoint_id:
            private.delete(key)
    private.delete(endpoint_key(endpoint_id))
    return True


def disable_endpoint(private: Storage, endpoint: Endpoint, reason: str) -> Endpoint:
    """Stop every delivery to the endpoint: it is marked disabled, its pending deliveries too."""
    disabled = replace(endpoint, enabled=False, disabled_reason=reason[:300])
    _put(private, endpoint_key(endpoint.id), disabled.to_json())
    for delivery in _all_deliveries(private, endpoint.id):
        if delivery.state == "pending":
            save_delivery(private, replace(delivery, state="disabled", next_at=None), None)
    return disabled


# deliveries ---------------------------------------------------------------------------------------

def read_delivery(private: Storage, endpoint_id: str, delivery_id: str) -> Delivery | None:
    if not ENDPOINT_ID.fullmatch(endpoint_id) or not DELIVERY_ID.fullmatch(delivery_id):
        return None
    data = _get(private, delivery_key(endpoint_id, delivery_id))
    if data is None:
        return None
    try:
        delivery = Delivery.from_json(data)
    except ValueError:
        log.warning("the webhook delivery record %s/%s is damaged; ignored", endpoint_id, delivery_id)
        return None
    return delivery if (delivery.endpoint, delivery.id) == (endpoint_id, delivery_id) else None


def _delivery_ids(private: Storage, endpoint_id: str) -> list[str]:
    prefix = f"{DELIVERIES}{endpoint_id}/"
    return [key[len(prefix):].removesuffix(".json") for key in private.list(prefix)
            if DELIVERY_ID.fullmatch(key[len(prefix):].removesuffix(".json"))]


def _all_deliveries(private: Storage, endpoint_id: str) -> Iterator[Delivery]:
    for delivery_id in _delivery_ids(private, endpoint_id):
        delivery = read_delivery(private, endpoint_id, delivery_id)
        if delivery is not None:
            yield delivery


def deliveries(private: Storage, endpoint_id: str, limit: int = 50,
               before: str | None = None) -> tuple[list[Delivery], str | None]:
    """The endpoint's deliveries, newest first, ``limit`` at most, older than the delivery
    ``before`` (a cursor); and the cursor of the next page (None: no more)."""
    ids = sorted(_delivery_ids(private, endpoint_id), reverse=True)
    if before is not None:
        ids = [i for i in ids if i < before]
    page = [d for d in (read_delivery(private, endpoint_id, i) for i in ids[:limit]) if d is not None]
    return page, (ids[limit - 1] if len(ids) > limit else None)


def save_delivery(private: Storage, delivery: Delivery, due_at: float | None) -> Delivery:
    """Write the delivery with its next due time (None: nothing more is due): the new marker first,
    then the record that names it, then the old marker goes."""
    old = delivery.marker
    marker = marker_key(due_at, delivery.endpoint, delivery.id) if due_at is not None else None
    saved = replace(delivery, marker=marker, next_at=iso(due_at) if due_at is not None else None)
    if marker is not None and marker != old:
        private.replace(marker, b"", content_type="application/octet-stream", cache_control=NO_CACHE)
    _put(private, delivery_key(delivery.endpoint, delivery.id), saved.to_json())
    if old is not None and old != marker:
        private.delete(old)
    return saved


@dataclass(frozen=True)
class Due:
    marker: str
    at: float
    endpoint: str
    delivery: str


def due(private: Storage, now: float) -> Iterator[Due]:
    """The due markers whose time has come, earliest first."""
    for key in private.list(DUE):
        found = _MARKER.fullmatch(key[len(DUE):])
        if found is None:
            log.warning("a stray key %s in the webhook outbox; removed", key)
            private.delete(key)
            continue
        at = int(found.group(1)) / 1000
        if at > now:
            return
        yield Due(marker=key, at=at, endpoint=found.group(2), delivery=found.group(3))


def _prune(private: Storage, endpoint_id: str) -> None:
    ids = sorted(_delivery_ids(private, endpoint_id))
    for delivery_id in ids[:max(0, len(ids) - KEEP_DELIVERIES)]:
        delivery = read_delivery(private, endpoint_id, delivery_id)
        if delivery is None or delivery.state != "pending":
            private.delete(delivery_key(endpoint_id, delivery_id))


# events -------------------------------------------------------------------------------------------

def publish(private: Storage, event_type: str, data: Mapping[str, Any],
            now: float | None = None) -> list[Delivery]:
    """One delivery of the event per enabled endpoint subscribed to it, due at once. The payload is
    thin (``type``, ``timestamp``, ``data``); the message id is the same for every endpoint."""
    if event_type not in EVENTS:
        raise OutboxError(f"unknown event {event_type!r}")
    when = time.time() if now is None else now
    payload = {"type": event_type, "timestamp": iso(when).replace("+00:00", "Z"), "data": dict(data)}
    msg_id = f"msg_{secrets.token_urlsafe(18)}"
    made = []
    for endpoint in endpoints(private):
        if not endpoint.enabled or event_type not in endpoint.events:
            continue
        delivery = Delivery(id=new_delivery_id(when), endpoint=endpoint.id, type=event_type, msg_id=msg_id,
                            payload=payload, created=iso(when))
        made.append(save_delivery(private, delivery, when))
        _prune(private, endpoint.id)
    return made


def manifest_published(story_id: str, version: int, key: str, url: str, sha256: str, status: str,
                       job_id: str) -> dict[str, Any]:
    """The data of ``story.manifest.published``: what the CMS needs to fetch and check it."""
    return {"story_id": story_id, "manifest_version": version, "manifest_key": key, "manifest_url": url,
            "manifest_sha256": sha256, "status": status, "job_id": job_id}


def job_failed(story_id: str, job_id: str, reason: str) -> dict[str, Any]:
    """The data of ``job.failed``."""
    return {"story_id": story_id, "job_id": job_id, "reason": reason[:1000]}
