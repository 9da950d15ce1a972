"""What every page shares, in a real browser: signing in (the token traded for an HttpOnly,
SameSite=Strict session cookie), the language switch, CSRF on the API calls a page makes, user
text shown as text, and no critical accessibility violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.pages.harness import Site, axe_violations, shoot

STORY = {"story": {"id": "tin-an-toan", "title": "<script>alert('xss')</script> Bà Lê Thị Minh Tâm",
                   "byline": "Đình Hà", "published": "2023-09-12T21:15:00+07:00", "presets": ["web"]},
         "assets": [{"file": "media/anh-01.jpg", "caption": "Chủ tịch UBND phường Phú Sơn"}]}


def create_story(site: Site) -> None:
    import httpx

    made = httpx.post(f"{site.url}/v1/stories", json=STORY,
                      headers={"Authorization": f"Bearer {site.token('producer')}"})
    assert made.status_code == 201, made.text


def test_signing_in_with_a_wrong_token_says_so_in_vietnamese_then_the_right_one_opens_the_list(
        site: Site, page: Any, tmp_path: Path) -> None:
    page.goto(f"{site.url}/stories")
    assert page.url.endswith("/signin?next=/stories"), "a page without a session asks to sign in"
    assert page.locator("html").get_attribute("lang") == "vi"
    shoot(page, tmp_path, "signin")
    page.fill("#token", "smt_not-a-token")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "Mã truy cập không đúng hoặc đã bị thu hồi."
    page.fill("#token", site.token("producer"))
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == f"{site.url}/stories"
    assert page.get_by_role("heading", level=1).inner_text() == "Bài viết"
    cookie = next(c for c in page.context.cookies() if c["name"] == "storymedia_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert site.token("producer") not in cookie["value"], "the cookie names the token's id, not the token"
    assert page.evaluate("document.cookie").find("storymedia_session") == -1, "scripts cannot read it"
    assert page.errors == []


def test_the_english_switch_and_signing_out(site: Site, page: Any) -> None:
    site.sign_in(page, "editor", "/stories")
    page.get_by_role("link", name="English").click()
    page.wait_for_url(f"{site.url}/stories")
    assert page.get_by_role("heading", level=1).inner_text() == "Stories"
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{site.url}/signin")
    page.goto(f"{site.url}/stories")
    assert "/signin" in page.url, "signed out: the session is gone"


def test_a_caption_with_a_script_tag_shows_as_text(site: Site, page: Any) -> None:
    create_story(site)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    site.sign_in(page, "producer", "/stories")
    link = page.get_by_role("link", name="Bà Lê Thị Minh Tâm")
    assert link.inner_text() == "<script>alert('xss')</script> Bà Lê Thị Minh Tâm"
    assert dialogs == [] and page.errors == []


def test_an_api_call_from_the_page_needs_the_csrf_token(site: Site, page: Any) -> None:
    site.sign_in(page, "producer", "/stories")
    post = """async ([body, token]) => {
        const headers = {'Content-Type': 'application/json'};
        if (token) headers['X-CSRF-Token'] = token;
        const answer = await fetch('/v1/stories', {method: 'POST', headers, body: JSON.stringify(body)});
        return [answer.status, (await answer.json()).code || ''];
    }"""
    assert page.evaluate(post, [STORY, ""]) == [403, "forbidden"]
    assert page.evaluate(post, [STORY, "0" * 40]) == [403, "forbidden"]
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert page.evaluate(post, [STORY, token]) == [201, ""]
    reads = page.evaluate("async () => (await fetch('/v1/stories/tin-an-toan')).status")
    assert reads == 200, "a read needs no CSRF token"


def test_a_revoked_token_ends_its_sessions(site: Site, page: Any) -> None:
    site.sign_in(page, "producer", "/stories")
    producer = next(p for p in site.service.app.state.service.tokens.list() if p.note == "producer")
    assert site.service.app.state.service.tokens.revoke(producer.id)
    page.goto(f"{site.url}/stories")
    assert "/signin" in page.url


def test_no_critical_or_serious_accessibility_violation_on_the_shared_pages(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/signin")
    assert axe_violations(page) == []
    create_story(site)
    site.sign_in(page, "producer", "/stories")
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 390, "height": 844})   # a phone
    assert axe_violations(page) == []
