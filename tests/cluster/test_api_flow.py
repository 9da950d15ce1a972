"""The whole flow over HTTP against the service in front of the cluster: real Redis, SeaweedFS and
``storymedia worker`` processes. The same steps as the embedded flow (tests/api/test_flow.py): the
sample story created, its files uploaded with tuspy (one cut off and resumed), submitted, followed
over Server-Sent Events, its manifest fetched with presigned S3 URLs and one rendition downloaded;
the result equals ``storymedia run`` on the same story (clip checksums aside), and the public
bucket holds no GPS or camera serial (the sample photos carry both; the raws keep them, privately).
This is the cluster's sample-story test: the command line's submit is tested on small stories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import LiveServer, make_service
from tests.api.test_flow import comparable, differences, expected_manifest, sample_story_over_http
from tests.cluster.harness import Cluster
from tests.cluster.test_cluster import assert_public_area_holds_no_gps
from tests.cluster.test_faults import verify_store

pytestmark = pytest.mark.cluster


def test_the_sample_story_over_http_through_the_cluster_equals_storymedia_run(
        cluster: Cluster, sample_run: tuple[Path, Path, Any], tmp_path: Path) -> None:
    root, out, embedded = sample_run
    assert embedded.returncode == 0, embedded.stdout + embedded.stderr
    cluster.worker(concurrency=2).wait_ready()
    service = make_service(tmp_path / "service", env=cluster.env)
    assert service.config.mode == "cluster"
    with LiveServer(service.app) as live:
        published = sample_story_over_http(live.url, service, root)
    document = published.manifest
    endpoint = cluster.env["STORYMEDIA_S3_ENDPOINT_URL"]
    assert all(url.startswith(endpoint) and "X-Amz-Signature=" in url for url in published.urls)
    stored = verify_store(cluster, document["story"]["id"])   # every object downloaded and checked
    assert stored == document
    assert list(differences(comparable(document), comparable(expected_manifest(out)))) == []
    assert_public_area_holds_no_gps(cluster, tmp_path)   # the raws are in the private bucket
