"""Manifests: the current one (``ETag`` = its SHA-256, ``304`` on ``If-None-Match``), optionally with
presigned rendition URLs, and any earlier version. In the embedded mode the service itself serves
the presigned URLs (``/v1/files/...``, signed with the service secret, public area only)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse

from api.auth import Principal, principal
from api.embedded import sign
from api.problems import COMMON, Problem, documented
from api.routes.stories import StoryId, load
from api.service import Service, service
from pipeline.model import manifest
from pipeline.model.keys import manifest_key
from pipeline.storage import LocalStorage

router = APIRouter(prefix="/v1", tags=["manifests"], responses=COMMON)

MAX_EXPIRES = 7 * 86400


def _etag(data: bytes, weak: bool = False) -> str:
    return ("W/" if weak else "") + '"' + hashlib.sha256(data).hexdigest() + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    bare = etag.removeprefix("W/")
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == bare for tag in tags)


def _presigned(svc: Service, request: Request, document: dict[str, Any], expires: int) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    cache: dict[str, str] = {}

    def url(key: str) -> str:
        if key not in cache:
            signed = svc.backend.presign(key, expires)
            cache[key] = base + signed if signed.startswith("/") else signed
        return cache[key]

    for asset in document.get("assets", []):
        for rendition in asset.get("renditions", []):
            rendition["url"] = url(rendition["key"])
    return document


def _answer(svc: Service, request: Request, story_id: str, key: str, presign: bool, expires: int,
            if_none_match: str | None) -> Response:
    store = svc.backend.public
    if not store.exists(key):
        raise Problem("not-found", f"story {story_id} has no such manifest (yet)")
    data = store.get_bytes(key)
    document = manifest.parse(data, key)   # checked against the schema before anyone gets it
    etag = _etag(data, weak=presign)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    if presign:
        body = json.dumps(_presigned(svc, request, document, expires), ensure_ascii=False).encode()
    else:
        body = data
    return Response(body, media_type="application/json", headers=headers)


Presign = Annotated[bool, Query(description="Replace each rendition URL with a presigned one")]
Expires = Annotated[int, Query(ge=60, le=MAX_EXPIRES, description="Lifetime of presigned URLs, seconds")]


@router.get("/stories/{story_id}/manifest", responses={**documented("not-found"), 200: {
    "content": {"application/json": {}}, "description": "The manifest (storymedia/manifest@1)"},
    304: {"description": "Unchanged since the ETag given"}})
def get_manifest(story_id: StoryId, request: Request, svc: Annotated[Service, Depends(service)],
                 who: Annotated[Principal, Depends(principal)], presign: Presign = False,
                 expires: Expires = 3600,
                 if_none_match: Annotated[str | None, Header(max_length=1000)] = None) -> Response:
    _may_read(svc, story_id, who)
    return _answer(svc, request, story_id, manifest_key(story_id), presign, expires, if_none_match)


@router.get("/stories/{story_id}/manifest/versions/{version}", responses={**documented("not-found"), 200: {
    "content": {"application/json": {}}, "description": "That version of the manifest"},
    304: {"description": "Unchanged since the ETag given"}})
def get_manifest_version(story_id: StoryId, version: Annotated[int, Path(ge=1, le=999_999_999)],
                         request: Request, svc: Annotated[Service, Depends(service)],
                         who: Annotated[Principal, Depends(principal)], presign: Presign = False,
                         expires: Expires = 3600,
                         if_none_match: Annotated[str | None, Header(max_length=1000)] = None) -> Response:
    _may_read(svc, story_id, who)
    return _answer(svc, request, story_id, f"stories/{story_id}/manifest.v{version}.json", presign, expires,
                   if_none_match)


def _may_read(svc: Service, story_id: str, who: Principal) -> None:
    """Editors and operators read every manifest; producers their desk's (a story the service
    did not create has no desk: only editors and operators read it)."""
    if who.role == "producer":
        load(svc, story_id, who)


@router.get("/files/{key:path}", include_in_schema=False)
def get_file(key: str, expires: int, signature: str, svc: Annotated[Service, Depends(service)]) -> Response:
    """A public object of the embedded store, for a URL this service signed."""
    store = svc.backend.public
    if not isinstance(store, LocalStorage):
        raise Problem("not-found", "files are served by the object store in the cluster")
    if expires < time.time():
        raise Problem("gone", "this link has expired; fetch the manifest again for a new one")
    if not hmac.compare_digest(sign(svc.config.secret, key, expires), signature[:64]):
        raise Problem("forbidden", "this link is not valid")
    if not key.startswith(("renditions/", "stories/")) or ".." in key.split("/") or "\\" in key:
        raise Problem("not-found", "no such file")
    path = store.root / key
    if not path.is_file():
        raise Problem("not-found", "no such file")
    info = store.head(key)
    return FileResponse(path, media_type=info.content_type if info and info.content_type else None,
                        headers={"Cache-Control": "private, max-age=60"})
