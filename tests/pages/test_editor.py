"""The web editor's page (``/stories/{id}``) in Debian's Chromium, against the embedded service with a
story really processed over the API (two photos, a 3 s clip with subtitles; presets web, and social
for the photos), then processed again with one caption changed (manifest version 2)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from api.pages.editor import changes
from pipeline.model import manifest as manifests
from tests.api.harness import LiveServer, Service, make_service
from tests.api.test_flow import follow, upload
from tests.clips import phone_clip
from tests.fixtures import photo
from tests.pages.harness import axe_violations, shoot

STORY_ID = "bao-lu-mien-trung"
HOSTILE = 'Ảnh "một" <script>alert("xss")</script> & đồng bào'
CAPTION_B = "Người dân sơ tán khỏi vùng ngập"
CAPTION_B2 = "Người dân sơ tán khỏi vùng ngập, sáng 12/9"


def story_json(caption_b: str) -> dict[str, Any]:
    return {"story": {"id": STORY_ID, "title": "Bão lũ miền Trung: người dân sơ tán", "byline": "Đình Hà",
                      "published": "2023-09-12T21:15:00+07:00", "presets": ["web"]},
            "assets": [
                {"file": "media/anh-a.jpg", "caption": HOSTILE, "credit": "Đình Hà", "presets": ["web", "social"]},
                {"file": "media/anh-b.jpg", "caption": caption_b, "credit": "Đức Anh",
                 "presets": ["web", "social"]},
                {"file": "media/clip.mp4", "caption": "Nước lên nhanh ở Quảng Bình", "credit": "Đức Anh",
                 "subtitles": "media/clip.vi.srt"},
                {"file": "media/hong.jpg", "caption": "Ảnh lỗi", "credit": "Đức Anh"}]}


@dataclass
class Processed:
    service: Service
    server: LiveServer
    manifest: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def page_url(self) -> str:
        return f"{self.server.url}/stories/{STORY_ID}"

    def renditions(self, order: int) -> list[dict[str, Any]]:
        asset = next(a for a in self.manifest["assets"] if a["order"] == order)
        return list(asset["renditions"])


def _submit(base: str, service: Service, key: str) -> None:
    producer = service.auth("producer")
    submitted = httpx.post(f"{base}/v1/stories/{STORY_ID}/jobs", headers={**producer, "Idempotency-Key": key})
    assert submitted.status_code == 202, submitted.text
    final = follow(base, producer, submitted.json()["id"], timeout=180).final
    assert final["state"] == "partial", final     # hong.jpg is a text file named .jpg
    assert [a["state"] for a in final["assets"]] == ["done", "done", "done", "failed"], final


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processed]:
    root = tmp_path_factory.mktemp("editor")
    media = root / "media"
    media.mkdir()
    photo((1200, 800), 1).save(media / "anh-a.jpg", quality=85)
    photo((900, 1200), 2).save(media / "anh-b.jpg", quality=85)
    phone_clip(media / "clip.mp4", seconds=3.0, size="640x360")
    (media / "hong.jpg").write_text("Đây là ghi chú, không phải ảnh.\n", "utf-8")
    (media / "clip.vi.srt").write_text("1\n00:00:00,000 --> 00:00:02,500\nNước lên rất nhanh\n\n", "utf-8")
    service = make_service(root / "data")
    with LiveServer(service.app) as server:
        producer = service.auth("producer")
        created = httpx.post(f"{server.url}/v1/stories", json=story_json(CAPTION_B), headers=producer)
        assert created.status_code == 201, created.text
        for name in ("media/anh-a.jpg", "media/anh-b.jpg", "media/clip.mp4", "media/clip.vi.srt",
                     "media/hong.jpg"):
            upload(server.url, producer, STORY_ID, name, root / name)
        _submit(server.url, service, "editor-1")
        changed = httpx.post(f"{server.url}/v1/stories", json=story_json(CAPTION_B2), headers=producer)
        assert changed.status_code == 200, changed.text
        _submit(server.url, service, "editor-2")
        document = httpx.get(f"{server.url}/v1/stories/{STORY_ID}/manifest", headers=service.auth("editor"))
        assert document.status_code == 200 and document.json()["version"] == 2, document.text
        yield Processed(service, server, document.json())


def new_page(browser: Any, width: int = 1280, height: int = 800, scale: float = 1, **options: Any) -> Any:
    """A fresh context and page (as the conftest's ``page``: script errors in ``page.errors``)."""
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=scale,
                                  locale="vi-VN", **options)
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.on("console", lambda message: message.type == "error"
           and not message.text.startswith("Failed to load resource")
           and tab.errors.append(message.text))
    tab.set_default_timeout(15_000)
    return tab


