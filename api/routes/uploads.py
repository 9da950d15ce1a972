"""Resumable uploads with the tus 1.0 protocol at ``/v1/uploads`` (core, creation,
creation-with-upload, termination, checksum ``sha256``, expiration); the logic is :mod:`api.uploads`.

``Upload-Metadata`` names the story (``story``) and the file as the story writes it (``file``, or
``filename``), and may declare the whole file's SHA-256 (``sha256``, hex): the finished file must
have it (460 otherwise), and in the cluster its parts are then assembled straight at the raw's key
instead of being copied there at the end. The finished file is attached to that file of the story.
Producers upload to their desk's stories, operators to any; every request but OPTIONS needs
``Tus-Resumable: 1.0.0``.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable, Coroutine
from email.utils import formatdate
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from api import records
from api.auth import Principal, check_desk, require
from api.problems import COMMON, Problem, documented, from_pipeline, response, validation_errors
from api.routes.stories import load
from api.service import Service, service
from api.uploads import SHA256_HEX, UPLOAD_ID, Upload, Uploads, checksum_digest, uploads_of
from pipeline.errors import PipelineError

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_STREAM = "application/offset+octet-stream"
EXPOSED = ("Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Upload-Sha256,"
           " Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm")
"""Headers a browser's script may read on these responses (CORS)."""
MAX_METADATA = 4096
MAX_FILE_NAME = 1024
_LENGTH = re.compile(r"[0-9]{1,20}")
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class TusRoute(APIRoute):
    """A route that answers every response, problems included, with ``Tus-Resumable`` (but for
    OPTIONS) and the headers a browser may read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                answer = await handler(request)
            except Problem as problem:
                answer = response(problem, request.url.path)
            except RequestValidationError as exc:
                errors = validation_errors(exc.errors())
                answer = response(Problem("invalid", "; ".join(f"{p}: {m}" for p, m in errors[:5]),
                                          errors=errors), request.url.path)
            except PipelineError as exc:
                answer = response(from_pipeline(exc), request.url.path)
            if request.method != "OPTIONS":
                answer.headers["Tus-Resumable"] = TUS_VERSION
            answer.headers["Access-Control-Expose-Headers"] = EXPOSED
            return answer

        return tus_handler


router = APIRouter(prefix="/v1", tags=["uploads"], responses=COMMON, route_class=TusRoute)

UploadId = Annotated[str, Path(max_length=64, description="The upload's id (from the Location of its POST)")]
Uploader = Annotated[Principal, Depends(require("producer", "operator"))]

_BODY = {"requestBody": {"required": True, "content": {OFFSET_STREAM: {"schema": {"type": "string",
                                                                                   "format": "binary"}}}}}
_HEADER = {"schema": {"type": "string"}}


def _headers(*names: str) -> dict[str, Any]:
    return {name: _HEADER for name in names}


async def tus_resumable(tus_resumable: Annotated[str | None, Header(
        description="The tus version the client speaks: 1.0.0")] = None) -> None:
    """412 unless the request speaks tus 1.0.0."""
    if tus_resumable != TUS_VERSION:
        raise Problem("precondition-failed", f"send Tus-Resumable: {TUS_VERSION} (the only tus version"
                      " this service speaks)", headers={"Tus-Version": TUS_VERSION},
                      errors=[("Tus-Resumable", f"must be {TUS_VERSION}")])


Tus = Annotated[None, Depends(tus_resumable)]


def max_upload_bytes(svc: Service) -> int:
    """The largest file accepted: ``STORYMEDIA_UPLOAD_MAX_BYTES``, else the largest raw the
    presets' limits.toml lets through (a clip's ``av.max_bytes`` or a photo's ``max_image_bytes``)."""
    limits = svc.backend.limits
    return svc.config.upload_max_bytes or max(limits.max_image_bytes, limits.av.max_bytes)


def _expires(upload: Upload) -> str:
    return formatdate(upload.expires, usegmt=True)


def _state_headers(upload: Upload) -> dict[str, str]:
    found = {"Upload-Offset": str(upload.offset), "Upload-Expires": _expires(upload)}
    if upload.done:
        found["Upload-Sha256"] = upload.sha256
    return found


