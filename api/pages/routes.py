"""The pages every role shares: signing in and out, the language switch, the list of stories.

The producer's page (``/``), the editor's (``/stories/{id}``) and the operator's console
(``/ops``) have their own modules; all of them read the store through the same functions as the
API, and change things only through the API (from the page's script, with the CSRF token).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from api import records, sessions
from api.auth import session_principal
from api.pages import i18n
from api.pages.access import reader, safe_next, visible_catalog
from api.pages.render import page
from api.routes.stories import story_out

router = APIRouter(include_in_schema=False)

LIST_LIMIT = 200
"""Stories the list shows (the newest ids last; the API pages through more)."""


@router.get("/signin")
def signin_form(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    who = session_principal(request)
    if who is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, "signin.html", next_path=safe_next(next), error_key="")


@router.post("/signin")
def signin(request: Request, token: Annotated[str, Form(max_length=300)] = "",
                 next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    """Trade a token for a session cookie (the token itself is never kept by the browser)."""
    target = safe_next(next)
    if not sessions.same_site(request):
        return page(request, "signin.html", next_path=target, error_key="signin.other_site", status=403)
    svc = request.app.state.service
    who = svc.tokens.check(token.strip())
    if who is None:
        return page(request, "signin.html", next_path=target, error_key="signin.wrong", status=401)
    value, _ = sessions.open_session(svc.config.secret, who.id)
    answer = RedirectResponse(target, status_code=303)
    sessions.set_cookie(answer, request, value)
    return answer


@router.post("/signout")
def signout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    who = session_principal(request)
    secret: bytes = request.app.state.service.config.secret
    session = getattr(request.state, "session", None)
    if who is not None and session is not None and not (
            sessions.same_site(request) and sessions.csrf_ok(secret, session, csrf)):
        return page(request, "error.html", who=who, status=403, message_key="signin.other_site")
    answer = RedirectResponse("/signin", status_code=303)
    sessions.clear_cookie(answer, request)
    return answer


@router.get("/lang/{lang}")
def choose_language(request: Request, lang: str,
                          next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    """Switch the pages' language (a preference cookie, nothing else)."""
    answer = RedirectResponse(safe_next(next), status_code=303)
    if lang in i18n.LANGS:
        answer.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="lax",
                          path="/")
    return answer


@router.get("/stories")
def story_list(request: Request) -> Response:
    """The stories the reader may see (a producer: their desk's), newest first."""
    who = reader(request)
    svc = request.app.state.service
    stories = []
    for entry in visible_catalog(svc.backend.private, who, LIST_LIMIT):
        record = records.read_story(svc.backend.private, entry["id"])
        if record is not None:
            stories.append(story_out(svc, record, with_files=False))
    return page(request, "stories.html", who=who, stories=stories)
