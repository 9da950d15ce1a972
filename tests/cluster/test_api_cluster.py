"""The HTTP service in front of the cluster (``api.cluster.ClusterBackend``) on a real Redis, the
SeaweedFS S3 server and real worker processes: readiness, queues, workers, submit and attach."""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client
from fastapi.testclient import TestClient

from api import records
from pipeline.model.story import load_story
from pipeline.run.originals import store_original
from tests.api.harness import Service, make_service
from tests.cluster.harness import Cluster, wait_for
from tests.cluster.stories import small_story
from tests.cluster.test_faults import job_of, wait_rendering_clip
from workers.app import QUEUES

pytestmark = pytest.mark.cluster

OFFSET_STREAM = "application/offset+octet-stream"


@pytest.fixture
def api(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Service, TestClient]]:
    """The service on the test's cluster (the workers' own environment: its Redis, its S3 prefix)."""
    service = make_service(tmp_path / "service", env=cluster.env)
    assert service.config.mode == "cluster"
    with TestClient(service.app) as http:
        yield service, http


def create_story(service: Service, http: TestClient, story_file: Path, breaking: bool = False,
                 tus: bool = False) -> str:
    """The story created over HTTP by a producer, its raws uploaded with tus (``tus``), or stored
    and attached directly the way a finished upload is (quicker)."""
    story = load_story(story_file)
    body = story.model_dump(mode="json")
    body["story"]["breaking"] = breaking
    created = http.post("/v1/stories", json=body, headers=service.auth("producer"))
    assert created.status_code == 201, created.text
    story_id = story.story.id
    private = service.app.state.service.backend.private
    for asset in story.assets:
        if tus:
            metadata = ",".join(f"{name} {base64.b64encode(value.encode()).decode()}"
                                for name, value in (("story", story_id), ("file", asset.file)))
            sent = http.post("/v1/uploads", content=(story_file.parent / asset.file).read_bytes(), headers={
                **service.auth("producer"), "Tus-Resumable": "1.0.0", "Content-Type": OFFSET_STREAM,
                "Upload-Length": str((story_file.parent / asset.file).stat().st_size),
                "Upload-Metadata": metadata})
            assert sent.status_code == 201, sent.text
        else:
            raw = store_original(private, story_file.parent, asset.file, asset.file)
            records.attach(private, story_id, asset.file, raw.sha256, raw.bytes)
    files = http.get(f"/v1/stories/{story_id}", headers=service.auth("producer")).json()["files"]
    assert all(entry["uploaded"] for entry in files), files
    return story_id


