"""The producer's page (``/``) in a real Chromium against the embedded service: a story made in the
form, its files uploaded with tus (one upload cut off and resumed from the service's offset),
submitted and followed live to "xong"; refusals in Vietnamese, a replaced file and an edited
caption redo only their asset; another desk's producer is refused; axe-core finds nothing critical
or serious; a phone's viewport does not scroll sideways."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from playwright.sync_api import expect

from api.pages.i18n import REASONS
from pipeline.run import jobs
from tests.api.test_flow import upload
from tests.clips import phone_clip
from tests.fixtures import photo, truncated_jpeg
from tests.pages.harness import Site, axe_violations, shoot

RENDER_TIMEOUT = 240_000
"""Milliseconds a job may take from submit to its final state (two shared, busy cores)."""

CHUNK = 64 << 10
"""The page's tus chunk for these tests: the clip goes in several PATCHes, so one can be cut."""

CAPTIONS = {
    "anh-05.jpg": "Bà Lê Thị Minh Tâm, Chủ tịch UBND phường Phú Sơn, thành phố Thanh Hóa",
    "anh-08.jpg": "Ông Nguyễn Đình Thênh, Bí thư Đảng ủy phường Tân Sơn, thành phố Thanh Hóa",
    "clip-thanh-hoa.mp4": "Ông Lê Anh Tuấn, Phó Bí thư Thường trực Thành ủy thành phố Thanh Hóa",
}
HOSTILE = '<img src=x onerror="alert(2)"> Bà Lê Thị Minh Tâm </textarea><script>alert(3)</script>'
SRT = """1
00:00:00,200 --> 00:00:01,400
Thành phố Thanh Hóa tăng cường kỷ cương

2
00:00:01,500 --> 00:00:02,400
kỷ luật công vụ
"""


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two photos, a 2.5 s clip with its SRT, a truncated photo and a text file named .jpg."""
    folder = tmp_path_factory.mktemp("media")
    photo((640, 427), seed=5).save(folder / "anh-05.jpg", quality=88)
    photo((600, 400), seed=8).save(folder / "anh-08.jpg", quality=88)
    photo((640, 480), seed=3).save(folder / "anh-tot.jpg", quality=88)
    phone_clip(folder / "clip-thanh-hoa.mp4", seconds=2.5, size="640x360", rate="25")
    (folder / "clip-thanh-hoa.vi.srt").write_text(SRT, encoding="utf-8")
    photo((800, 600), seed=9).save(folder / "full.jpg", quality=90)
    truncated_jpeg(folder / "anh-hong.jpg")
    (folder / "ghi-chu.jpg").write_text("Đây là ghi chú, không phải ảnh.\n", encoding="utf-8")
    return folder


def card(page: Any, name: str) -> Any:
    """The file's card on the page."""
    return page.locator("li.asset").filter(has=page.locator("h3", has_text=re.compile(f"^{re.escape(name)}$")))


def fill_story(page: Any, title: str, presets: tuple[str, ...] = ("web",)) -> None:
    page.fill("#f-title", title)
    page.fill("#f-byline", "Đình Hà – Đức Anh")
    page.fill("#f-published", "2023-09-12T21:15")
    page.fill("#f-source", "Phòng chống tham nhũng")
    page.fill("#f-copyright", "Thanh Hoa Radio and Television")
    for box in page.locator("input[name=story-preset]").all():
        box.set_checked(box.get_attribute("value") in presets)


def exif_tags(paths: list[Path]) -> list[dict[str, Any]]:
    found = subprocess.run(["exiftool", "-j", "-G1", "-a", *map(str, paths)], capture_output=True,
                           text=True, check=True, timeout=60)
    tags: list[dict[str, Any]] = json.loads(found.stdout)
    return tags


