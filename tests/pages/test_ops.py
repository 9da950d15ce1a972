"""The operator's console (/ops) in Debian's Chromium against the embedded service: a real render
failure (the service's presets are a copy whose station logo is damaged, so ffmpeg cannot read it)
shown with ffmpeg's own log tail, re-run from the page once the logo is restored (the manifest goes
to its next version); a real CMS receiver on 127.0.0.1 that answers 503, then 200 (the failed
delivery replayed from the page); cancel of a running clip; the console refreshing by itself; a
producer kept out of the page and of the operations API; CSRF on the page's calls.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import webhook_sender
from pipeline.notify import outbox
from pipeline.notify.targets import Policy
from tests import clips
from tests.api.harness import PRESETS, LiveServer, make_service
from tests.api.receiver import Receiver
from tests.pages.harness import Site, axe_violations, shoot

STORY = "chay-rung-thanh-hoa"
TITLE = "Cháy rừng phòng hộ ở Thanh Hóa"
HOSTILE = "<script>alert(1)</script> Sạt lở ở Mường Lát <b>khẩn</b>"
CLIP = "media/chay-rung.mp4"
FLOWER = "http://127.0.0.1:5555/"


@pytest.fixture
def ops_site(tmp_path: Path) -> Iterator[tuple[Site, Path]]:
    """The embedded service on its own copy of the presets (the test damages and restores its
    logo), Flower's address set; webhooks may go to a receiver on 127.0.0.1 (code only, as in
    tests/api/test_webhooks.py), retried 0.3 s apart. Yields the site and the copy's logo."""
    presets = tmp_path / "presets"
    shutil.copytree(PRESETS, presets)
    service = make_service(tmp_path / "data", env={"STORYMEDIA_PRESETS": str(presets),
                                                   "STORYMEDIA_FLOWER_URL": FLOWER})
    svc = service.app.state.service
    svc.extras[webhook_sender.POLICY] = Policy(hosts=("127.0.0.1",), allow_loopback=True)
    svc.extras[webhook_sender.SCHEDULE] = (0, 0.3, 0.3, 0.3)
    with LiveServer(service.app) as server:
        yield Site(service, server), presets / "station" / "logo.png"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


def until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds:.0f} s for {what}")


def submit_clip(site: Site, folder: Path, seconds: float, size: str, title: str = TITLE) -> str:
    """A one-clip story made over HTTP, the clip (made with ffmpeg) uploaded with tus in one
    request, submitted by the producer: the job id."""
    producer = {"Authorization": f"Bearer {site.token('producer')}"}
    story = {"story": {"id": STORY, "title": title, "byline": "Đình Hà", "published": "2023-09-12T21:15:00+07:00",
                       "presets": ["web"]},
             "assets": [{"file": CLIP, "caption": "Lửa cháy trên sườn đồi", "credit": "Đình Hà"}]}
    with httpx.Client(base_url=site.url, headers=producer, timeout=60) as http:
        made = http.post("/v1/stories", json=story)
        assert made.status_code in (200, 201), made.text
        clip = clips.phone_clip(folder / "chay-rung.mp4", seconds=seconds, size=size)
        data = clip.read_bytes()
        names = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                         for key, value in (("story", STORY), ("file", CLIP)))
        uploaded = http.post("/v1/uploads", content=data, headers={
            "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": names,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()})
        assert uploaded.status_code == 201, uploaded.text
        submitted = http.post(f"/v1/stories/{STORY}/jobs")
        assert submitted.status_code == 202, submitted.text
        return str(submitted.json()["id"])


def job_status(site: Site, job: str) -> dict[str, Any]:
    answer = httpx.get(f"{site.url}/v1/jobs/{job}", headers={"Authorization": f"Bearer {site.token('operator')}"})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def confirm(page: Any, expected: str) -> None:
    """The console's confirmation dialog says ``expected``; press its OK button."""
    dialog = page.get_by_role("dialog")
    assert expected in dialog.inner_text()
    dialog.get_by_role("button", name="Đồng ý").click()
    assert not dialog.is_visible()


