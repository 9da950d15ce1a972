"""Pages as HTML: the Jinja2 templates (every value escaped), the words in the reader's language,
and the headers every page carries (a Content-Security-Policy that allows no inline script, no
framing, no caching of what a signed-in person sees)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from api import sessions
from api.auth import Principal
from api.pages import i18n

TEMPLATES = Path(__file__).resolve().parent / "templates"

_environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                           undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def language(request: Request) -> str:
    return i18n.choose(request.query_params.get("lang"), request.cookies.get(i18n.COOKIE))


def media_origins(request: Request) -> list[str]:
    """Origins the pages may load renditions from besides their own: the store's, where its
    presigned or public URLs point elsewhere (the cluster's S3 endpoint)."""
    url = request.app.state.service.backend.media_base_url
    parts = urlsplit(url or "")
    return [f"{parts.scheme}://{parts.netloc}"] if parts.scheme in ("http", "https") and parts.netloc else []


def security_headers(request: Request) -> dict[str, str]:
    media = " ".join(media_origins(request))
    policy = "; ".join([
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",   # hash-wasm hashes files in WebAssembly
        "style-src 'self'",
        f"img-src 'self' data: blob: {media}".rstrip(),
        f"media-src 'self' blob: {media}".rstrip(),
        f"connect-src 'self' {media}".rstrip(),
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


def page(request: Request, template: str, *, who: Principal | None = None, status: int = 200,
         **context: Any) -> HTMLResponse:
    """``template`` rendered for ``request``'s reader (their language, their CSRF token)."""
    lang = language(request)
    session = getattr(request.state, "session", None)
    secret: bytes = request.app.state.service.config.secret
    html = _environment.get_template(template).render(
        request=request, lang=lang, t=i18n.translator(lang), state_word=lambda name: i18n.state(lang, name),
        reason_text=lambda code: i18n.reason(lang, code), who=who,
        role_word=(i18n.message(lang, f"role.{who.role}") if who else ""),
        csrf=sessions.csrf_token(secret, session) if who is not None and session is not None else "",
        path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=security_headers(request))