def manifest(site: Site, story_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{site.url}/v1/stories/{story_id}/manifest", headers=site.service.auth("producer"))
    assert answer.status_code == 200, answer.text
    loaded: dict[str, Any] = answer.json()
    return loaded


def latest_job(site: Site, story_id: str) -> str:
    answer = httpx.get(f"{site.url}/v1/stories/{story_id}", headers=site.service.auth("producer"))
    job: str = answer.json()["latest_job"]
    return job


def results_by_file(site: Site, story_id: str, job_id: str) -> dict[str, jobs.AssetResult]:
    """The job's asset results (rendered and reused counts) by file name, from the store."""
    private = site.service.app.state.service.backend.private
    job = jobs.read_job(private, story_id, job_id)
    results = jobs.read_asset_results(private, story_id, job_id)
    return {item.file: results[item.order] for item in job.assets}


def no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


class ClipUpload:
    """Watches one file's tus upload through a Playwright route: records each PATCH's offset and
    holds the first PATCH that starts past 0 until the test cuts it off (a dropped connection)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url: str | None = None
        self.patches: list[int] = []
        self.cut_at: int | None = None
        self.held: list[Any] = []
        self.heads_after_cut = 0

    def handle(self, route: Any, request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/v1/uploads"):
            answer = route.fetch()
            if self.name in metadata_files(request.headers.get("upload-metadata", "")):
                self.url = urljoin(request.url, answer.headers["location"])
            route.fulfill(response=answer)
            return
        if self.url is not None and request.url == self.url:
            if request.method == "PATCH":
                offset = int(request.headers["upload-offset"])
                self.patches.append(offset)
                if offset > 0 and self.cut_at is None:
                    self.cut_at = offset
                    self.held.append(route)
                    return
            elif request.method == "HEAD" and self.cut_at is not None:
                self.heads_after_cut += 1
        route.continue_()


def metadata_files(header: str) -> list[str]:
    found = []
    for pair in header.split(","):
        key, _, value = pair.strip().partition(" ")
        if key == "file":
            found.append(base64.b64decode(value).decode("utf-8"))
    return found


def wait_until(page: Any, condition: Any, timeout: float = 30.0) -> None:
    """Let the page run (its routes included) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the page did not get there in time"
        page.wait_for_timeout(50)


def test_a_producer_makes_a_story_uploads_through_a_dropped_connection_and_sees_every_file_done(
        site: Site, page: Any, media: Path, tmp_path: Path) -> None:
    site.service.app.state.service.extras["upload_chunk_bytes"] = CHUNK
    watch = ClipUpload("clip-thanh-hoa.mp4")
    page.route(re.compile(r".*/v1/uploads(/[^/?]*)?$"), watch.handle)
    page.goto(f"{site.url}/")
    assert "/signin" in page.url, "the page asks to sign in first"
    site.sign_in(page, "producer", "/")
    expect(page.locator("#story-form")).to_have_attribute("data-ready", "true")
    assert axe_violations(page) == []

    fill_story(page, "Thành phố Thanh Hóa tăng cường kỷ cương, kỷ luật công vụ")
    assert page.input_value("#f-id") == "thanh-pho-thanh-hoa-tang-cuong-ky-cuong-ky-luat-cong-vu"
    page.fill("#f-id", "tp-thanh-hoa-ky-cuong-2023-09-12")   # editable
    page.fill("#f-title", "Thành phố Thanh Hóa tăng cường kỷ cương, kỷ luật công vụ.")
    assert page.input_value("#f-id") == "tp-thanh-hoa-ky-cuong-2023-09-12", "an edited id stays"

    page.set_input_files("#f-files", [str(media / name) for name in (
        "anh-05.jpg", "anh-08.jpg", "clip-thanh-hoa.mp4", "clip-thanh-hoa.vi.srt")])
    expect(page.locator("li.asset")).to_have_count(3)
    expect(page.locator("#subtitle-files li")).to_have_count(1)
    for name, caption in CAPTIONS.items():
        card(page, name).locator("[data-field=caption]").fill(caption)
        card(page, name).locator("[data-field=credit]").fill("Đức Anh")
    photo_card = card(page, "anh-05.jpg")
    expect(photo_card.locator("[data-role=image]")).to_be_visible()
    box = photo_card.locator("[data-role=image]").bounding_box()
    photo_card.locator("[data-role=image]").click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.35})
    assert abs(float(photo_card.locator("[data-field=focus-y]").input_value()) - 0.35) <= 0.02
    expect(photo_card.locator("[data-role=marker]")).to_be_visible()
    card(page, "anh-08.jpg").locator("[data-field=focus-x]").fill("0.3")    # the keyboard's way
    clip = card(page, "clip-thanh-hoa.mp4")
    clip.locator("[data-field=lt-name]").fill("Ông Lê Anh Tuấn")
    clip.locator("[data-field=lt-title]").fill("Phó Bí thư Thường trực Thành ủy")
    clip.locator("[data-field=lt-start]").fill("0.5")
    clip.locator("[data-field=lt-end]").fill("2")
    clip.locator("[data-field=subtitles]").select_option("clip-thanh-hoa.vi.srt")

    submits: list[dict[str, str]] = []
    page.on("request", lambda request: request.method == "POST" and request.url.endswith("/jobs")
            and submits.append(request.headers))
    page.click("#submit")
    wait_until(page, lambda: bool(watch.held))             # the clip's second PATCH is on its way
    expect(clip.locator("[data-role=upload-state]")).to_have_text("đang tải lên")
    assert axe_violations(page) == [], "uploading"
    watch.held.pop().abort("connectionreset")              # ... and the connection drops
    expect(clip.locator("[data-role=upload-state]")).to_have_text("đã tải lên", timeout=60_000)
    assert watch.cut_at is not None and watch.cut_at > 0
    after = watch.patches[watch.patches.index(watch.cut_at) + 1:]
    assert after and after[0] == watch.cut_at, f"resumed from the service's offset: {watch.patches}"
    assert watch.heads_after_cut >= 1, "the offset was asked for (HEAD) before going on"

    for name in CAPTIONS:
        expect(card(page, name).locator("[data-role=job-state]")).to_have_text("xong", timeout=RENDER_TIMEOUT)
    expect(page.locator("#job-state")).to_have_text("hoàn tất")
    expect(page.locator("#job-version")).to_have_text("Phiên bản 1")
    expect(clip.locator("[data-role=image]")).to_be_visible()   # the clip's poster, from the manifest
    assert "xong" in page.locator("#announce").inner_text(), "the live region says so"
    assert page.url.endswith("/?story=tp-thanh-hoa-ky-cuong-2023-09-12")
    assert len(submits) == 1 and submits[0].get("idempotency-key") and submits[0].get("x-csrf-token")

    # The captions on the page are those inside the photos' renditions (read back with exiftool);
    # a clip's MP4s carry no caption in their metadata: its subtitles travel as WebVTT.
    shown = {name: card(page, name).locator("[data-field=caption]").input_value() for name in CAPTIONS}
    assert shown == CAPTIONS
    document = manifest(site, "tp-thanh-hoa-ky-cuong-2023-09-12")
    assert {a["filename"]: a["caption"] for a in document["assets"]} == shown
    public = site.service.config.public_dir
    photos = [(public / r["key"], a["filename"], r["mime"]) for a in document["assets"] if a["kind"] == "image"
              for r in a["renditions"]]
    assert len(photos) >= 4
    for tags, (_path, name, mime) in zip(exif_tags([p for p, _, _ in photos]), photos, strict=True):
        assert tags["XMP-dc:Description"] == shown[name]
        if mime == "image/jpeg":
            assert tags["IPTC:Caption-Abstract"] == shown[name]
    (subtitles,) = [r for a in document["assets"] if a["kind"] == "video" for r in a["renditions"]
                    if r["name"] == "captions"]
    assert "kỷ luật công vụ" in (public / subtitles["key"]).read_text("utf-8")
    assert document["assets"][0]["focus"][1] == pytest.approx(0.35, abs=0.02)
    assert document["assets"][1]["focus"] == [0.3, 0.5]

    assert axe_violations(page) == [], "done"
    shoot(page, tmp_path, "producer")
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_sideways_scroll(page)
    assert axe_violations(page) == [], "phone"
    assert page.errors == []