def test_a_failed_render_shows_ffmpegs_log_tail_and_a_rerun_after_the_fix_makes_the_next_manifest(
        ops_site: tuple[Site, Path], receiver: Receiver, page: Any, tmp_path: Path) -> None:
    site, logo = ops_site
    private = site.service.app.state.service.backend.private
    outbox.create_endpoint(private, receiver.url, [outbox.JOB_FAILED], "CMS thời sự")
    receiver.answer = lambda n: (503, {})          # the CMS is down
    site.sign_in(page, "operator", "/ops")
    assert page.get_by_role("heading", level=1).inner_text() == "Bảng điều khiển vận hành"
    assert page.get_by_text("Không có việc nào lỗi.").is_visible()
    assert page.get_by_role("link", name="Mở Flower (chi tiết từng tác vụ)").get_attribute("href") == FLOWER
    page.evaluate("window.notReloaded = true")

    good = logo.read_bytes()
    logo.write_bytes(good[:300])                  # the station logo is damaged: the clip's render fails
    job = submit_clip(site, tmp_path, seconds=2, size="640x360")
    card = page.locator(f"[data-panel=trouble] #job-{job}")
    card.wait_for(timeout=60_000)
    assert page.evaluate("window.notReloaded") is True, "the failure appeared without a reload"
    assert job_status(site, job)["state"] == "failed"
    assert "thất bại" in card.locator(".state").first.inner_text()
    assert card.get_by_role("link", name=TITLE).is_visible()
    page.locator("#ops-announce").get_by_text(f"Có việc lỗi mới: {TITLE}").wait_for()
    failure = card.locator(f"#failure-{job}-1")
    assert "Bước: dựng bản xuất" in failure.inner_text()
    shown_log = failure.locator("pre.ops-log").inner_text()
    api_log = job_status(site, job)["assets"][0]["diagnostics"]["log_tail"]
    assert shown_log.strip() == api_log.strip() != ""
    as_producer = httpx.get(f"{site.url}/v1/jobs/{job}", headers={"Authorization": f"Bearer {site.token('producer')}"})
    assert as_producer.json()["assets"][0]["diagnostics"] is None, "the log and command are for operators only"
    assert re.search(r"\[png @ 0x[0-9a-f]+\]", shown_log), f"ffmpeg's own words about the PNG: {shown_log!r}"
    webhook_row = page.locator("[data-panel=webhooks] tbody tr").first
    until(lambda: "gửi thất bại" in webhook_row.inner_text(), 30, "the job.failed delivery to fail")
    assert "HTTP 503" in webhook_row.inner_text() and "job.failed" in webhook_row.inner_text()
    shoot(page, tmp_path, "ops")
    failure.get_by_text("Lệnh ffmpeg đã chạy").click()
    command = failure.locator("details pre").inner_text()
    assert "ffmpeg" in command and "station/logo.png" in command

    assert axe_violations(page) == []

    # Without the CSRF token the re-run is refused, and nothing runs again.
    refused = page.evaluate("""async (job) => {
        const answer = await fetch(`/v1/jobs/${job}/assets/1/rerun`, {method: 'POST'});
        return [answer.status, (await answer.json()).code];
    }""", job)
    assert refused == [403, "forbidden"]
    assert job_status(site, job)["assets"][0]["attempts"] == 1

    logo.write_bytes(good)                        # the cause fixed
    failure.get_by_role("button", name="Chạy lại tệp này").click()
    confirm(page, CLIP)
    result = page.locator("#ops-result")
    result.get_by_text(f"Đã gửi chạy lại tệp {CLIP}.").wait_for()
    finished = page.locator(f"[data-panel=recent] #job-{job}")
    finished.wait_for(timeout=60_000)
    assert "hoàn tất" in finished.inner_text() and "v2" in finished.inner_text()
    state = job_status(site, job)
    assert (state["state"], state["manifest_version"], state["assets"][0]["attempts"]) == ("complete", 2, 2)
    manifest = httpx.get(f"{site.url}/v1/stories/{STORY}/manifest",
                         headers={"Authorization": f"Bearer {site.token('editor')}"}).json()
    assert manifest["version"] == 2 and manifest["assets"][0]["renditions"]
    assert page.get_by_text("Không có việc nào lỗi.").is_visible()

    receiver.answer = lambda n: (200, {})         # the CMS is back: replay the failed delivery
    webhook_row.get_by_role("button", name="Gửi lại").click()
    confirm(page, "job.failed")
    result.get_by_text("Đã gửi lại thành công.").wait_for()
    until(lambda: "đã gửi" in webhook_row.inner_text(), 15, "the delivery to show as delivered")
    assert receiver.calls[-1][0]["webhook-id"] == receiver.calls[0][0]["webhook-id"], "the same message again"
    assert page.errors == []