def queues_by_name(service: Service, http: TestClient) -> dict[str, dict[str, Any]]:
    answer = http.get("/v1/queues", headers=service.auth("operator"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["mode"] == "cluster"
    return {queue["name"]: queue for queue in answer.json()["queues"]}


def test_readyz_names_the_broker_and_both_stores_and_says_why_when_redis_is_down(
        api: tuple[Service, TestClient], cluster: Cluster, tmp_path: Path) -> None:
    service, http = api
    answer = http.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "mode": "cluster",
                             "checks": {"broker": "ok", "store-public": "ok", "store-private": "ok"}}
    story_id = create_story(service, http, small_story(tmp_path / "story", clip_seconds=1, photos=1))

    cluster.redis.stop()
    started = time.monotonic()
    answer = http.get("/readyz")
    assert time.monotonic() - started < 5, "readiness is bounded in time"
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["store-public"] == "ok" and checks["store-private"] == "ok"
    assert checks["broker"].startswith("cannot reach the broker at redis://***@127.0.0.1:")
    # Every call that needs the broker is a problem document, never a traceback, never the password.
    for method, path, who in (("GET", "/v1/queues", "operator"), ("GET", "/v1/workers", "operator"),
                              ("POST", f"/v1/stories/{story_id}/jobs", "producer")):
        answer = http.request(method, path, headers=service.auth(who))
        assert answer.status_code == 503, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "unavailable" and "cannot reach the broker" in answer.json()["detail"]
        assert cluster.redis.password not in answer.text
    assert cluster.redis.password not in str(checks)

    cluster.redis.start()
    assert http.get("/readyz").status_code == 200


def test_queues_show_depth_and_the_growing_age_of_what_waits_in_both_lanes(
        api: tuple[Service, TestClient], cluster: Cluster, tmp_path: Path) -> None:
    service, http = api
    idle = queues_by_name(service, http)
    assert sorted(idle) == sorted(QUEUES)
    assert {q["lane"] for q in idle.values()} == {"normal", "breaking"}
    assert all(q["lane"] == ("breaking" if name.startswith("breaking-") else "normal") for name, q in idle.items())
    assert all(q["depth"] == 0 and q["oldest"] == 0 for q in idle.values())

    # No worker runs: the job's first message waits on the io queue.
    story_id = create_story(service, http, small_story(tmp_path / "story", clip_seconds=1, photos=1))
    submitted = http.post(f"/v1/stories/{story_id}/jobs", headers=service.auth("producer"))
    assert submitted.status_code == 202, submitted.text
    first = queues_by_name(service, http)
    assert first["io"]["depth"] == 1 and first["io"]["oldest"] >= 0
    assert all(q["depth"] == 0 for name, q in first.items() if name != "io")
    time.sleep(1.5)
    later = queues_by_name(service, http)
    assert later["io"]["depth"] == 1
    assert later["io"]["oldest"] >= first["io"]["oldest"] + 1.4

    # A breaking story goes down its own lane.
    breaking = create_story(service, http, small_story(tmp_path / "breaking", "tin-nong", clip_seconds=1,
                                                       photos=1), breaking=True)
    assert http.post(f"/v1/stories/{breaking}/jobs", headers=service.auth("producer")).status_code == 202
    lanes = queues_by_name(service, http)
    assert lanes["breaking-io"]["depth"] == 1 and lanes["io"]["depth"] == 1
    assert lanes["io"]["oldest"] > lanes["breaking-io"]["oldest"]

    # Resuming a job (after a re-run) queues its start again.
    backend = service.app.state.service.backend
    from pipeline.run import jobs

    job = jobs.read_job(backend.private, story_id, submitted.json()["id"])
    backend.resume(job)
    assert queues_by_name(service, http)["io"]["depth"] == 2

    # A message that is not one of ours: counted, its age unknown (0), never a failure.
    redis_client.Redis.from_url(cluster.redis.url).lpush("probe", b"\x00not json")
    probe = queues_by_name(service, http)["probe"]
    assert probe == {"name": "probe", "lane": "normal", "depth": 1, "oldest": 0.0, "note": probe["note"]}
    assert "no time of sending" in probe["note"]
    assert backend.queues()[QUEUES.index("probe")]["note"].startswith("the oldest message carries no time")


def test_workers_lists_a_worker_rendering_a_clip_with_its_job_story_and_order(
        api: tuple[Service, TestClient], cluster: Cluster, tmp_path: Path) -> None:
    service, http = api
    story_id = create_story(service, http, small_story(tmp_path / "story", clip_seconds=20, photos=0))
    assert http.get("/v1/workers", headers=service.auth("operator")).json() == {"mode": "cluster",
                                                                                 "workers": []}
    worker = cluster.worker(concurrency=1).wait_ready()
    submitted = http.post(f"/v1/stories/{story_id}/jobs", headers=service.auth("producer"))
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()["id"]
    wait_rendering_clip(cluster)

    answer = http.get("/v1/workers", headers=service.auth("operator"))
    assert answer.status_code == 200, answer.text
    (listed,) = answer.json()["workers"]
    assert listed["alive"] is True and listed["name"]
    assert {"task": "storymedia.render", "story": story_id, "job": job, "order": 1} in listed["running"]

    # The live progress says when the render began: the job's status has an ETA once it moves.
    def eta() -> Any:
        status = http.get(f"/v1/jobs/{job}", headers=service.auth("producer")).json()
        (clip,) = status["assets"]
        return clip["eta_seconds"] if clip["state"] == "rendering" else None
    assert wait_for(eta, 60, "an ETA for the clip", every=0.2) > 0

    # A worker that stops answering is listed as not alive.
    worker.kill_all()
    worker.stop()
    (gone,) = http.get("/v1/workers", headers=service.auth("operator")).json()["workers"]
    assert gone == {"name": listed["name"], "alive": False, "running": []}


def test_uploaded_and_submitted_over_http_attaches_like_the_command_line_and_keeps_its_idempotency_key(
        api: tuple[Service, TestClient], cluster: Cluster, tmp_path: Path) -> None:
    service, http = api
    story_file = small_story(tmp_path / "story", clip_seconds=1, photos=1)
    story_id = create_story(service, http, story_file, tus=True)
    url = f"/v1/stories/{story_id}/jobs"
    keyed = {**service.auth("producer"), "Idempotency-Key": "cms-42"}

    first = http.post(url, headers=keyed)
    assert first.status_code == 202, first.text
    job = first.json()["id"]
    assert first.json()["attached"] is False and first.headers["location"] == f"/v1/jobs/{job}"
    again = http.post(url, headers=service.auth("producer"))
    assert again.status_code == 202 and again.json()["id"] == job and again.json()["attached"] is True
    retried = http.post(url, headers=keyed)
    assert retried.status_code == 200 and retried.json()["id"] == job
    # The command line's submit of the same story and files attaches to the service's job.
    by_cli = cluster.cli("submit", str(story_file))
    assert by_cli.returncode == 0, by_cli.stdout + by_cli.stderr
    assert job_of(by_cli) == job and "already running" in by_cli.stdout
    assert queues_by_name(service, http)["io"]["depth"] == 1, "one job, one message"

    status = http.get(f"/v1/jobs/{job}", headers=service.auth("producer"))
    assert status.status_code == 200 and status.json()["state"] == "queued"
    # A worker takes it from there: the job completes with the manifest.
    cluster.worker(concurrency=2).wait_ready()

    def final() -> Any:
        found = http.get(f"/v1/jobs/{job}", headers=service.auth("producer")).json()
        return found if found["final"] else None
    assert wait_for(final, 180, "the job to finish", every=0.5)["state"] == "complete"
    manifest = http.get(f"/v1/stories/{story_id}/manifest?presign=1", headers=service.auth("editor"))
    assert manifest.status_code == 200, manifest.text
    assert manifest.json()["job"] == job
    rendition = manifest.json()["assets"][0]["renditions"][0]
    assert "X-Amz-Signature=" in rendition["url"]
    with urllib.request.urlopen(rendition["url"], timeout=30) as got:
        assert hashlib.sha256(got.read()).hexdigest() == rendition["sha256"]


@pytest.mark.parametrize(("message", "expected"), [
    (b'{"headers": {"storymedia_sent": 1700000000.5}}', 1700000000.5),
    (b'{"headers": {"storymedia_sent": 1700000000}}', 1700000000.0),
    (None, None),
    (b'{"headers": {"storymedia_sent": true}}', None),
    (b'{"headers": {"storymedia_sent": "1700000000"}}', None),
    (b'{"headers": {"storymedia_sent": NaN}}', None),
    (b'{"headers": ["storymedia_sent"]}', None),
    (b'[1, 2]', None),
    (b'\xff\xfe', None),
])
def test_the_send_time_is_read_only_from_a_well_formed_message(message: bytes | None,
                                                               expected: float | None) -> None:
    from workers.queues import sent_at

    assert sent_at(message) == expected


def test_two_replicas_never_write_one_upload_at_once(cluster: Cluster, tmp_path: Path) -> None:
    """The upload's hold is in Redis: while one replica of the service writes to an upload, another
    answers 409 (the client asks HEAD and goes on later); a replica that died lets go once its hold
    lapses."""
    from api.uploads import uploads_of

    one = make_service(tmp_path / "one", env=cluster.env)
    two = make_service(tmp_path / "two", env=cluster.env)
    two.tokens = one.tokens   # the same people (each replica's tokens file is its own here)
    two.config.tokens_file.write_bytes(one.config.tokens_file.read_bytes())
    story_file = small_story(tmp_path / "story")
    with TestClient(one.app) as first, TestClient(two.app) as second:
        story_id = create_story(one, first, story_file)
        asset = load_story(story_file).assets[0]
        data = (story_file.parent / asset.file).read_bytes()
        metadata = ",".join(f"{name} {base64.b64encode(value.encode()).decode()}"
                            for name, value in (("story", story_id), ("file", asset.file)))
        created = first.post("/v1/uploads", headers={
            **one.auth("producer"), "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata})
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        upload_id = location.rsplit("/", 1)[1]
        patch = {**one.auth("producer"), "Tus-Resumable": "1.0.0", "Content-Type": OFFSET_STREAM,
                 "Upload-Offset": "0"}

        with uploads_of(one.app.state.service).claim(upload_id):   # replica one is writing
            busy = second.patch(location, content=data, headers=patch)
            assert busy.status_code == 409 and busy.json()["code"] == "conflict", busy.text
        assert second.head(location, headers=patch).headers["upload-offset"] == "0", "nothing written"

        lapsing = redis_client.Redis.from_url(cluster.env["STORYMEDIA_BROKER_URL"])
        lapsing.set(f"storymedia:hold:upload:{upload_id}", b"a replica that died", px=1500)
        assert second.patch(location, content=data, headers=patch).status_code == 409
        time.sleep(1.6)
        done = second.patch(location, content=data, headers=patch)
        assert done.status_code == 204, done.text
        assert done.headers["upload-offset"] == str(len(data))
        assert lapsing.exists(f"storymedia:hold:upload:{upload_id}") == 0, "given back after the request"


def test_metrics_show_the_webhook_deliveries_the_workers_made(api: tuple[Service, TestClient],
                                                              cluster: Cluster) -> None:
    """In the cluster the workers deliver webhooks: their count is in Redis, and every replica's
    /metrics shows it, with the service's own replays added to the same count."""
    from api import metrics
    from workers import notify

    service, http = api
    svc = service.app.state.service
    found = metrics.metrics_of(svc)
    assert found is not None and found.shared_deliveries
    found.queues_ttl = 0
    broker = redis_client.Redis.from_url(cluster.env["STORYMEDIA_BROKER_URL"])
    notify.count_outcomes(broker, {"delivered": 3, "retry": 2})
    metrics.observe_delivery(svc, "failed")   # a replay made by this replica

    def shown() -> dict[str, float]:
        text = http.get("/metrics").text
        return {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("storymedia_webhook_deliveries_total{")}

    assert shown() == {"delivered": 3.0, "retry": 2.0, "failed": 1.0, "disabled": 0.0}
    assert 'storymedia_metrics_source_up{source="deliveries"} 1.0' in http.get("/metrics").text


def test_a_hold_is_renewed_while_a_long_request_runs_and_given_back(api: tuple[Service, TestClient],
                                                                  cluster: Cluster) -> None:
    """The hold is renewed from a thread of its own (redis-py's locks keep their token per thread
    unless told otherwise: the renewal failed, and a request longer than the hold's time lost it
    to another replica)."""
    backend = api[0].app.state.service.backend
    watcher = redis_client.Redis.from_url(cluster.env["STORYMEDIA_BROKER_URL"])
    key = "storymedia:hold:upload:renewed"
    with backend.hold("upload:renewed", ttl=0.6) as held:
        assert held
        for _ in range(5):   # 1.5 s: two and a half times the hold's time
            time.sleep(0.3)
            assert watcher.exists(key) == 1, "the hold lapsed while its request still ran"
        with backend.hold("upload:renewed", ttl=0.6) as again:
            assert not again, "another request got the same hold"
    assert watcher.exists(key) == 0, "given back after the request"
