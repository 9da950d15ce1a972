"""/metrics: the Prometheus text format with the names and labels the issue asks for, buckets up to
an hour, no story, job or desk in any label; a real job in the embedded service moves the rendition
and render-time figures once, and a restarted service does not count it again."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api import records
from api.metrics import Metrics, metrics_of, observe_delivery, observe_upload
from pipeline.model.keys import raw_key
from tests.api.harness import Service, make_service
from tests.fixtures import photo

STORY = "tp-thanh-hoa-do-thi-van-minh"
PHOTO = "anh/hoi-nghi.jpg"
BROKEN = "anh/hong.jpg"

FAMILIES = {
    # name (as the parser gives it) -> (type, label names)
    "storymedia_stories": ("gauge", {"state"}),
    "storymedia_renditions": ("counter", {"preset", "outcome"}),
    "storymedia_render_seconds": ("histogram", {"kind"}),
    "storymedia_upload_seconds": ("histogram", set()),
    "storymedia_upload_bytes": ("counter", set()),
    "storymedia_queue_depth": ("gauge", {"queue", "lane"}),
    "storymedia_queue_oldest_seconds": ("gauge", {"queue", "lane"}),
    "storymedia_upload_to_manifest_seconds": ("histogram", set()),
    "storymedia_webhook_deliveries": ("counter", {"outcome"}),
    "storymedia_jobs_finished": ("counter", {"state"}),
    "storymedia_http_requests": ("counter", {"method", "route", "status"}),
    "storymedia_metrics_source_up": ("gauge", {"source"}),
}


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics (fetched without a token): (name, sorted labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[tuple[Service, TestClient, Metrics]]:
    """The embedded service with its job observer looking every 0.2 s, stories counted on every scrape."""
    svc = make_service(tmp_path / "data")
    found = metrics_of(svc.app.state.service)
    assert found is not None
    found.every = 0.2
    found.states_ttl = 0.0
    with TestClient(svc.app) as client:
        yield svc, client, found


def test_the_exposition_parses_with_the_names_labels_and_buckets_asked_for(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name, (kind, labels) in FAMILIES.items():
        assert name in families, name
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
    for histogram in ("storymedia_render_seconds", "storymedia_upload_seconds"):
        bounds = [float(s.labels["le"]) for s in families[histogram].samples if s.name.endswith("_bucket")]
        assert 3600.0 in bounds and float("inf") in bounds and 0.5 in bounds
    assert not [s for f in families.values() for s in f.samples if s.name.endswith("_created")]
    samples = scrape(client)
    assert value(samples, "storymedia_queue_depth", queue="embedded", lane="normal") == 0
    assert value(samples, "storymedia_metrics_source_up", source="stories") == 1
    assert value(samples, "storymedia_renditions_total", preset="web", outcome="rendered") == 0
    assert value(samples, "storymedia_render_seconds_count", kind="video") == 0


def test_uploads_and_deliveries_are_counted_when_told(client: TestClient, service: Service) -> None:
    svc = service.app.state.service
    observe_upload(svc, 3.5, 1_000_000)
    observe_upload(svc, 1800.0, 4_000_000_000)
    observe_delivery(svc, "delivered")
    observe_delivery(svc, "retry")
    observe_delivery(svc, "a-story-id-by-mistake")
    samples = scrape(client)
    assert value(samples, "storymedia_upload_bytes_total") == 4_001_000_000
    assert value(samples, "storymedia_upload_seconds_count") == 2
    assert value(samples, "storymedia_upload_seconds_bucket", le="5.0") == 1
    assert value(samples, "storymedia_upload_seconds_bucket", le="1800.0") == 2
    assert value(samples, "storymedia_webhook_deliveries_total", outcome="delivered") == 1
    assert value(samples, "storymedia_webhook_deliveries_total", outcome="retry") == 1
    assert value(samples, "storymedia_webhook_deliveries_total", outcome="other") == 1


def test_requests_are_counted_by_route_template_never_by_path(client: TestClient, service: Service) -> None:
    job = "20261128-021800-3f9a1c"
    assert client.get(f"/v1/jobs/{job}", headers=service.auth("operator")).status_code == 404
    assert client.get(f"/v1/stories/{STORY}").status_code == 401
    assert client.get(f"/no/such/{STORY}").status_code == 404
    samples = scrape(client)
    assert value(samples, "storymedia_http_requests_total", method="GET", route="/v1/jobs/{job_id}",
                 status="4xx") == 1
    assert value(samples, "storymedia_http_requests_total", method="GET", route="/v1/stories/{story_id}",
                 status="4xx") == 1
    assert value(samples, "storymedia_http_requests_total", method="GET", route="unmatched",
                 status="4xx") == 1
    assert not [labels for _, labels in samples if any(job in v or STORY in v for _, v in labels)]


def test_a_damaged_catalog_makes_a_source_down_not_a_failed_scrape(client: TestClient,
                                                                    service: Service) -> None:
    private = service.app.state.service.backend.private
    private.replace(f"catalog/{STORY}.json", b"{not json", content_type="application/json")
    samples = scrape(client)
    assert value(samples, "storymedia_metrics_source_up", source="stories") == 0
    assert value(samples, "storymedia_metrics_source_up", source="queues") == 1


def _attach(svc: Service, name: str, data: bytes, folder: Path) -> None:
    """The file as a finished upload leaves it: raw/<sha> in the private store, attached by name."""
    private = svc.app.state.service.backend.private
    path = folder / hashlib.sha256(name.encode()).hexdigest()
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    private.put_file(raw_key(sha), path, sha256=sha, content_type="application/octet-stream")
    records.attach(private, STORY, name, sha, len(data))


def _jpeg() -> bytes:
    out = io.BytesIO()
    photo((640, 480), seed=4).save(out, "JPEG", quality=85)
    return out.getvalue()


def _run_job(client: TestClient, svc: Service) -> dict[str, Any]:
    submitted = client.post(f"/v1/stories/{STORY}/jobs", headers=svc.auth("producer"))
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}", headers=svc.auth("producer"))
        if status.json()["final"]:
            found: dict[str, Any] = status.json()
            return found
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


def _wait_for(client: TestClient, name: str, at_least: float, **labels: str) -> dict[Any, float]:
    deadline = time.monotonic() + 20
    while True:
        samples = scrape(client)
        if value(samples, name, **labels) >= at_least or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_a_real_job_moves_the_rendition_and_render_figures_once(
        quick: tuple[Service, TestClient, Metrics], tmp_path: Path) -> None:
    svc, client, _ = quick
    story = {"story": {"id": STORY, "title": "Thanh Hóa xây dựng đô thị văn minh", "byline": "Đình Hà",
                       "published": "2023-09-12T21:15:00+07:00", "presets": ["web"]},
             "assets": [{"file": PHOTO, "caption": "Hội nghị cán bộ", "credit": "Đình Hà"},
                        {"file": BROKEN, "caption": "Ảnh hỏng", "credit": "Đức Anh"}]}
    assert client.post("/v1/stories", json=story, headers=svc.auth("producer")).status_code == 201
    before = scrape(client)
    assert value(before, "storymedia_stories", state="new") == 1
    _attach(svc, PHOTO, _jpeg(), tmp_path)
    _attach(svc, BROKEN, b"this is not a picture\n" * 50, tmp_path)

    first = _run_job(client, svc)
    assert first["state"] == "partial", first
    made = first["assets"][0]["renditions"]
    assert made == 4   # 640 and 320 px wide, JPEG and WebP
    samples = _wait_for(client, "storymedia_renditions_total", made, preset="web", outcome="rendered")
    assert value(samples, "storymedia_renditions_total", preset="web", outcome="rendered") == made
    assert value(samples, "storymedia_renditions_total", preset="web", outcome="failed") == 1
    assert value(samples, "storymedia_renditions_total", preset="web", outcome="reused") == 0
    assert value(samples, "storymedia_render_seconds_count", kind="image") == 1
    assert value(samples, "storymedia_render_seconds_sum", kind="image") > 0
    assert value(samples, "storymedia_jobs_finished_total", state="partial") == 1
    assert value(samples, "storymedia_upload_to_manifest_seconds_count") == 1
    assert value(samples, "storymedia_stories", state="partial") == 1
    assert value(samples, "storymedia_stories", state="new") == 0
    text = client.get("/metrics").text
    for private in (STORY, first["id"], "thoi-su", PHOTO, "hoi-nghi"):
        assert private not in text

    time.sleep(1.0)   # more rounds of the observer: nothing is counted twice
    again = scrape(client)
    assert value(again, "storymedia_renditions_total", preset="web", outcome="rendered") == made
    assert value(again, "storymedia_render_seconds_count", kind="image") == 1

    second = _run_job(client, svc)   # the same story again: every rendition is reused
    assert second["id"] != first["id"]
    samples = _wait_for(client, "storymedia_jobs_finished_total", 2, state="partial")
    assert value(samples, "storymedia_renditions_total", preset="web", outcome="reused") == made
    assert value(samples, "storymedia_renditions_total", preset="web", outcome="rendered") == made
    assert value(samples, "storymedia_renditions_total", preset="web", outcome="failed") == 2
    assert value(samples, "storymedia_render_seconds_count", kind="image") == 1

    # a restarted service (same data, fresh registry) does not count these jobs again
    restarted = make_service(svc.config.data)
    found = metrics_of(restarted.app.state.service)
    assert found is not None
    found.states_ttl = 0.0
    found.tick()
    with TestClient(restarted.app) as other:
        found.tick()
        samples = scrape(other)
    assert value(samples, "storymedia_renditions_total", preset="web", outcome="rendered") == 0
    assert value(samples, "storymedia_jobs_finished_total", state="partial") == 0
    assert value(samples, "storymedia_stories", state="partial") == 1
