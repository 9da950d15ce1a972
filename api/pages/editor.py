"""The web editor's page (``/stories/{id}``): the finished story as the website will show it, each
rendition with a URL to copy, ready-to-paste HTML, what changed between manifest versions, and a
preset's renditions as one zip.

Editors and operators read every story; a producer only their desk's (read only: the page changes
nothing). The manifest is read through the same functions as the API (``pipeline.model.manifest``),
so only renditions are ever named: a story's raw files have no key in a manifest.

URLs: the store's public URL where it has one, else a presigned one (the embedded service signs its
own ``/v1/files/...`` URLs), valid for :data:`LINK_SECONDS`. HLS needs every playlist and segment
signed on its own (a relative URL inside a playlist loses the signature), so the page's script gets
a map from each object's path to its URL and hands it to hls.js.

The zip is streamed: ``zipfile`` writes stored entries (no recompression of JPEG or MP4) with data
descriptors into :class:`_Spool`, which the response drains after every chunk read from the store;
each object's SHA-256 is checked on the way, and a mismatch ends the download with an error
instead of a wrong file.
"""

from __future__ import annotations

import hashlib
import html
import io
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Path, Request
from starlette.responses import Response, StreamingResponse

from api import records
from api.auth import Principal
from api.pages import i18n
from api.pages.access import PageDenied, not_found, reader
from api.pages.render import language, page, security_headers
from api.service import Service
from pipeline.errors import StorageError
from pipeline.model import manifest as manifests
from pipeline.model.keys import manifest_version_key
from pipeline.model.manifest_types import asset_entry
from pipeline.storage import Storage
from pipeline.storage.base import PartUploads

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

ROLES = ("editor", "operator", "producer")
LINK_SECONDS = 24 * 3600
"""How long a presigned URL on the page (and in its snippets) stays valid."""
VERSIONS_SHOWN = 20
"""Manifest versions compared on the page, newest first."""
PREVIEW_PRESET = "web"
SIZES = "(min-width: 50rem) 46rem, calc(100vw - 3rem)"
"""The photo's slot in the preview column (editor.css: ``.preview`` is 46rem wide inside its
padding; on a phone the page and the column keep 1.5rem each side)."""

StoryId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,127}$", max_length=128)]
PresetName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}(@[0-9]{1,6})?$", max_length=72)]


# reading the story ---------------------------------------------------------------------------

@dataclass
class Story:
    """What the page shows: the story's record (None for a story the service did not create) and
    its current manifest (None before its first job finished)."""

    id: str
    record: records.StoryRecord | None
    manifest: dict[str, Any] | None


def _read(request: Request, story_id: str, who: Principal) -> Story:
    """The story if the reader may see it (PageDenied: 404 page, or 403 for another desk)."""
    svc: Service = request.app.state.service
    record = records.read_story(svc.backend.private, story_id)
    current = manifests.read_current(svc.backend.public, story_id)
    if record is None and current is None:
        raise PageDenied(not_found(request, who))
    desk = record.desk if record is not None else None
    if who.role == "producer" and (desk is None or not who.may_see_desk(desk)):
        raise PageDenied(page(request, "error.html", who=who, status=403, message_key="error.forbidden"))
    return Story(id=story_id, record=record, manifest=current)


def preset_base(label: str) -> str:
    """``web@1`` -> ``web``."""
    return label.partition("@")[0]


class Links:
    """A URL per key: the store's public URL when it has one, else a presigned one."""

    def __init__(self, request: Request, seconds: int = LINK_SECONDS) -> None:
        self.svc: Service = request.app.state.service
        self.base = str(request.base_url).rstrip("/")
        self.seconds = seconds
        self.until = datetime.now(UTC) + timedelta(seconds=seconds)
        probe = self.svc.backend.public.public_url("renditions/x")
        self.presigned = not probe.startswith(("http://", "https://"))

    def url(self, key: str) -> str:
        if not self.presigned:
            return self.svc.backend.public.public_url(key)
        signed = self.svc.backend.presign(key, self.seconds)
        return self.base + signed if signed.startswith("/") else signed


def url_path(url: str) -> str:
    """The decoded path of ``url`` (how editor.js finds an HLS object's URL from the one hls.js
    resolved against its playlist)."""
    return unquote(urlsplit(url).path)


# formatting ----------------------------------------------------------------------------------