def sign_in(page: Any, story: Processed, who: str = "editor", path: str = f"/stories/{STORY_ID}") -> None:
    page.goto(f"{story.url}/signin?next={path}")
    page.fill("#token", story.service.tokens[who])
    with page.expect_navigation():
        page.click("button[type=submit]")


def path_of(url: str) -> str:
    return unquote(urlsplit(url).path)


def expected_pick(widths: list[int], slot: float, dpr: float) -> int:
    """The ``w`` candidate a browser should take for a ``sizes`` slot: the narrowest whose
    density (width / slot) covers the device pixel ratio, else the widest (what Chromium does)."""
    ordered = sorted(widths)
    return next((w for w in ordered if w / slot >= dpr), ordered[-1])


def slot_width(viewport: int) -> int:
    """The photo's slot as editor.py's SIZES states it: 46rem from 50rem up, else 100vw - 3rem."""
    return 736 if viewport >= 800 else viewport - 48


@pytest.mark.parametrize(("width", "height", "scale"), [(390, 844, 1), (390, 844, 3), (1280, 800, 1),
                                                        (1280, 800, 2)], ids=["phone", "phone-3x", "laptop",
                                                                              "laptop-2x"])
def test_a_photo_loads_in_the_size_the_viewport_asks_for(browser: Any, story: Processed, width: int,
                                                         height: int, scale: float) -> None:
    page = new_page(browser, width, height, scale)
    try:
        sign_in(page, story)
        image = page.locator("#asset-1 img")
        image.scroll_into_view_if_needed()
        page.wait_for_function("() => { const i = document.querySelector('#asset-1 img');"
                               " return i.complete && i.naturalWidth > 0; }")
        current = image.evaluate("i => i.currentSrc")
        loaded = next(r for r in story.renditions(1) if path_of(current).endswith("/" + r["key"]))
        assert loaded["mime"] == "image/webp", "Chromium takes the WebP source"
        assert loaded["preset"].startswith("web@"), "the website's renditions, not the social ones"
        webp = [r["width"] for r in story.renditions(1) if r["mime"] == "image/webp"
                and r["preset"].startswith("web@")]
        slot = slot_width(width)
        assert loaded["width"] == expected_pick(webp, slot, scale), (current, webp, slot, scale)
        shown = image.evaluate("i => i.getBoundingClientRect().width")
        assert slot - 24 <= shown <= slot + 1, f"the sizes attribute states the layout ({shown} px in {slot})"
        # naturalWidth is the picked width at its density in the slot (w descriptors over sizes)
        assert abs(image.evaluate("i => i.naturalWidth") - slot) <= 1
        assert page.errors == []
    finally:
        page.context.close()


def test_the_clip_plays_with_its_poster_and_captions(browser: Any, story: Processed) -> None:
    page = new_page(browser)
    fetched: list[tuple[int, str]] = []
    page.on("response", lambda answer: fetched.append((answer.status, answer.url)))
    try:
        sign_in(page, story)
        video = page.locator("video.clip")
        poster = next(r for r in story.renditions(3) if r["name"] == "poster")
        assert path_of(video.get_attribute("poster") or "").endswith(poster["key"])
        page.wait_for_function("() => document.querySelector('video.clip').readyState >= 1", timeout=20_000)
        assert video.evaluate("v => v.dataset.player") == "hls.js", "Chromium has MSE: hls.js plays the HLS"
        video.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("() => document.querySelector('video.clip').currentTime > 2.5", timeout=20_000)
        segments = [url for status, url in fetched if status == 200 and ".m4s" in url]
        assert segments and all("signature=" in url for url in segments), "hls.js fetched signed segments"
        assert not [url for status, url in fetched if status >= 400], "no request was refused"
        cues = page.wait_for_function(
            "() => { const t = document.querySelector('video.clip').textTracks[0];"
            " return t && t.mode === 'showing' && t.cues && t.cues.length ? t.cues[0].text : false; }")
        assert cues.json_value() == "Nước lên rất nhanh"
        assert page.errors == []
    finally:
        page.context.close()


