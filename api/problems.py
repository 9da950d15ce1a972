"""Errors as RFC 9457 problem details (``application/problem+json``).

Every refusal has a stable ``code``, a short ``title`` in English and ``title_vi`` in Vietnamese
(the producers' language), a ``detail`` that says what to do, and for invalid fields the path of
each one (``errors[].path``, e.g. ``assets.2.caption``). No traceback and no secret ever reaches a
response: unexpected errors answer ``internal`` and are logged, redacted, on the service's side.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route

from pipeline.errors import (
    BrokerError,
    ConfigError,
    InvalidPreset,
    InvalidStory,
    LimitExceeded,
    PipelineError,
    StorageError,
    UnsupportedMedia,
)
from pipeline.redaction import redact

log = logging.getLogger("storymedia.api")

MEDIA_TYPE = "application/problem+json"

TITLES: dict[str, tuple[int, str, str]] = {
    # code: (status, English title, Vietnamese title)
    "bad-request": (400, "The request is malformed", "Yêu cầu không hợp lệ"),
    "unauthorized": (401, "A valid token is needed", "Cần mã truy cập hợp lệ"),
    "forbidden": (403, "Your role or desk may not do this", "Vai trò hoặc ban của bạn không được phép"),
    "not-found": (404, "Not found", "Không tìm thấy"),
    "method-not-allowed": (405, "Method not allowed", "Phương thức không được phép"),
    "not-acceptable": (406, "Not acceptable", "Không chấp nhận được"),
    "conflict": (409, "Conflicts with the current state", "Xung đột với trạng thái hiện tại"),
    "missing-files": (409, "Some files of the story are not uploaded yet",
                      "Một số tệp của tin bài chưa được tải lên"),
    "gone": (410, "Gone (expired or deleted)", "Đã hết hạn hoặc đã bị xoá"),
    "precondition-failed": (412, "Precondition failed", "Điều kiện tiên quyết không thoả mãn"),
    "too-large": (413, "The file is too large", "Tệp quá lớn"),
    "unsupported-media-type": (415, "Unsupported content type", "Kiểu nội dung không được hỗ trợ"),
    "invalid": (422, "Some fields are invalid", "Một số trường không hợp lệ"),
    "unsupported-media": (422, "The file is not a supported photo, clip or audio",
                          "Tệp không phải ảnh, video hoặc âm thanh được hỗ trợ"),
    "checksum-mismatch": (460, "The checksum does not match the bytes received",
                          "Mã kiểm tra không khớp với dữ liệu nhận được"),
    "unavailable": (503, "A service behind the API is unreachable; try again shortly",
                    "Một dịch vụ phía sau không phản hồi; vui lòng thử lại sau"),
    "internal": (500, "Internal error", "Lỗi nội bộ"),
}


class FieldError(BaseModel):
    path: str = Field(description="The field, as a dotted path from the document's root (assets.2.caption)")
    message: str


class ProblemBody(BaseModel):
    """RFC 9457 problem details, with storymedia's extensions."""

    type: str
    title: str
    title_vi: str
    status: int
    code: str
    detail: str = ""
    instance: str = ""
    errors: list[FieldError] = Field(default_factory=list)


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, code: str, detail: str = "", *, status: int | None = None,
                 errors: Sequence[tuple[str, str]] = (), headers: dict[str, str] | None = None) -> None:
        if code not in TITLES:
            raise ValueError(f"unknown problem code {code!r}")
        super().__init__(detail or code)
        self.code = code
        self.status = status or TITLES[code][0]
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


def body(code: str, detail: str = "", *, status: int | None = None, instance: str = "",
         errors: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    default_status, title, title_vi = TITLES[code]
    return {"type": f"urn:storymedia:problem:{code}", "title": title, "title_vi": title_vi,
            "status": status or default_status, "code": code, "detail": redact(detail),
            "instance": instance,
            "errors": [{"path": path, "message": redact(message)} for path, message in errors]}


def response(problem: Problem, instance: str = "") -> JSONResponse:
    return JSONResponse(body(problem.code, problem.detail, status=problem.status, instance=instance,
                             errors=problem.errors),
                        status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers)


def field_path(location: Sequence[int | str]) -> str:
    """``("body", "assets", 2, "caption")`` -> ``assets.2.caption`` (where the request put it
    stays out: a producer knows the document, not FastAPI's ``body``)."""
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


def validation_errors(errors: Sequence[Any]) -> list[tuple[str, str]]:
    """(path, message) of each invalid field; a list is not also blamed for the item it lost."""
    found = []
    for error in errors:
        message = str(error.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        found.append((field_path(error.get("loc", ())), message))
    paths = [path for path, _ in found]
    return [(path, message) for path, message in found
            if not any(other.startswith(path + ".") for other in paths)]


def from_pipeline(exc: PipelineError) -> Problem:
    """The problem for a library error."""
    if isinstance(exc, InvalidStory | InvalidPreset):
        return Problem("invalid", exc.reason)
    if isinstance(exc, LimitExceeded):
        return Problem("too-large", exc.reason)
    if isinstance(exc, UnsupportedMedia):
        return Problem("unsupported-media", exc.reason)
    if isinstance(exc, BrokerError | StorageError):
        return Problem("unavailable", exc.reason, headers={"Retry-After": "5"})
    if isinstance(exc, ConfigError):
        return Problem("internal", "the service is misconfigured; see its log")
    return Problem("internal", exc.reason)


_STATUS_CODES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 406: "not-acceptable", 409: "conflict", 410: "gone",
                 412: "precondition-failed", 413: "too-large", 415: "unsupported-media-type",
                 422: "invalid"}


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc.errors())
        detail = "; ".join(f"{path}: {message}" for path, message in errors[:5])
        return response(Problem("invalid", detail, errors=errors), request.url.path)

    @app.exception_handler(ValidationError)
    async def _model_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        errors = validation_errors(exc.errors())
        detail = "; ".join(f"{path}: {message}" for path, message in errors[:5])
        return response(Problem("invalid", detail, errors=errors), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "internal" if exc.status_code >= 500 else "bad-request")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail not in TITLES else ""
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path only.
            headers["Allow"] = ", ".join(allowed_methods(app, request))
            detail = f"{request.method} is not allowed here; use {headers['Allow']}"
        return response(Problem(code, detail, status=exc.status_code, headers=headers), request.url.path)

    @app.exception_handler(PipelineError)
    async def _pipeline(request: Request, exc: PipelineError) -> JSONResponse:
        problem = from_pipeline(exc)
        if problem.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, redact(exc.reason))
        return response(problem, request.url.path)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__,
                  redact(str(exc)), exc_info=exc)
        return response(Problem("internal", "the service failed on this request; it is logged"),
                        request.url.path)


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route of ``app`` answers at the request's path."""
    scope = {**request.scope, "method": "GET"}
    methods: set[str] = set()

    def look(routes: list[BaseRoute]) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)   # FastAPI's wrapper of a router
            if included is not None:
                look(included.routes)
            elif isinstance(route, Route) and route.matches(scope)[0] is not Match.NONE:
                methods.update(route.methods or ())

    look(app.router.routes)
    return sorted(methods)


def documented(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these problem codes (for a route's decorator)."""
    found: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        status = TITLES[code][0]
        found[status] = {"model": ProblemBody, "content": {MEDIA_TYPE: {}},
                         "description": TITLES[code][1]}
    return found


COMMON = documented("bad-request", "unauthorized", "forbidden", "invalid", "unavailable", "internal")
"""The problems any authenticated route may answer."""