def test_refusals_in_vietnamese_and_a_replaced_photo_is_the_only_asset_redone(
        site: Site, page: Any, media: Path, tmp_path: Path) -> None:
    site.sign_in(page, "producer", "/")
    fill_story(page, "Ảnh hỏng và tệp văn bản")
    page.set_input_files("#f-files", [str(media / n) for n in ("anh-05.jpg", "anh-hong.jpg", "ghi-chu.jpg")])
    for name in ("anh-05.jpg", "anh-hong.jpg", "ghi-chu.jpg"):
        card(page, name).locator("[data-field=caption]").fill(f"Chú thích của {name}")
    page.click("#submit")
    expect(page.locator("#job-state")).to_have_text("xong một phần", timeout=RENDER_TIMEOUT)
    truncated, not_media = card(page, "anh-hong.jpg"), card(page, "ghi-chu.jpg")
    expect(truncated.locator("[data-role=job-state]")).to_have_text("bị từ chối")
    expect(truncated.locator("[data-role=reason]")).to_have_text(REASONS["truncated"][0])
    expect(not_media.locator("[data-role=reason]")).to_have_text(REASONS["not-media"][0])
    expect(card(page, "anh-05.jpg").locator("[data-role=job-state]")).to_have_text("xong")
    assert "Traceback" not in page.content()
    assert axe_violations(page) == []
    shoot(page, tmp_path, "producer-refused")
    story_id = "anh-hong-va-tep-van-ban"
    first_job = latest_job(site, story_id)

    truncated.locator("[data-role=replace-input]").set_input_files(str(media / "anh-tot.jpg"))
    expect(truncated.locator("[data-role=upload-state]")).to_have_text("đã tải lên", timeout=60_000)
    not_media.locator("[data-role=remove]").click()
    expect(page.locator("li.asset")).to_have_count(2)
    page.click("#submit")
    expect(page.locator("#job-state")).to_have_text("hoàn tất", timeout=RENDER_TIMEOUT)
    expect(truncated.locator("[data-role=job-state]")).to_have_text("xong")
    second_job = latest_job(site, story_id)
    assert second_job != first_job
    results = results_by_file(site, story_id, second_job)
    assert results["anh-05.jpg"].rendered == 0 and results["anh-05.jpg"].reused > 0, "reused"
    assert results["anh-hong.jpg"].rendered > 0, "the replaced photo is rendered"
    assert page.errors == []


