"""Bearer tokens with a role and a desk.

``storymedia token create --role producer --desk thoi-su [--expires 90d]`` prints a token once;
the tokens file (``STORYMEDIA_TOKENS_FILE``, mode 0600) keeps only its SHA-256, the role, the
desk, a short id for logs and when the token expires (never by default). An expired token is
refused (401, saying it expired) and ends its page sessions. A token is 32 random bytes: a hash
without salt is enough (nothing to guess from), and a lookup by hash is constant-time per entry.

Roles:
- ``producer``: creates, uploads, submits and reads the stories of their own desk;
- ``editor``: reads every story, job and manifest (presigned URLs too), never a raw file;
- ``operator``: everything, every desk, and the operations (re-run, cancel, queues, webhooks).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request

from api import sessions
from api.problems import Problem
from pipeline.errors import ConfigError

ROLES = ("producer", "editor", "operator")
DESK = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
TOKEN_PREFIX = "smt_"


@dataclass(frozen=True)
class Principal:
    """Who is asking: the token's id (never the token), its role and desk."""

    id: str
    role: str
    desk: str
    note: str = ""
    expires: str = ""
    """When the token stops working (ISO 8601, UTC); empty: never."""

    def may_see_desk(self, desk: str) -> bool:
        return self.role != "producer" or self.desk == desk


@dataclass(frozen=True)
class _Entry:
    id: str
    sha256: str
    role: str
    desk: str
    note: str
    created: str
    expires: str = ""

    def expired(self, now: datetime) -> bool:
        return bool(self.expires) and now >= datetime.fromisoformat(self.expires)

    def principal(self) -> Principal:
        return Principal(self.id, self.role, self.desk, self.note, self.expires)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The tokens file: one JSON document, rewritten atomically under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[float, int, dict[str, _Entry]] | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _load(self) -> dict[str, _Entry]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        with self._lock:
            if self._cache and self._cache[:2] == (stat.st_mtime, stat.st_size):
                return self._cache[2]
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                entries = {item["sha256"]: _Entry(**item) for item in data.get("tokens", [])}
                for entry in entries.values():
                    if entry.expires:
                        datetime.fromisoformat(entry.expires)
            except (ValueError, TypeError, KeyError) as exc:
                raise ConfigError(f"the tokens file {self.path} is damaged: {type(exc).__name__}") from exc
            self._cache = (stat.st_mtime, stat.st_size, entries)
            return entries

    def _save(self, entries: dict[str, _Entry]) -> None:
        partial = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"schema": "storymedia/tokens@1",
                       "tokens": [asdict(e) for e in entries.values()]}, handle, indent=2)
        os.replace(partial, self.path)

    def create(self, role: str, desk: str, note: str = "", *,
               expires_in: timedelta | None = None) -> tuple[str, Principal]:
        """A new token (returned once, never stored) and who it is; ``expires_in``: how long it
        works (None: until it is revoked)."""
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)} (got {role!r})")
        if not DESK.fullmatch(desk):
            raise ConfigError(f"desk must be a slug such as thoi-su (got {desk!r})")
        if expires_in is not None and expires_in <= timedelta(0):
            raise ConfigError("a token must work for some time: give --expires a positive duration")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _hash(token)
        now = datetime.now(UTC)
        entry = _Entry(id=digest[:12], sha256=digest, role=role, desk=desk, note=note[:200],
                       created=now.isoformat(timespec="seconds"),
                       expires=(now + expires_in).isoformat(timespec="seconds") if expires_in else "")
        with self._locked():
            entries = dict(self._load())
            entries[digest] = entry
            self._save(entries)
        return token, entry.principal()

    def revoke(self, token_id: str) -> bool:
        with self._locked():
            entries = self._load()
            kept = {k: e for k, e in entries.items() if e.id != token_id}
            if len(kept) == len(entries):
                return False
            self._save(kept)
            return True

    def list(self) -> list[Principal]:
        """Every token, expired ones too (until revoked)."""
        return [e.principal() for e in self._load().values()]

    def by_id(self, token_id: str) -> Principal | None:
        """Who a token id (a session's) belongs to, while the token is neither revoked nor expired."""
        now = datetime.now(UTC)
        found = [e for e in self._load().values() if hmac.compare_digest(e.id, token_id)]
        return found[0].principal() if found and not found[0].expired(now) else None

    def _find(self, token: str) -> _Entry | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = _hash(token)
        found = None
        for key, entry in self._load().items():
            if hmac.compare_digest(key, digest):
                found = entry
        return found

    def check(self, token: str) -> Principal | None:
        """Who the token is, if it is known and has not expired."""
        found = self._find(token)
        return found.principal() if found and not found.expired(datetime.now(UTC)) else None

    def expired_on(self, token: str) -> str | None:
        """When a known token expired (for the refusal's reason); None for any other token."""
        found = self._find(token)
        return found.expires if found and found.expired(datetime.now(UTC)) else None


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="storymedia"'}


def principal(request: Request) -> Principal:
    """The caller, or 401: a bearer token, else a page's session cookie (whose requests that
    change something must carry the session's CSRF token and come from this site: 403)."""
    token = bearer(request)
    store: TokenStore = request.app.state.service.tokens
    if token is None and (who := session_principal(request)) is not None:
        if request.method not in sessions.SAFE_METHODS:
            secret: bytes = request.app.state.service.config.secret
            session = request.state.session
            if not sessions.same_site(request):
                raise Problem("forbidden", "this request comes from another site")
            if not sessions.csrf_ok(secret, session, request.headers.get(sessions.CSRF_HEADER)):
                raise Problem("forbidden", "the page's CSRF token is missing or wrong: reload the page")
        request.state.principal = who
        return who
    who = store.check(token) if token else None
    if who is None:
        expired = store.expired_on(token) if token else None
        raise Problem("unauthorized", "send `Authorization: Bearer <token>` with a token from"
                      " `storymedia token create`, or sign in on the service's page" if token is None
                      else f"the token expired at {expired} (UTC): ask an operator for a new one" if expired
                      else "the token is not valid", headers=CHALLENGE)
    request.state.principal = who
    return who


def session_principal(request: Request) -> Principal | None:
    """Who the page's session cookie names (``request.state.session`` set), if it is valid and
    its token not revoked."""
    secret: bytes = request.app.state.service.config.secret
    session = sessions.read_session(secret, request.cookies.get(sessions.COOKIE))
    if session is None:
        return None
    store: TokenStore = request.app.state.service.tokens
    who = store.by_id(session.token_id)
    if who is not None:
        request.state.session = session
    return who


def require(*roles: str) -> Callable[[Request], Principal]:
    """A dependency: the caller, who must have one of ``roles`` (403 otherwise)."""
    for role in roles:
        if role not in ROLES:
            raise ValueError(role)

    def dependency(request: Request) -> Principal:
        who = principal(request)
        if who.role not in roles:
            raise Problem("forbidden", f"this needs the role {' or '.join(roles)}; your token is a"
                          f" {who.role}'s")
        return who

    return dependency


def check_desk(who: Principal, desk: str, what: str = "this story") -> None:
    if not who.may_see_desk(desk):
        raise Problem("forbidden", f"{what} belongs to another desk")


def describe(who: Principal) -> dict[str, Any]:
    return {"id": who.id, "role": who.role, "desk": who.desk}
