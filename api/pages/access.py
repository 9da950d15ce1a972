"""Who is reading a page: the session cookie's person, or a way back to the sign-in page.

Pages never accept a bearer token (a browser does not send one by itself); the API under them
accepts both (``api.auth``). A page asked for without a session answers a redirect to
``/signin?next=<the page>``; with the wrong role, a 403 page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api import records
from api.auth import Principal, session_principal
from api.pages.render import page
from pipeline.storage import Storage


class PageDenied(Exception):
    """Raised by ``reader``: the response to send instead of the page."""

    def __init__(self, response: Response) -> None:
        super().__init__("page denied")
        self.response = response


def safe_next(target: str | None) -> str:
    """A path on this site to go to after signing in (never another site: ``//host``, ``\\``)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 32 for c in target)):
        return "/"
    return target


def reader(request: Request, *roles: str) -> Principal:
    """The signed-in person, who must have one of ``roles`` (any role when none is given)."""
    who = session_principal(request)
    if who is None:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise PageDenied(RedirectResponse(f"/signin?next={quote(here, safe='/')}", status_code=303))
    request.state.principal = who
    if roles and who.role not in roles:
        raise PageDenied(page(request, "error.html", who=who, status=403, message_key="error.forbidden"))
    return who


def visible_catalog(private: Storage, who: Principal, limit: int) -> list[dict[str, Any]]:
    """The catalog entries of the stories ``who`` may see (a producer: their desk's), most
    recently updated first, at most ``limit``."""
    entries = [entry for entry in records.catalog(private) if who.may_see_desk(str(entry.get("desk", "")))]
    entries.sort(key=lambda entry: str(entry.get("updated", "")), reverse=True)
    return entries[:limit]


def not_found(request: Request, who: Principal) -> HTMLResponse:
    return page(request, "error.html", who=who, status=404, message_key="error.not_found")