def make_finished_story(site: Site, media: Path) -> str:
    """A story of two photos made, uploaded and finished through the API (as a CMS would)."""
    story_id = "tin-anh-chu-thich"
    document = {"story": {"id": story_id, "title": "Chú thích được sửa sau khi đăng",
                          "byline": "Đình Hà", "published": "2023-09-12T21:15:00+07:00", "presets": ["web"]},
                "assets": [{"file": "anh-05.jpg", "caption": CAPTIONS["anh-05.jpg"], "credit": "Đình Hà"},
                           {"file": "anh-08.jpg", "caption": CAPTIONS["anh-08.jpg"], "credit": "Đức Anh"}]}
    headers = site.service.auth("producer")
    assert httpx.post(f"{site.url}/v1/stories", json=document, headers=headers).status_code == 201
    for name in ("anh-05.jpg", "anh-08.jpg"):
        upload(site.url, headers, story_id, name, media / name)
    job = httpx.post(f"{site.url}/v1/stories/{story_id}/jobs", headers=headers).json()["id"]
    deadline = time.monotonic() + RENDER_TIMEOUT / 1000
    while httpx.get(f"{site.url}/v1/jobs/{job}", headers=headers).json()["state"] != "complete":
        assert time.monotonic() < deadline, "the story did not finish"
        time.sleep(0.5)
    return story_id


def test_editing_a_caption_of_a_finished_story_redoes_one_asset_and_the_manifest_goes_up_one(
        site: Site, page: Any, media: Path) -> None:
    story_id = make_finished_story(site, media)
    before = manifest(site, story_id)["version"]
    site.sign_in(page, "producer", f"/?story={story_id}")
    expect(page.locator("#f-title")).to_have_value("Chú thích được sửa sau khi đăng")
    expect(page.locator("#f-id")).to_have_js_property("readOnly", True)
    expect(page.locator("#f-published")).to_have_value("2023-09-12T21:15")
    expect(page.locator("#f-zone")).to_have_value("Asia/Ho_Chi_Minh")
    edited = card(page, "anh-08.jpg")
    expect(edited.locator("[data-role=job-state]")).to_have_text("xong")
    expect(edited.locator("[data-role=upload-state]")).to_have_text("đã tải lên")
    new_caption = "Ông Nguyễn Đình Thênh, Bí thư Đảng ủy phường Tân Sơn (ảnh chụp ngày 12/9)"
    edited.locator("[data-field=caption]").fill(new_caption)
    page.click("#submit")
    expect(page.locator("#job-version")).to_have_text(f"Phiên bản {before + 1}", timeout=RENDER_TIMEOUT)
    expect(page.locator("#job-state")).to_have_text("hoàn tất")
    after = manifest(site, story_id)
    assert after["version"] == before + 1
    assert [a["caption"] for a in after["assets"]] == [CAPTIONS["anh-05.jpg"], new_caption]
    results = results_by_file(site, story_id, latest_job(site, story_id))
    assert results["anh-05.jpg"].rendered == 0 and results["anh-05.jpg"].reused > 0
    assert results["anh-08.jpg"].rendered > 0
    assert page.errors == []


