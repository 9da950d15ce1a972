"""The webhook outbox on real stores: endpoints without secrets in listings, one delivery per
subscribed endpoint, due markers in time order, and what a finished job publishes."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from pipeline.model import manifest
from pipeline.notify import announce, outbox
from pipeline.run import orchestration
from pipeline.storage import LocalStorage, MemoryStorage
from tests.unit.test_orchestration import all_recorded, entry, job, record


def test_endpoints_keep_their_secret_out_of_listings_and_publish_goes_to_subscribers() -> None:
    private = MemoryStorage()
    both = outbox.create_endpoint(private, "https://cms.example.vn/hook", list(outbox.EVENTS), "CMS")
    failures = outbox.create_endpoint(private, "https://ops.example.vn/hook", [outbox.JOB_FAILED])
    assert both.secret.startswith("whsec_")
    assert all("secret" not in e.public() and both.secret not in json.dumps(e.public())
               for e in outbox.endpoints(private))
    with pytest.raises(outbox.OutboxError, match="events"):
        outbox.create_endpoint(private, "https://cms.example.vn/x", ["story.deleted"])

    made = outbox.publish(private, outbox.MANIFEST_PUBLISHED, {"story_id": "s"}, now=1000.0)
    assert [d.endpoint for d in made] == [both.id]
    failed = outbox.publish(private, outbox.JOB_FAILED, {"story_id": "s"}, now=1001.0)
    assert sorted(d.endpoint for d in failed) == sorted([both.id, failures.id])
    assert len({d.msg_id for d in failed}) == 1                   # one message, one webhook-id
    assert failed[0].payload["type"] == "job.failed" and failed[0].payload["data"] == {"story_id": "s"}
    assert [d.delivery for d in outbox.due(private, 1000.5)] == [made[0].id]
    assert len(list(outbox.due(private, 2000.0))) == 3
    page, more = outbox.deliveries(private, both.id, limit=1)
    assert [d.type for d in page] == ["job.failed"] and more is not None          # newest first
    older, last = outbox.deliveries(private, both.id, limit=1, before=more)
    assert [d.type for d in older] == ["story.manifest.published"] and last is None


def test_deleting_an_endpoint_removes_its_outbox_and_a_disabled_one_gets_nothing() -> None:
    private = MemoryStorage()
    gone = outbox.create_endpoint(private, "https://cms.example.vn/hook", [outbox.JOB_FAILED])
    kept = outbox.create_endpoint(private, "https://ops.example.vn/hook", [outbox.JOB_FAILED])
    outbox.publish(private, outbox.JOB_FAILED, {"story_id": "s"}, now=1000.0)
    assert outbox.delete_endpoint(private, gone.id)
    assert not outbox.delete_endpoint(private, gone.id)
    assert not [k for k in private.list("webhooks/") if gone.id in k]
    assert [d.endpoint for d in outbox.due(private, 2000.0)] == [kept.id]
    disabled = outbox.disable_endpoint(private, kept, "the receiver answered 410 Gone")
    assert not disabled.enabled
    assert [d.state for d in outbox.deliveries(private, kept.id)[0]] == ["disabled"]
    assert outbox.publish(private, outbox.JOB_FAILED, {"story_id": "s"}) == []


def test_a_finished_job_publishes_its_new_manifest_once_with_its_sha256() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    hook = outbox.create_endpoint(private, "https://cms.example.vn/hook", list(outbox.EVENTS))
    the_job = job()
    all_recorded(public, private, the_job)
    finished = orchestration.finish(public, private, the_job)
    orchestration.finish(public, private, the_job)                # already done: nothing more
    [published] = outbox.deliveries(private, hook.id)[0]
    data = published.payload["data"]
    assert published.type == "story.manifest.published"
    assert data["manifest_version"] == finished.version == 1 and data["status"] == "complete"
    assert data["story_id"] == the_job.story_id and data["job_id"] == the_job.id
    stored = public.get_bytes(data["manifest_key"])
    assert hashlib.sha256(stored).hexdigest() == data["manifest_sha256"]
    assert data["manifest_url"] == public.public_url(data["manifest_key"])
    assert manifest.read_current(public, the_job.story_id)["version"] == 1


def test_a_failed_job_publishes_job_failed_with_the_reasons() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    hook = outbox.create_endpoint(private, "https://ops.example.vn/hook", [outbox.JOB_FAILED])
    the_job = job()
    for order in (1, 2, 3):
        failed = {**entry(order, public), "status": "failed", "renditions": [],
                  "error": {"code": "unsupported", "reason": f"tệp {order} hỏng", "retryable": False}}
        record(private, the_job, order, failed)
    assert orchestration.finish(public, private, the_job).status == "failed"
    [sent] = outbox.deliveries(private, hook.id)[0]
    assert sent.type == "job.failed"
    assert sent.payload["data"]["job_id"] == the_job.id
    assert "asset 1: tệp 1 hỏng" in sent.payload["data"]["reason"]


def test_an_outbox_that_cannot_be_written_never_fails_the_job(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    public, private = MemoryStorage(), LocalStorage(tmp_path / "private")
    hook = outbox.create_endpoint(private, "https://cms.example.vn/hook", list(outbox.EVENTS))
    (tmp_path / "private" / "webhooks" / "deliveries").write_text("a file where a folder must be")
    the_job = job()
    all_recorded(public, private, the_job)
    with caplog.at_level(logging.WARNING, logger="storymedia.webhooks"):
        finished = orchestration.finish(public, private, the_job)
    assert finished.status == "complete" and finished.version == 1
    assert manifest.read_current(public, the_job.story_id)["version"] == 1
    assert "the webhook outbox could not be written" in caplog.text
    assert hook.secret not in caplog.text
    announce.job_finished(public, private, the_job.story_id, the_job.id, "failed", None)   # no raise