def test_cancel_of_a_running_clip_from_the_page(ops_site: tuple[Site, Path], page: Any, tmp_path: Path) -> None:
    site, _ = ops_site
    site.sign_in(page, "operator", "/ops")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    job = submit_clip(site, tmp_path, seconds=20, size="1280x720", title=HOSTILE)
    row = page.locator(f"[data-panel=active] #job-{job}")
    until(lambda: row.count() and "đang dựng" in row.inner_text(), 60, "the clip to render, on the page")
    assert row.get_by_role("link", name="Sạt lở ở Mường Lát").inner_text() == HOSTILE, "the title as text"
    row.get_by_role("button", name="Huỷ việc").click()
    confirm(page, f"Huỷ việc đang chạy của bài “{HOSTILE}”?")
    page.locator("#ops-result").get_by_text("Đang huỷ việc của bài").wait_for()
    until(lambda: job_status(site, job)["final"], 60, "the job to end")
    assert job_status(site, job)["state"] == "canceled"
    finished = page.locator(f"[data-panel=recent] #job-{job}")
    finished.wait_for(timeout=20_000)
    assert "đã huỷ" in finished.inner_text()
    assert dialogs == [] and page.errors == []


def test_a_producer_cannot_open_the_console_nor_call_the_operations_api(
        ops_site: tuple[Site, Path], page: Any, browser: Any) -> None:
    site, _ = ops_site
    site.sign_in(page, "producer", "/stories")
    answer = page.goto(f"{site.url}/ops")
    assert answer.status == 403
    assert page.get_by_role("alert").inner_text() == "Bạn không có quyền xem trang này."
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    statuses = page.evaluate("""async (token) => {
        const job = '20260101-000000-abcdef';
        const calls = [['GET', '/v1/queues'], ['GET', '/v1/workers'], ['GET', '/v1/webhooks'],
                       ['POST', `/v1/jobs/${job}/assets/1/rerun`], ['POST', `/v1/jobs/${job}/cancel`]];
        const found = [];
        for (const [method, url] of calls) {
            const answer = await fetch(url, {method, headers: {'X-CSRF-Token': token}});
            found.push([url, answer.status, (await answer.json()).code]);
        }
        return found;
    }""", token)
    assert [(status, code) for _, status, code in statuses] == [(403, "forbidden")] * 5, statuses

    # The operator's empty console, in English and on a phone, passes axe too.
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        phone = context.new_page()
        site.sign_in(phone, "operator", "/ops")
        phone.get_by_role("link", name="English").click()
        phone.wait_for_url(f"{site.url}/ops")
        assert phone.get_by_role("heading", level=1).inner_text() == "Operations console"
        assert phone.get_by_text("No job in trouble.").is_visible()
        assert axe_violations(phone) == []
    finally:
        context.close()
    assert page.errors == []


def test_the_console_refreshes_itself_only_while_it_is_seen(ops_site: tuple[Site, Path], page: Any) -> None:
    site, _ = ops_site
    site.sign_in(page, "operator", "/ops")
    asked: list[float] = []
    page.on("request", lambda request: request.url == f"{site.url}/ops" and asked.append(time.monotonic()))
    page.wait_for_timeout(5_600)
    assert len(asked) == 1, "one refresh every 5 s while the tab is seen"
    shown = page.locator("#ops-refreshed").get_attribute("datetime")
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    asked.clear()
    page.wait_for_timeout(11_000)
    assert asked == [], "nothing asked while the tab is hidden"
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_function("(before) => document.getElementById('ops-refreshed').getAttribute('datetime') !== before",
                           arg=shown, timeout=5_000)
    assert len(asked) == 1, "seen again: refreshed at once"
    assert page.locator("#ops-announce").inner_text() == "", "a refresh alone says nothing to screen readers"
    assert page.errors == []