def size_text(count: int, lang: str) -> str:
    """Bytes for people: ``120,6 KB`` in Vietnamese, ``120.6 KB`` in English."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            text = f"{value:.0f}" if unit == "B" else f"{value:.1f}"
            return f"{text.replace('.', ',') if lang == 'vi' else text} {unit}"
        value /= 1000
    return f"{count} B"


def when_text(value: str, lang: str) -> str:
    """An ISO 8601 time as ``12/09/2023 21:15`` (Vietnamese) or ``2023-09-12 21:15``."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%d/%m/%Y %H:%M" if lang == "vi" else "%Y-%m-%d %H:%M")


# snippets ------------------------------------------------------------------------------------

def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def srcset(renditions: list[dict[str, Any]], links: Links) -> str:
    ordered = sorted(renditions, key=lambda r: r["width"])
    return ", ".join(f"{links.url(r['key'])} {r['width']}w" for r in ordered)


def picture_snippet(asset: dict[str, Any], images: dict[str, list[dict[str, Any]]], links: Links,
                    credit_word: str) -> str:
    """``<figure><picture>`` with WebP and JPEG sources, the caption as alt and figcaption; every
    value escaped (a caption may hold quotes or ``<script>``)."""
    jpeg, webp = images.get("image/jpeg", []), images.get("image/webp", [])
    fallback = (jpeg or webp)
    middle = sorted(fallback, key=lambda r: r["width"])[len(fallback) // 2] if fallback else None
    lines = ["<figure>", "  <picture>"]
    for mime, found in (("image/webp", webp), ("image/jpeg", jpeg)):
        if found:
            lines.append(f'    <source type="{mime}" srcset="{_attr(srcset(found, links))}"'
                         f' sizes="{_attr(SIZES)}">')
    if middle is not None:
        lines.append(f'    <img src="{_attr(links.url(middle["key"]))}" width="{middle["width"]}"'
                     f' height="{middle["height"]}" alt="{_attr(asset["caption"])}" loading="lazy"'
                     ' decoding="async">')
    lines.append("  </picture>")
    caption = html.escape(asset["caption"], quote=False)
    if asset.get("credit"):
        credit = f"{credit_word}: {asset['credit']}"
        caption += f" <small>{html.escape(credit, quote=False)}</small>"
    lines += [f"  <figcaption>{caption}</figcaption>", "</figure>"]
    return "\n".join(lines)


def video_snippet(asset: dict[str, Any], clip: Clip, links: Links, story_lang: str, label: str) -> str:
    """``<video>`` with the HLS source, the MP4 fallback, the poster and the captions track."""
    attrs = ['controls', 'playsinline', 'preload="metadata"']
    if clip.poster:
        attrs.append(f'poster="{_attr(links.url(clip.poster["key"]))}"')
    if clip.width and clip.height:
        attrs += [f'width="{clip.width}"', f'height="{clip.height}"']
    lines = [f"<figure>\n  <video {' '.join(attrs)}>"]
    if clip.hls:
        lines.append(f'    <source src="{_attr(links.url(clip.hls["key"]))}"'
                     ' type="application/vnd.apple.mpegurl">')
    if clip.mp4:
        lines.append(f'    <source src="{_attr(links.url(clip.mp4["key"]))}" type="video/mp4">')
    if clip.captions:
        lines.append(f'    <track kind="subtitles" src="{_attr(links.url(clip.captions["key"]))}"'
                     f' srclang="{_attr(story_lang)}" label="{_attr(label)}" default>')
    lines.append("  </video>")
    lines += [f"  <figcaption>{html.escape(asset['caption'], quote=False)}</figcaption>", "</figure>"]
    return "\n".join(lines)


# the page's view of each asset ---------------------------------------------------------------

@dataclass
class Clip:
    hls: dict[str, Any] | None = None
    mp4: dict[str, Any] | None = None
    poster: dict[str, Any] | None = None
    captions: dict[str, Any] | None = None
    width: int = 0
    height: int = 0
    hls_urls: dict[str, str] = field(default_factory=dict)
    """Decoded path -> URL of every HLS playlist and segment (for hls.js)."""


def _preview_preset(asset: dict[str, Any]) -> str | None:
    labels = [r["preset"] for r in asset["renditions"]]
    for label in labels:
        if preset_base(label) == PREVIEW_PRESET:
            return str(label)
    return str(labels[0]) if labels else None


def _clip(renditions: list[dict[str, Any]], links: Links) -> Clip:
    clip = Clip()
    mp4s = [r for r in renditions if r["mime"] == "video/mp4"]
    if mp4s:   # the smallest frame that is still the largest the website offers: 720p when there is one
        clip.mp4 = min(mp4s, key=lambda r: (abs(r["height"] - 720), r["bytes"]))
    for rendition in renditions:
        if "variants" in rendition and clip.hls is None:
            clip.hls = rendition
            for part in [rendition, *rendition["segments"], *rendition["playlists"]]:
                url = links.url(part["key"])
                clip.hls_urls[url_path(url)] = url
        elif rendition["mime"] == "image/jpeg" and "layout" not in rendition and clip.poster is None:
            clip.poster = rendition
        elif "cues" in rendition and clip.captions is None:
            clip.captions = rendition
    main = clip.hls or clip.mp4
    if main is not None:
        clip.width, clip.height = int(main.get("width", 0)), int(main.get("height", 0))
    return clip


def asset_view(asset: dict[str, Any], links: Links, lang: str, story_lang: str) -> dict[str, Any]:
    """One asset as the template shows it."""
    label = _preview_preset(asset)
    preview = [r for r in asset["renditions"] if r["preset"] == label]
    view: dict[str, Any] = {"asset": asset, "kind": asset["kind"], "snippet": "", "images": {},
                            "clip": None, "audio": None, "rows": [], "presets": []}
    for rendition in asset["renditions"]:
        size = (f"{rendition['width']}×{rendition['height']}"
                if "width" in rendition and "height" in rendition else "")
        parts = len(rendition.get("segments", ())) + len(rendition.get("playlists", ())) + len(
            rendition.get("sheets", ()))
        view["rows"].append({"r": rendition, "size": size, "bytes": size_text(rendition["bytes"], lang),
                             "url": links.url(rendition["key"]), "parts": parts})
        if rendition["preset"] not in view["presets"]:
            view["presets"].append(rendition["preset"])
    credit_word = i18n.message(lang, "editor.credit.image")
    if asset["kind"] == "image":
        images: dict[str, list[dict[str, Any]]] = {}
        for rendition in preview:
            if rendition["mime"] in ("image/jpeg", "image/webp", "image/avif") and "layout" in rendition:
                images.setdefault(rendition["mime"], []).append(rendition)
        if images:
            fallback = images.get("image/jpeg") or next(iter(images.values()))
            smallest = min(fallback, key=lambda r: r["width"])
            largest = max(fallback, key=lambda r: r["width"])
            view["images"] = {
                "sources": [{"type": mime, "srcset": srcset(found, links)}
                            for mime, found in sorted(images.items()) if found is not fallback],
                "srcset": srcset(fallback, links), "src": links.url(smallest["key"]),
                "width": largest["width"], "height": largest["height"], "sizes": SIZES}
            view["snippet"] = picture_snippet(asset, images, links, credit_word)
    elif asset["kind"] == "video":
        clip = _clip(preview, links)
        if clip.hls or clip.mp4:
            view["clip"] = {"hls": links.url(clip.hls["key"]) if clip.hls else "",
                            "mp4": links.url(clip.mp4["key"]) if clip.mp4 else "",
                            "poster": links.url(clip.poster["key"]) if clip.poster else "",
                            "captions": links.url(clip.captions["key"]) if clip.captions else "",
                            "width": clip.width, "height": clip.height, "hls_urls": clip.hls_urls}
            view["snippet"] = video_snippet(asset, clip, links, story_lang,
                                            i18n.message(lang, "lang." + story_lang)
                                            if story_lang in i18n.LANGS else story_lang)
    elif asset["kind"] == "audio":
        sounds = [r for r in preview if str(r["mime"]).startswith("audio/")]
        if sounds:
            view["audio"] = {"src": links.url(sounds[0]["key"]), "mime": sounds[0]["mime"]}
            view["snippet"] = (f'<audio controls preload="none" src="{_attr(view["audio"]["src"])}"'
                               f' type="{_attr(sounds[0]["mime"])}"></audio>')
    return view


# what changed between versions ---------------------------------------------------------------

def _rendition_ids(asset: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["preset"], r["name"], r["mime"]): r for r in asset.get("renditions", [])}


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed from ``before`` to ``after`` (two manifests), as items the template words:
    ``{"what": "asset-added" | "asset-removed" | "caption" | "credit" | "status" |
    "rendition-added" | "rendition-removed" | "rendition-changed", ...}``. Assets are matched by
    id, then by file name when it is unique on both sides (a replaced file); renditions by
    preset, name and type, and "changed" means another SHA-256."""
    old = [a for a in (before or {}).get("assets", [])]
    new = list(after.get("assets", []))
    pairs: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
    old_by_id = {a["id"]: a for a in old}
    matched: set[str] = set()
    unmatched_new = []
    for asset in new:
        if asset["id"] in old_by_id:
            pairs.append((old_by_id[asset["id"]], asset))
            matched.add(asset["id"])
        else:
            unmatched_new.append(asset)
    rest = [a for a in old if a["id"] not in matched]
    names_old = [a["filename"] for a in rest]
    names_new = [a["filename"] for a in unmatched_new]
    for asset in unmatched_new:
        twin = next((a for a in rest if a["filename"] == asset["filename"]), None)
        unique = names_old.count(asset["filename"]) == 1 and names_new.count(asset["filename"]) == 1
        if twin is not None and unique:
            pairs.append((twin, asset))
            rest.remove(twin)
        else:
            pairs.append((None, asset))
    pairs += [(a, None) for a in rest]
    items: list[dict[str, Any]] = []
    for was, now in pairs:
        if was is None or now is None:
            gone = now is None
            one = was if gone else now
            assert one is not None
            items.append({"what": "asset-removed" if gone else "asset-added", "file": one["filename"],
                          "count": len(one["renditions"])})
            continue
        label = now["filename"]
        if was["id"] != now["id"]:
            items.append({"what": "file-replaced", "file": label})
        for name in ("caption", "credit"):
            if was.get(name) != now.get(name):
                items.append({"what": name, "file": label, "before": was.get(name, ""),
                              "after": now.get(name, "")})
        if was.get("status") != now.get("status"):
            items.append({"what": "status", "file": label, "before": was.get("status"),
                          "after": now.get("status")})
        old_r, new_r = _rendition_ids(was), _rendition_ids(now)
        for ident, rendition in new_r.items():
            if ident not in old_r:
                items.append({"what": "rendition-added", "file": label, "rendition": _label(rendition)})
            elif old_r[ident]["sha256"] != rendition["sha256"]:
                items.append({"what": "rendition-changed", "file": label, "rendition": _label(rendition),
                              "before": old_r[ident]["sha256"], "after": rendition["sha256"]})
        for ident, rendition in old_r.items():
            if ident not in new_r:
                items.append({"what": "rendition-removed", "file": label, "rendition": _label(rendition)})
    return items


def _label(rendition: dict[str, Any]) -> str:
    extension = rendition["key"].rsplit(".", 1)[-1]
    return f"{rendition['preset']} · {rendition['name']} ({extension})"


def versions_view(svc: Service, story_id: str, lang: str) -> list[dict[str, Any]]:
    """The newest :data:`VERSIONS_SHOWN` versions, each with its changes from the one before (read
    with ``pipeline.model.manifest``, as ``GET /v1/stories/{id}/manifest/versions/{n}`` does)."""
    store = svc.backend.public
    numbers = manifests.versions(store, story_id)
    shown = numbers[-VERSIONS_SHOWN:]
    documents: dict[int, dict[str, Any] | None] = {}
    for number in [n for n in numbers if n >= (shown[0] - 1 if shown else 0)]:
        try:
            documents[number] = manifests.read(store, manifest_version_key(story_id, number))
        except StorageError as exc:
            log.warning("manifest version unreadable", extra={"story": story_id, "version": number,
                                                               "error": str(exc)[:200]})
            documents[number] = None
    views = []
    for number in reversed(shown):
        document = documents.get(number)
        index = numbers.index(number)
        previous = documents.get(numbers[index - 1]) if index > 0 else None
        views.append({
            "number": number, "readable": document is not None,
            "generated": when_text(document["generated_at"], lang) if document else "",
            "status": document["status"] if document else "",
            "first": index == 0,
            "changes": changes(previous, document) if document is not None else []})
    return views


# the page ------------------------------------------------------------------------------------

@router.get("/stories/{story_id}")
def editor_page(story_id: StoryId, request: Request) -> Response:
    who = reader(request, *ROLES)
    story = _read(request, story_id, who)
    svc: Service = request.app.state.service
    lang = language(request)
    links = Links(request)
    document = story.manifest
    title = (document["story"]["title"] if document else
             story.record.story.story.title if story.record else story_id)
    context: dict[str, Any] = {"story_id": story_id, "title": title, "document": document,
                               "desk": story.record.desk if story.record else "", "assets": [],
                               "presets": [], "versions": [], "links_until": "", "presigned": links.presigned}
    if document is not None:
        story_lang = str(document["story"].get("language") or "vi")
        context["assets"] = [asset_view(asset, links, lang, story_lang) for asset in document["assets"]]
        context["presets"] = preset_totals(document, lang)
        context["versions"] = versions_view(svc, story_id, lang)
        context["published"] = when_text(document["story"]["published"], lang)
        context["generated"] = when_text(document["generated_at"], lang)
        context["total"] = size_text(document["summary"]["bytes"], lang)
        until = links.until.astimezone()
        context["links_until"] = f"{when_text(until.isoformat(), lang)} (UTC{until.isoformat()[-6:]})"
    return page(request, "editor.html", who=who, **context)


def preset_totals(document: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    """Each preset of the manifest with how many files and bytes its zip holds."""
    names = sorted({preset_base(r["preset"]) for a in document["assets"] for r in a["renditions"]})
    totals = []
    for name in names:
        members = zip_members(document, name)
        totals.append({"name": name, "files": len(members),
                       "bytes": size_text(sum(int(part["bytes"]) for _, part in members), lang)})
    return totals


# the zip -------------------------------------------------------------------------------------

class _Spool(io.RawIOBase):
    """A write-only, unseekable stream the zip is written into and drained from by ``take``:
    what it holds at once is one chunk of a rendition (or a header), never the zip."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self.held = 0
        self.most = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self.held += len(chunk)
        self.most = max(self.most, self.held)
        return len(chunk)

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        self.held = 0
        return out