def test_another_desk_is_refused_fields_show_their_errors_and_a_phone_does_not_scroll_sideways(
        site: Site, page: Any, browser: Any, media: Path) -> None:
    document = {"story": {"id": "tin-thoi-su", "title": "Tin của ban thời sự <script>alert(1)</script>",
                          "published": "2023-09-12T21:15:00+07:00", "presets": ["web"]},
                "assets": [{"file": "anh-05.jpg", "caption": HOSTILE}]}
    made = httpx.post(f"{site.url}/v1/stories", json=document, headers=site.service.auth("producer"))
    assert made.status_code == 201
    site.sign_in(page, "producer-kinh-te", "/")
    expect(page.locator("#desk-list li")).to_have_count(0)   # not on their desk's list
    answer = page.goto(f"{site.url}/?story=tin-thoi-su")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_have_text("Bạn không có quyền xem trang này.")
    assert "Tin của ban thời sự" not in page.content()

    page.goto(f"{site.url}/")
    fill_story(page, "Tin kinh tế")
    page.set_input_files("#f-files", [str(media / "clip-thanh-hoa.mp4")])
    clip = card(page, "clip-thanh-hoa.mp4")
    clip.locator("[data-field=lt-name]").fill("Bà Lê Thị Minh Tâm")
    clip.locator("[data-field=lt-start]").fill("2")
    clip.locator("[data-field=lt-end]").fill("1")
    page.click("#save")
    error = clip.locator("[data-error=lower_third]")
    expect(error).to_have_text("Thời điểm kết thúc phải sau thời điểm bắt đầu.")
    expect(page.locator("#form-alert")).to_contain_text("hãy sửa các ô được đánh dấu")
    page.fill("#f-title", "")
    page.click("#save")
    expect(page.locator("#err-story-title")).to_have_text("Cần điền ô này.")
    expect(page.locator("#f-title")).to_have_attribute("aria-invalid", "true")
    assert axe_violations(page) == [], "form with errors"

    # A subtitle file over the service's limit (2 MiB): the upload's 413 in words.
    big = media.parent / "qua-lon.vi.srt"
    cue = "{n}\n00:00:00,000 --> 00:00:01,000\nMột dòng phụ đề khá dài cho bài kiểm tra giới hạn\n\n"
    big.write_text("".join(cue.format(n=n) for n in range(1, 30_000)), encoding="utf-8")
    assert big.stat().st_size > 2 << 20
    page.fill("#f-title", "Tin kinh tế")
    clip.locator("[data-field=lt-end]").fill("2.5")
    page.set_input_files("#f-files", [str(big)])
    clip.locator("[data-field=subtitles]").select_option("qua-lon.vi.srt")
    page.select_option("#f-zone", "Europe/Paris")
    page.click("#save")
    row = page.locator("#subtitle-files li")
    expect(row.locator("[data-role=upload-error]")).to_contain_text("Tệp lớn hơn giới hạn cho phép.",
                                                                     timeout=30_000)
    expect(row.locator("[data-role=upload-state]")).to_have_text("tải lên không được")
    expect(clip.locator("[data-role=upload-state]")).to_have_text("đã tải lên", timeout=30_000)
    saved = httpx.get(f"{site.url}/v1/stories/tin-kinh-te", headers=site.service.auth("producer-kinh-te"))
    assert saved.json()["story"]["story"]["published"] == "2023-09-12T21:15:00+02:00", "Paris in summer"
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_sideways_scroll(page)
    assert axe_violations(page) == [], "phone"
    assert page.errors == []

    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New story")
    expect(page.locator("#submit")).to_have_text("Upload and submit")

    others = browser.new_context()
    try:
        tab = others.new_page()
        dialogs: list[str] = []
        tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        site.sign_in(tab, "operator", "/?story=tin-thoi-su")            # operators see every desk
        expect(tab.locator("#f-title")).to_have_value("Tin của ban thời sự <script>alert(1)</script>")
        expect(tab.get_by_role("heading", level=1)).to_have_text("Tin của ban thời sự <script>alert(1)</script>")
        expect(card(tab, "anh-05.jpg").locator("[data-field=caption]")).to_have_value(HOSTILE)
        assert dialogs == [] and tab.locator("img[src=x]").count() == 0, "user text stays text"
        tab.get_by_role("button", name="Đăng xuất").click()
        tab.wait_for_url(f"{site.url}/signin")
        site.sign_in(tab, "editor", "/")
        assert tab.url == f"{site.url}/stories", "an editor has no form here: the list instead"
    finally:
        others.close()


