"""reconcile aborts stale multipart uploads, but never the service's resumable uploads: a producer's
upload may pause for as long as STORYMEDIA_UPLOAD_EXPIRY (the service's own cleaner ends it), and
one that declared its SHA-256 is assembled at its raw's key."""

from __future__ import annotations

import pytest

from tests.cluster.harness import Cluster

pytestmark = pytest.mark.cluster


def test_reconcile_leaves_the_services_uploads_and_aborts_stale_raw_ones(cluster: Cluster) -> None:
    private = cluster.storage(private=True)
    paused = private.start_parts("uploads/0123456789abcdef0123456789abcdef.data")
    stale = private.start_parts("raw/ab/" + "ab" * 32)
    done = cluster.cli("reconcile", "--stale-after", "0.001")
    assert done.returncode == 0, done.stdout + done.stderr
    left = {upload for _, upload in private.incomplete_uploads("")}
    assert {paused, stale} <= left, "a raw upload younger than the upload expiry may be a paused one"
    done = cluster.cli("reconcile", "--stale-after", "0.001", STORYMEDIA_UPLOAD_EXPIRY="0.001")
    assert done.returncode == 0, done.stdout + done.stderr
    left = {upload for _, upload in private.incomplete_uploads("")}
    assert paused in left, "the producer's paused upload survived"
    assert stale not in left, "the abandoned raw upload was aborted"
    private.abort_upload("uploads/0123456789abcdef0123456789abcdef.data", paused)