def _length(value: str | None, name: str) -> int:
    if value is None or not _LENGTH.fullmatch(value.strip()):
        raise Problem("bad-request", f"{name} must be a whole number of bytes",
                      errors=[(name, "missing" if value is None else "not a whole number")])
    return int(value)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _declared_body(request: Request) -> int | None:
    length = request.headers.get("content-length", "").strip()
    return int(length) if _LENGTH.fullmatch(length) else None


def _check_stream(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != OFFSET_STREAM:
        raise Problem("unsupported-media-type", f"send the bytes as Content-Type: {OFFSET_STREAM}",
                      errors=[("Content-Type", f"must be {OFFSET_STREAM}")])


def _check_room(request: Request, upload: Upload) -> None:
    """413 when the declared body goes past the upload's length (before any of it is read)."""
    declared = _declared_body(request)
    room = upload.length - upload.offset
    if declared is not None and declared > room:
        raise Problem("too-large", f"the upload has {room} bytes left to send; this request declares"
                      f" {declared}", errors=[("Content-Length", f"at most {room}")])


def parse_metadata(header: str | None) -> tuple[str, str, str]:
    """The story id, the file name and the file's SHA-256 (hex; empty when not declared) from
    ``Upload-Metadata`` (``key base64value`` pairs)."""
    if header is None or not header.strip():
        raise Problem("invalid", "Upload-Metadata must name the story and the file:"
                      " `story <base64>,file <base64>`", errors=[("Upload-Metadata", "missing")])
    if len(header) > MAX_METADATA:
        raise Problem("invalid", f"Upload-Metadata is longer than {MAX_METADATA} characters",
                      errors=[("Upload-Metadata", "too long")])
    values: dict[str, str] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition(" ")
        path = f"Upload-Metadata.{key[:64]}"
        if not _METADATA_KEY.fullmatch(key) or key in values:
            raise Problem("invalid", "Upload-Metadata: each key once, letters, digits, '_', '.' or '-'",
                          errors=[(path, "invalid or repeated key")])
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
            values[key] = decoded.decode("utf-8") if key in ("story", "file", "filename", "sha256") else ""
        except (binascii.Error, ValueError):
            raise Problem("invalid", f"Upload-Metadata: the value of {key} is not base64 of UTF-8 text",
                          errors=[(path, "not base64 of UTF-8 text")]) from None
    story = values.get("story", "").strip()
    file = values.get("file") or values.get("filename") or ""
    missing = [(f"Upload-Metadata.{key}", "missing") for key, value in (("story", story), ("file", file))
               if not value]
    if missing:
        raise Problem("invalid", "Upload-Metadata must name the story (story) and the file as the story"
                      " writes it (file)", errors=missing)
    sha256 = values.get("sha256", "").strip().lower()
    if sha256 and not SHA256_HEX.fullmatch(sha256):
        raise Problem("invalid", "Upload-Metadata: sha256 is the whole file's SHA-256 in 64 hex digits",
                      errors=[("Upload-Metadata.sha256", "not 64 hexadecimal digits")])
    return story, file, sha256


def check_file(name: str, files: list[str]) -> str:
    """The story's file ``name`` names (NFC), or 422 naming ``Upload-Metadata.file``."""
    name = unicodedata.normalize("NFC", name.strip())
    path = "Upload-Metadata.file"
    if (len(name) > MAX_FILE_NAME or name.startswith("/") or "\\" in name or ".." in name.split("/")
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise Problem("invalid", "the file must be named as the story writes it: a relative path inside"
                      " the story's folder, without '..', a leading '/' or a backslash",
                      errors=[(path, "not a relative path inside the story's folder")])
    if name not in files:
        listed = ", ".join(files[:20]) + (", ..." if len(files) > 20 else "")
        raise Problem("invalid", f"the story has no file {name!r} (its files: {listed or 'none'})",
                      errors=[(path, "not a file of the story")])
    return name


def _find(uploads: Uploads, upload_id: str, who: Principal) -> Upload:
    """The upload, if it exists and the caller's desk may touch it (404 / 403)."""
    upload = uploads.read(upload_id) if UPLOAD_ID.fullmatch(upload_id) else None
    if upload is None:
        raise Problem("not-found", "no such upload (finished long ago, expired, removed or never made)")
    check_desk(who, upload.desk, "this upload")
    return upload


def _gone(uploads: Uploads, upload: Upload) -> Problem:
    uploads.terminate(upload)
    return Problem("gone", "the upload expired before it was finished and was removed; start a new one"
                   if not upload.done else "the upload expired and was removed")


@router.options("/uploads", status_code=204, response_class=Response, responses={
    204: {"description": "What this tus server supports",
          "headers": _headers("Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm")}})
async def upload_options(svc: Annotated[Service, Depends(service)]) -> Response:
    """The tus server's capabilities (no token needed: a browser's preflight)."""
    return Response(status_code=204, headers={
        "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Max-Size": str(max_upload_bytes(svc)), "Tus-Checksum-Algorithm": "sha256"})


@router.post("/uploads", status_code=201, response_class=Response, openapi_extra={
    "requestBody": {**_BODY["requestBody"], "required": False}}, responses={
    201: {"description": "Created; Location is the upload's URL",
          "headers": _headers("Location", "Upload-Expires", "Upload-Offset")},
    **documented("bad-request", "not-found", "conflict", "precondition-failed", "too-large",
                 "unsupported-media-type", "checksum-mismatch")})
async def create_upload(
        request: Request, svc: Annotated[Service, Depends(service)], _tus: Tus, who: Uploader,
        upload_length: Annotated[str | None, Header(description="The file's size in bytes")] = None,
        upload_metadata: Annotated[str | None, Header(
            description="`story <base64>,file <base64>`: the story's id and the file as the story writes it;"
                        " optionally `sha256 <base64>`: the whole file's SHA-256 in hex"
        )] = None,
        upload_checksum: Annotated[str | None, Header(
            description="`sha256 <base64>` of the body sent with the POST, if any")] = None,
) -> Response:
    """Start an upload of one file of a story (413 before any byte is read when the declared
    length is above the limit); a body sent along (creation-with-upload) is its first bytes."""
    length = _length(upload_length, "Upload-Length")
    if length == 0:
        raise Problem("invalid", "the file is empty", errors=[("Upload-Length", "must be above 0")])
    limit = max_upload_bytes(svc)
    if length > limit:
        raise Problem("too-large", f"the file has {length} bytes; at most {limit} are accepted",
                      errors=[("Upload-Length", f"at most {limit}")])
    story_id, file, sha256 = parse_metadata(upload_metadata)
    record = await run_in_threadpool(load, svc, story_id, who)
    name = check_file(file, records.story_files(record.story))
    subtitles = {asset.subtitles for asset in record.story.assets if asset.subtitles}
    if name in subtitles and name not in {asset.file for asset in record.story.assets}:
        subtitle_limit = min(limit, svc.backend.limits.subtitles.max_bytes)
        if length > subtitle_limit:
            raise Problem("too-large", f"the subtitles file has {length} bytes; at most {subtitle_limit}"
                          " are accepted", errors=[("Upload-Length", f"at most {subtitle_limit}")])
    body = _has_body(request)
    checksum = None
    if body:
        _check_stream(request)
        declared = _declared_body(request)
        if declared is not None and declared > length:
            raise Problem("too-large", f"the body has {declared} bytes, more than Upload-Length",
                          errors=[("Content-Length", f"at most {length}")])
        checksum = checksum_digest(upload_checksum) if upload_checksum else None
    uploads = uploads_of(svc)
    upload = await run_in_threadpool(uploads.create, story=record.id, file=name, desk=record.desk,
                                     created_by=who.id, length=length, metadata=upload_metadata or "",
                                     sha256=sha256)
    headers = {"Location": f"/v1/uploads/{upload.id}", "Upload-Expires": _expires(upload)}
    if body:
        with uploads.claim(upload.id):
            try:
                received = await uploads.receive(upload, request.stream(), checksum=checksum)
            except Problem as problem:
                if problem.code == "checksum-mismatch":
                    await run_in_threadpool(uploads.terminate, upload)
                raise
            headers.update(_state_headers(received.upload))
    return Response(status_code=201, headers=headers)


@router.head("/uploads/{upload_id}", response_class=Response, responses={
    200: {"description": "The upload's offset and length",
          "headers": _headers("Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires",
                              "Upload-Sha256", "Cache-Control")},
    **documented("not-found", "gone", "precondition-failed", "conflict")})
async def upload_offset(upload_id: UploadId, svc: Annotated[Service, Depends(service)], _tus: Tus,
                        who: Uploader) -> Response:
    """How much of the upload the server has (resume from ``Upload-Offset``)."""
    uploads = uploads_of(svc)
    upload = await run_in_threadpool(_find, uploads, upload_id, who)
    if upload.expired or (upload.offset == upload.length and not upload.done):
        with uploads.claim(upload.id):   # a finish a failure interrupted; an expired upload
            upload = await run_in_threadpool(_find, uploads, upload_id, who)
            if upload.expired:
                raise await run_in_threadpool(_gone, uploads, upload)
            if upload.offset == upload.length:
                upload = await run_in_threadpool(uploads.finish, upload)
    headers = {**_state_headers(upload), "Upload-Length": str(upload.length), "Cache-Control": "no-store"}
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    return Response(status_code=200, headers=headers)


@router.patch("/uploads/{upload_id}", status_code=204, response_class=Response, openapi_extra=_BODY,
              responses={
                  204: {"description": "Bytes kept; Upload-Offset is the new offset",
                        "headers": _headers("Upload-Offset", "Upload-Expires", "Upload-Sha256")},
                  **documented("bad-request", "not-found", "conflict", "gone", "precondition-failed",
                               "too-large", "unsupported-media-type", "checksum-mismatch")})
async def upload_bytes(
        upload_id: UploadId, request: Request, svc: Annotated[Service, Depends(service)], _tus: Tus,
        who: Uploader,
        upload_offset: Annotated[str | None, Header(
            description="Where these bytes go: the current offset")] = None,
        upload_checksum: Annotated[str | None, Header(
            description="`sha256 <base64>` of this request's body: kept only if it matches")] = None,
) -> Response:
    """Append bytes at ``Upload-Offset``. The request that completes the file answers once the
    file is stored and attached to the story (``Upload-Sha256``: its SHA-256)."""
    _check_stream(request)
    offset = _length(upload_offset, "Upload-Offset")
    checksum = checksum_digest(upload_checksum) if upload_checksum else None
    uploads = uploads_of(svc)
    with uploads.claim(upload_id):
        upload = await run_in_threadpool(_find, uploads, upload_id, who)
        if upload.expired:
            raise await run_in_threadpool(_gone, uploads, upload)
        if offset != upload.offset:
            raise Problem("conflict", f"Upload-Offset is {offset} but the upload is at {upload.offset};"
                          " go on from there", headers={"Upload-Offset": str(upload.offset)},
                          errors=[("Upload-Offset", f"must be {upload.offset}")])
        _check_room(request, upload)
        if upload.offset == upload.length:
            if _has_body(request):
                raise Problem("too-large", "the upload is complete: no bytes are left to send",
                              errors=[("Content-Length", "must be 0")])
            upload = await run_in_threadpool(uploads.finish, upload)
        else:
            upload = (await uploads.receive(upload, request.stream(), checksum=checksum)).upload
    return Response(status_code=204, headers=_state_headers(upload))


@router.delete("/uploads/{upload_id}", status_code=204, response_class=Response, responses={
    204: {"description": "Removed, with every byte sent"}, **documented("not-found", "conflict",
                                                                           "precondition-failed")})
async def delete_upload(upload_id: UploadId, svc: Annotated[Service, Depends(service)], _tus: Tus,
                        who: Uploader) -> Response:
    """End an upload: its record and every byte in progress are removed (a finished upload's file
    stays attached to the story)."""
    uploads = uploads_of(svc)
    with uploads.claim(upload_id):
        upload = await run_in_threadpool(_find, uploads, upload_id, who)
        await run_in_threadpool(uploads.terminate, upload)
    return Response(status_code=204)