class RenditionMismatch(StorageError):
    """A stored object's bytes are not what the manifest says."""


def zip_members(document: dict[str, Any], preset: str) -> list[tuple[str, dict[str, Any]]]:
    """(name in the zip, stored object) for every object of ``preset``'s renditions (``web`` or
    ``web@1``), once each; names are the keys without ``renditions/``."""
    members: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for asset in document["assets"]:
        entry = asset_entry(asset)   # checked types: keys come from a validated manifest
        for rendition in entry.renditions:
            if rendition.preset != preset and preset_base(rendition.preset) != preset:
                continue
            for part in rendition.objects():
                if (part.key in seen or not part.key.startswith("renditions/")
                        or ".." in part.key.split("/") or "\\" in part.key):
                    continue
                seen.add(part.key)
                members.append((part.key.removeprefix("renditions/"), part.to_json()))
    return members


def zip_stream(svc: Service, members: list[tuple[str, dict[str, Any]]],
               when: tuple[int, int, int, int, int, int]) -> Iterator[bytes]:
    """The zip of ``members``, a chunk at a time."""
    spool = _Spool()
    store = svc.backend.public
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, part in members:
            info = zipfile.ZipInfo(name, date_time=when)
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = int(part["bytes"])   # zip64 headers when it is large
            digest = hashlib.sha256()
            with archive.open(info, "w") as entry:
                for chunk in _chunks(store, part["key"]):
                    digest.update(chunk)
                    entry.write(chunk)
                    yield spool.take()
            if digest.hexdigest() != part["sha256"]:
                log.error("rendition does not match its manifest", extra={"key": part["key"]})
                raise RenditionMismatch(f"{part['key']} does not match the manifest's SHA-256")
            yield spool.take()
    yield spool.take()


