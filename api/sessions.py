"""Signing in to the pages: a session cookie made from a token, and CSRF protection.

A person signs in once with their token (``POST /signin``); the service answers with a session
cookie (HttpOnly, SameSite=Strict, Secure over https) that names the token's id, never the token:

    storymedia_session = <token id>.<expires, unix seconds>.<nonce>.<HMAC-SHA256 of those>

signed with the service's secret (``STORYMEDIA_SERVICE_SECRET``), so any replica can check it and
nothing is kept per session. A revoked token ends its sessions at once (the id is looked up in the
tokens file on every request); a session lasts ``LIFETIME`` at most.

The pages call the same API as any client. With the cookie (and no bearer token), every request
that changes something (POST, PUT, PATCH, DELETE) must also carry the session's CSRF token in the
``X-CSRF-Token`` header (the pages read it from ``<meta name="csrf-token">``) and, when the
browser says where it comes from, come from this site (``Origin`` / ``Sec-Fetch-Site``). A bearer
token is not sent by the browser on its own, so requests with one need neither.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "storymedia_session"
CSRF_HEADER = "x-csrf-token"
LIFETIME = 12 * 3600
"""Seconds a session lasts (a working day and a bit); then the person signs in again."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_VALUE = re.compile(r"([0-9a-f]{12})\.([0-9]{1,12})\.([0-9a-f]{32})\.([0-9a-f]{64})")


@dataclass(frozen=True)
class Session:
    token_id: str
    expires: int
    nonce: str


def _mac(secret: bytes, purpose: str, text: str) -> str:
    return hmac.new(secret, f"{purpose}:{text}".encode(), hashlib.sha256).hexdigest()


def open_session(secret: bytes, token_id: str, now: float | None = None) -> tuple[str, Session]:
    """A new session for ``token_id``: (the cookie's value, the session)."""
    session = Session(token_id, int((time.time() if now is None else now) + LIFETIME), secrets.token_hex(16))
    payload = f"{session.token_id}.{session.expires}.{session.nonce}"
    return f"{payload}.{_mac(secret, 'session', payload)}", session


def read_session(secret: bytes, value: str | None, now: float | None = None) -> Session | None:
    """The session a cookie's value names, if it is ours, intact and not expired."""
    found = _VALUE.fullmatch(value or "")
    if found is None:
        return None
    token_id, expires, nonce, mac = found.groups()
    if not hmac.compare_digest(mac, _mac(secret, "session", f"{token_id}.{expires}.{nonce}")):
        return None
    if int(expires) <= (time.time() if now is None else now):
        return None
    return Session(token_id, int(expires), nonce)


def csrf_token(secret: bytes, session: Session) -> str:
    """The session's CSRF token (the same for the whole session)."""
    return _mac(secret, "csrf", session.nonce)[:40]


def csrf_ok(secret: bytes, session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(str(given), csrf_token(secret, session))


def same_site(request: Request) -> bool:
    """False when the browser says the request comes from another site (``Sec-Fetch-Site``, or an
    ``Origin`` of another host); True when it says nothing (older browsers, other clients)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def set_cookie(response: Response, request: Request, value: str) -> None:
    """The session cookie: never readable by scripts, never sent from another site, only over
    https when the service is reached over https."""
    response.set_cookie(COOKIE, value, max_age=LIFETIME, path="/", httponly=True, samesite="strict",
                        secure=_secure(request))


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