def test_a_copied_url_downloads_the_rendition_the_manifest_names(browser: Any, story: Processed) -> None:
    page = new_page(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        sign_in(page, story)
        rendition = next(r for r in story.renditions(2) if r["name"] == "w640" and r["mime"] == "image/jpeg")
        row = page.locator(f"tr[data-key='{rendition['key']}']")
        assert row.locator("code.sha").inner_text() == rendition["sha256"]
        row.get_by_role("button", name="Sao chép").click()
        expect(row.get_by_role("button")).to_have_text("Đã sao chép")   # the copy is asynchronous
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == row.locator("input.url").input_value()
        assert "signature=" in copied, "the store is private: the link is presigned"
        answer = httpx.get(copied, timeout=30)      # no cookie, no token: the link is the permission
        assert answer.status_code == 200, answer.text
        assert hashlib.sha256(answer.content).hexdigest() == rendition["sha256"]
        assert len(answer.content) == rendition["bytes"]

        page.locator(".snippet[data-asset='1'] button.copy").click()
        expect(page.locator(".snippet[data-asset='1'] button.copy")).to_have_text("Đã sao chép")
        snippet = page.evaluate("navigator.clipboard.readText()")
        assert snippet.startswith("<figure>\n  <picture>") and "&lt;script&gt;" in snippet
        assert snippet == page.locator(".snippet[data-asset='1'] pre code").text_content()

        # Without the clipboard API the text is selected for Ctrl+C.
        page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
        other = page.locator("table.renditions[data-asset='1'] tbody tr").first
        other.get_by_role("button").click()
        selected = page.evaluate("() => { const e = document.activeElement;"
                                 " return e.value.substring(e.selectionStart, e.selectionEnd); }")
        assert selected == other.locator("input.url").input_value()
        assert page.errors == []
    finally:
        page.context.close()


def zip_expected(document: dict[str, Any], preset: str) -> dict[str, str]:
    """Entry name -> SHA-256 of every object of ``preset``'s renditions, from the manifest."""
    expected: dict[str, str] = {}
    for asset in document["assets"]:
        web = [r for r in asset["renditions"] if r["preset"].split("@")[0] == preset]
        for part in manifests.objects([{**asset, "renditions": web}]):
            expected[part.key.removeprefix("renditions/")] = part.sha256
    return expected


def test_a_preset_downloads_as_a_zip_of_its_renditions(page: Any, story: Processed) -> None:
    sign_in(page, story)
    with page.expect_download() as waiting:
        page.locator("a[data-preset=web]").click()
    download = waiting.value
    assert download.suggested_filename == f"{STORY_ID}-web.zip"
    with zipfile.ZipFile(download.path()) as archive:
        infos = archive.infolist()
        found = {info.filename: hashlib.sha256(archive.read(info)).hexdigest() for info in infos}
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos), "stored, not recompressed"
    expected = zip_expected(story.manifest, "web")
    assert found == expected
    assert any(name.endswith(".m4s") for name in found) and any(name.endswith(".mp4") for name in found)
    assert not any("/social@" in name for name in found), "only the web preset"
    social = zip_expected(story.manifest, "social")
    assert social and not set(social) & set(found)
    assert page.errors == []