def test_a_paused_upload_resumes_after_a_reload_from_where_the_service_had_it(
        site: Site, page: Any, media: Path) -> None:
    site.service.app.state.service.extras["upload_chunk_bytes"] = CHUNK
    watch = ClipUpload("full.jpg")
    page.route(re.compile(r".*/v1/uploads(/[^/?]*)?$"), watch.handle)
    site.sign_in(page, "producer", "/")
    fill_story(page, "Tải lên bị gián đoạn")
    page.set_input_files("#f-files", [str(media / "full.jpg")])
    page.click("#save")
    wait_until(page, lambda: bool(watch.held))
    entry = card(page, "full.jpg")
    expect(entry.locator("[data-role=upload-state]")).to_have_text("đang tải lên")
    entry.get_by_role("button", name="Tạm dừng tải full.jpg").click()
    expect(entry.locator("[data-role=upload-state]")).to_have_text("tạm dừng")
    expect(entry.get_by_role("button", name="Tiếp tục tải full.jpg")).to_be_visible()
    held = watch.held.pop()
    with contextlib.suppress(Exception):   # the page may have given the request up when it paused
        held.abort("connectionreset")
    first_url, kept = watch.url, watch.cut_at
    assert kept is not None and kept > 0

    page.reload()                                   # the File is gone with the page; the upload is not
    entry = card(page, "full.jpg")
    expect(entry.locator("[data-role=upload-state]")).to_have_text("cần chọn lại tệp")
    watch.patches.clear()
    watch.url = first_url
    watch.cut_at = -1                               # hold nothing more
    entry.locator("[data-role=replace-input]").set_input_files(str(media / "full.jpg"))
    expect(entry.locator("[data-role=upload-state]")).to_have_text("đã tải lên", timeout=30_000)
    assert watch.url == first_url, "no new upload was made: the stored one was resumed"
    assert watch.patches and watch.patches[0] == kept, f"resumed at {watch.patches} (kept {kept})"
    assert page.errors == []


def test_an_upload_waits_while_the_laptop_is_offline_and_goes_on_when_it_is_back(
        site: Site, page: Any, media: Path) -> None:
    site.service.app.state.service.extras["upload_chunk_bytes"] = CHUNK
    watch = ClipUpload("full.jpg")
    page.route(re.compile(r".*/v1/uploads(/[^/?]*)?$"), watch.handle)
    site.sign_in(page, "producer", "/")
    fill_story(page, "Mất mạng giữa chừng")
    page.set_input_files("#f-files", [str(media / "full.jpg")])
    page.click("#save")
    wait_until(page, lambda: bool(watch.held))
    page.context.set_offline(True)
    watch.held.pop().abort("internetdisconnected")
    entry = card(page, "full.jpg")
    expect(entry.locator("[data-role=upload-state]")).to_have_text("mất kết nối")
    expect(entry.locator("[data-role=upload-text]")).to_contain_text("Mất kết nối, đang thử lại…")
    page.context.set_offline(False)
    expect(entry.locator("[data-role=upload-state]")).to_have_text("đã tải lên", timeout=30_000)
    after = watch.patches[watch.patches.index(watch.cut_at or 0) + 1:]
    assert after and after[0] == watch.cut_at, f"went on from the service's offset: {watch.patches}"
    assert page.errors == []
