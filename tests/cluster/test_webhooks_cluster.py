"""The cluster's webhook sender: its outbox on a real S3 server, its lock in a real Redis, a real
receiver. Two workers running the beat task at once never send one delivery twice; a held lock
makes a run return at once; beat schedules it every few seconds on the io queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pipeline.notify import outbox
from pipeline.notify.targets import Policy
from pipeline.storage.s3 import S3Storage
from tests.api.receiver import Receiver
from tests.servers import RedisServer
from workers import notify
from workers.app import create_app
from workers.settings import Settings

pytestmark = pytest.mark.cluster

LOOPBACK = Policy(hosts=("127.0.0.1",), allow_loopback=True)   # the receiver is on 127.0.0.1


@pytest.fixture
def redis_client(tmp_path: Path) -> Iterator[redis.Redis]:
    with RedisServer(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        yield client
        client.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


def test_two_workers_at_once_send_each_delivery_once(s3_storage: S3Storage, redis_client: redis.Redis,
                                                     receiver: Receiver) -> None:
    receiver.answer = lambda n: (time.sleep(0.2), (200, {}))[1]   # a slow CMS: the runs overlap
    endpoint = outbox.create_endpoint(s3_storage, receiver.url, [outbox.JOB_FAILED])
    sent = [outbox.publish(s3_storage, outbox.JOB_FAILED, {"story_id": f"s{n}"})[0] for n in range(6)]
    results: list[dict] = []

    def worker() -> None:
        for _ in range(3):
            results.append(notify.deliver(s3_storage, redis_client, LOOPBACK))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(r.get("delivered", 0) for r in results) == 6
    assert notify.delivery_counts(redis_client) == {"delivered": 6}, "counted cluster-wide for /metrics"
    assert any(r.get("busy") for r in results)
    assert sorted(receiver.ids()) == sorted(d.msg_id for d in sent)          # each exactly once
    assert len(receiver.verified(endpoint.secret)) == 6
    assert {d.state for d in outbox.deliveries(s3_storage, endpoint.id)[0]} == {"delivered"}
    assert list(outbox.due(s3_storage, time.time() + 86400)) == []


def test_a_held_lock_makes_a_run_return_without_sending(s3_storage: S3Storage, redis_client: redis.Redis,
                                                        receiver: Receiver) -> None:
    outbox.create_endpoint(s3_storage, receiver.url, [outbox.JOB_FAILED])
    outbox.publish(s3_storage, outbox.JOB_FAILED, {"story_id": "s"})
    held = redis_client.lock(notify.LOCK, timeout=30)
    assert held.acquire(blocking=False)
    assert notify.deliver(s3_storage, redis_client, LOOPBACK) == {"busy": True}
    assert receiver.calls == []
    held.release()
    assert notify.deliver(s3_storage, redis_client, LOOPBACK) == {"delivered": 1}


def test_beat_sends_webhooks_every_five_seconds_on_io_with_the_workers_allow_list() -> None:
    settings = Settings.from_env({"STORYMEDIA_WEBHOOK_HOSTS": "cms.example.vn, *.baothanhhoa.vn",
                                  "STORYMEDIA_WEBHOOK_ALLOW_PRIVATE": "1"})
    app = create_app(settings)
    entry = app.conf.beat_schedule["deliver-webhooks"]
    assert entry["task"] == "storymedia.deliver_webhooks"
    assert entry["schedule"] == 5.0 and entry["options"] == {"queue": "io", "expires": 5.0}
    app.loader.import_default_modules()
    assert "storymedia.deliver_webhooks" in app.tasks
    rules = notify.policy(settings)
    assert rules.hosts == ("cms.example.vn", "*.baothanhhoa.vn") and rules.allow_private
    assert not rules.allow_loopback