def test_the_zip_streams_before_its_last_entry_is_read(page: Any, story: Processed,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The last object's read is held until the client has the zip's first bytes: a zip built
    whole before sending would never send them (the client gives up after 15 s)."""
    sign_in(page, story)
    cookie = next(c for c in page.context.cookies() if c["name"] == "storymedia_session")
    expected = zip_expected(story.manifest, "web")
    last = "renditions/" + list(expected)[-1]
    store = story.service.app.state.service.backend.public
    original = store.read_chunks
    reached, release = threading.Event(), threading.Event()

    def held(key: str) -> Iterator[bytes]:
        if key == last:
            reached.set()
            assert release.wait(30), "the test never released the last entry"
        yield from original(key)

    monkeypatch.setattr(store, "read_chunks", held)
    with httpx.Client(cookies={cookie["name"]: cookie["value"]}, timeout=httpx.Timeout(15)) as http, \
            http.stream("GET", f"{story.url}/stories/{STORY_ID}/presets/web.zip") as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/zip"
        chunks = answer.iter_raw()
        first = next(chunks)
        assert first.startswith(b"PK\x03\x04"), "a zip's first local header"
        assert reached.wait(15), "every entry before the last was sent"
        assert not release.is_set()
        received = len(first)
        body = [first]
        release.set()
        for chunk in chunks:
            body.append(chunk)
            received += len(chunk)
    with zipfile.ZipFile(io.BytesIO(b"".join(body))) as archive:
        assert {i.filename: hashlib.sha256(archive.read(i)).hexdigest() for i in archive.infolist()} == expected
    assert received > len(first)


def test_a_caption_with_a_script_tag_is_text_everywhere_and_the_page_is_accessible(
        page: Any, story: Processed, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, story)
    assert page.get_by_role("heading", level=1).inner_text() == "Bão lũ miền Trung: người dân sơ tán"
    caption = page.locator("#asset-1 figcaption").inner_text()
    assert caption.startswith(HOSTILE) and "Ảnh: Đình Hà" in caption
    assert page.locator("#asset-1 img").get_attribute("alt") == HOSTILE
    page.wait_for_function("() => document.querySelector('video.clip').readyState >= 2", timeout=20_000)
    shoot(page, tmp_path, "editor", photos=True)
    for summary in page.locator(".snippet summary").all():
        summary.click()
    snippet = page.locator(".snippet[data-asset='1'] pre code").inner_text()
    assert 'alt="Ảnh &quot;một&quot; &lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt; &amp; đồng bào"' in snippet
    assert "<figcaption>Ảnh \"một\" &lt;script&gt;" in snippet
    assert "&amp; đồng bào <small>Ảnh: Đình Hà</small></figcaption>" in snippet
    assert '<source type="image/webp" srcset="' in snippet and "<picture>" in snippet
    video = page.locator(".snippet[data-asset='3'] pre code").inner_text()
    assert 'type="application/vnd.apple.mpegurl"' in video and 'type="video/mp4"' in video
    assert '<track kind="subtitles"' in video and "poster=" in video
    assert page.locator("script", has_text="xss").count() == 0
    assert "editor." not in page.locator("main").inner_text(), "every word has its translation"
    assert page.locator(".story-head .state").inner_text() == "xong một phần"
    assert page.locator(".preview .alert[data-asset='4']").inner_text() == (
        "Tư liệu hong.jpg không dựng được: Đây không phải ảnh, video hay âm thanh (có thể là tệp văn bản"
        " bị đặt tên .jpg)")
    html = page.content()
    assert "raw/" not in html, "a story's raw files are never named"
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 390, "height": 844})   # a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "nothing wider than the phone"
    copy = page.locator("table.renditions[data-asset='2'] button.copy").first
    copy.scroll_into_view_if_needed()
    assert copy.is_visible()
    assert axe_violations(page) == []
    assert dialogs == [] and page.errors == []


def test_the_versions_say_what_changed(page: Any, story: Processed) -> None:
    sign_in(page, story)
    second = page.locator("ol.versions > li[data-version='2']")
    caption = second.locator("li[data-change=caption]").inner_text()
    assert caption == f"Sửa chú thích của anh-b.jpg: “{CAPTION_B}” → “{CAPTION_B2}”"
    changed = second.locator("li[data-change=rendition-changed]").all_inner_texts()
    assert changed and all("anh-b.jpg" in text for text in changed), changed
    assert page.locator("ol.versions > li[data-version='1']").inner_text().endswith("Phiên bản đầu tiên.")
    previous = httpx.get(f"{story.url}/v1/stories/{STORY_ID}/manifest/versions/1",
                         headers=story.service.auth("editor")).json()
    before = {r["key"]: r["sha256"] for a in previous["assets"] for r in a["renditions"] if a["order"] == 2}
    after = {r["key"]: r["sha256"] for r in story.renditions(2)}
    assert len(changed) == len(set(after.values()) - set(before.values())), (changed, before, after)


def test_who_may_open_the_page(browser: Any, story: Processed) -> None:
    for who, status in (("producer", 200), ("operator", 200), ("producer-kinh-te", 403)):
        page = new_page(browser)
        try:
            sign_in(page, story, who, "/stories")
            answer = page.goto(story.page_url)
            assert answer is not None and answer.status == status, who
            zipped = page.request.get(f"{story.url}/stories/{STORY_ID}/presets/web.zip")
            assert zipped.status == status, who
            if status == 403:
                assert page.get_by_role("alert").inner_text() == "Bạn không có quyền xem trang này."
            assert page.errors == []
        finally:
            page.context.close()
    page = new_page(browser)
    try:
        answer = page.goto(story.page_url)
        assert "/signin?next=" in page.url, "no session: sign in first"
        sign_in(page, story)
        assert page.goto(f"{story.url}/stories/khong-co-bai-nay").status == 404
        assert page.goto(f"{story.url}/stories/{STORY_ID}/presets/khong-co.zip").status == 404
        assert answer is not None
    finally:
        page.context.close()


def test_the_page_in_english(page: Any, story: Processed) -> None:
    sign_in(page, story)
    page.get_by_role("link", name="English").click()
    page.wait_for_url(story.page_url)
    assert page.locator("#versions-h").inner_text() == "Versions and what changed"
    assert page.locator("a[data-preset=web]").inner_text() == "Download web.zip"
    assert page.locator("html").get_attribute("lang") == "en"
    assert "editor." not in page.locator("main").inner_text(), "every word has its translation"
    signed = json.loads(page.locator("#hls-urls-3").text_content() or "{}")
    hls = next(r for r in story.renditions(3) if r["name"] == "hls")
    assert {path.split("/v1/files/", 1)[1] for path in signed} == {
        part.key for part in manifests.objects([{**next(a for a in story.manifest["assets"] if a["order"] == 3),
                                                 "renditions": [hls]}])}
    assert page.errors == []


def test_what_changed_between_two_manifests_matches_assets_by_id_then_by_unique_file_name() -> None:
    def asset(id_: str, filename: str, caption: str, renditions: list[tuple[str, str]]) -> dict[str, Any]:
        return {"id": id_, "filename": filename, "caption": caption, "credit": "Đình Hà", "status": "done",
                "renditions": [{"preset": "web@1", "name": name, "mime": "image/jpeg", "sha256": sha,
                                "key": f"renditions/{id_}/web@1/{name}-{sha}.jpg"} for name, sha in renditions]}

    before = {"assets": [asset("a1", "a.jpg", "Một", [("w640", "11"), ("w320", "12")]),
                         asset("b1", "b.jpg", "Hai", [("w640", "21")]),
                         asset("c1", "c.jpg", "Ba", [("w640", "31")])]}
    after = {"assets": [asset("a1", "a.jpg", "Một <b>", [("w640", "11"), ("w1024", "13")]),
                        asset("b2", "b.jpg", "Hai", [("w640", "22")]),      # the file was replaced
                        asset("d1", "d.jpg", "Bốn", [("w640", "41")])]}
    found = [(item["what"], item["file"]) for item in changes(before, after)]
    assert found == [("caption", "a.jpg"), ("rendition-added", "a.jpg"), ("rendition-removed", "a.jpg"),
                     ("file-replaced", "b.jpg"), ("rendition-changed", "b.jpg"), ("asset-added", "d.jpg"),
                     ("asset-removed", "c.jpg")]
    assert changes(before, before) == []
    assert [item["what"] for item in changes(None, before)] == ["asset-added"] * 3