def _chunks(store: Storage, key: str) -> Iterator[bytes]:
    """The object a chunk at a time (every store the service runs on reads so; the in-memory
    store of some tests holds it whole anyway)."""
    if isinstance(store, PartUploads):
        return store.read_chunks(key)
    return iter([store.get_bytes(key)])


_SAFE_NAME = re.compile(r"[^a-z0-9@_-]")


@router.get("/stories/{story_id}/presets/{preset}.zip")
def preset_zip(story_id: StoryId, preset: PresetName, request: Request) -> Response:
    """Every rendition of one preset of the story's current manifest, as a zip streamed as it is
    read from the store."""
    who = reader(request, *ROLES)
    story = _read(request, story_id, who)
    svc: Service = request.app.state.service
    document = story.manifest
    members = zip_members(document, preset) if document is not None else []
    if document is None or not members:
        raise PageDenied(not_found(request, who))
    try:
        stamp = datetime.fromisoformat(document["generated_at"])
        when = (max(stamp.year, 1980), stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    except ValueError:
        when = (1980, 1, 1, 0, 0, 0)
    filename = f"{story_id}-{_SAFE_NAME.sub('-', preset)}.zip"
    headers = {**security_headers(request), "Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(chunks_only(zip_stream(svc, members, when)), media_type="application/zip",
                             headers=headers)


def chunks_only(stream: Iterator[bytes]) -> Iterator[bytes]:
    """``stream`` without its empty chunks (each would be an empty write to the socket)."""
    return (chunk for chunk in stream if chunk)
