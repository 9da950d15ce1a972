"""What a finished job announces to the webhook outbox: ``story.manifest.published`` when it wrote
a new manifest version, ``job.failed`` when it ended ``failed``. Never fails the job: an outbox that
cannot be written is logged and the job goes on (the manifest is the truth; a webhook is a hint)."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from pipeline.model import manifest
from pipeline.model.keys import manifest_version_key
from pipeline.notify import outbox
from pipeline.redaction import redact
from pipeline.storage import Storage

log = logging.getLogger("storymedia.webhooks")


def job_finished(public: Storage, private: Storage, story_id: str, job_id: str, status: str,
                 written: manifest.Written | None) -> None:
    """Publish the events of a job that just finished (after its manifest and ``done.json``)."""
    try:
        if written is not None and written.changed:
            key = manifest_version_key(story_id, written.version)
            sha256 = hashlib.sha256(manifest.encode(written.document)).hexdigest()
            outbox.publish(private, outbox.MANIFEST_PUBLISHED, outbox.manifest_published(
                story_id, written.version, key, public.public_url(key), sha256, status, job_id))
        if status == "failed":
            outbox.publish(private, outbox.JOB_FAILED,
                           outbox.job_failed(story_id, job_id, failure_reason(written)))
    except Exception as exc:   # any failure of the outbox must leave the job alone
        log.warning("story %s job %s: the webhook outbox could not be written (%s: %s); no webhook"
                    " for this job", story_id, job_id, type(exc).__name__, redact(str(exc)))


def failure_reason(written: manifest.Written | None) -> str:
    """Why the job failed, from the failed assets of its manifest."""
    if written is None:
        return "every asset failed"
    reasons = []
    assets: list[dict[str, Any]] = written.document.get("assets", [])
    for asset in assets:
        error = asset.get("error")
        if asset.get("status") == "failed" and isinstance(error, dict):
            reasons.append(f"asset {asset.get('order')}: {error.get('reason', 'failed')}")
    shown = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
    return shown or "every asset failed"
