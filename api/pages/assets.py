"""The pages' static files: our own (``api/pages/static``) and the JavaScript libraries from the
npm registry (``package.json`` pins them; ``npm ci`` puts them in ``node_modules``, never in the
repository). Only the files named here are served, each by a fixed name."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from api.problems import Problem

STATIC = Path(__file__).resolve().parent / "static"

VENDOR = {
    "tus.min.js": "tus-js-client/dist/tus.min.js",
    "hls.min.js": "hls.js/dist/hls.min.js",
    "sha256.umd.min.js": "hash-wasm/dist/sha256.umd.min.js",
}
"""Served name -> path under node_modules."""

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}

router = APIRouter(include_in_schema=False)


def _file(path: Path) -> Response:
    return FileResponse(path, media_type=_TYPES.get(path.suffix, "application/octet-stream"), headers={
        "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


@router.get("/static/vendor/{name}")
async def vendor_file(name: str, request: Request) -> Response:
    relative = VENDOR.get(name)
    if relative is None:
        raise Problem("not-found", "no such file")
    path = request.app.state.service.config.vendor_dir / relative
    if not path.is_file():
        raise Problem("unavailable", f"the pages' library {name} is not installed: run"
                      " `bash scripts/setup.sh` (npm ci) or set STORYMEDIA_VENDOR_DIR")
    return _file(path)


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise Problem("not-found", "no such file")
    return _file(path)
