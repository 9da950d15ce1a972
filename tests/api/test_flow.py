"""The whole flow over HTTP, as the CMS and a producer's uploader do it, on the embedded service
served by a real uvicorn: create the sample story, upload every file with the independent tus
client ``tuspy`` (one upload cut off mid-way and resumed from ``Upload-Offset``), submit, follow
the job's Server-Sent Events to the end, fetch the manifest with presigned URLs, download one
rendition through its URL, and compare the manifest with ``storymedia run``'s on the same story.

The helpers here are the flow itself; tests/cluster/test_api_flow.py runs the same flow against a
service in front of the cluster.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tusclient.client import TusClient
from tusclient.uploader.uploader import Uploader

from tests.api.harness import LiveServer, Service

FLOW_TIMEOUT = 900.0
"""Seconds the sample story may take from submit to its final state (two shared cores)."""

VOLATILE = ("generated_at", "job", "version")

JOB_STATES = ("queued", "running", "complete", "partial", "failed", "canceled")
ASSET_STATES = ("pending", "probing", "rendering", "storing", "done", "failed", "canceled")


class Sha256Uploader(Uploader):
    """tuspy's uploader with the checksum the service speaks (tus checksum extension, sha256)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sample_story_json(story_file: Path) -> dict[str, Any]:
    """The story file as the JSON document ``POST /v1/stories`` takes (TOML dates as ISO 8601)."""
    document = tomllib.loads(story_file.read_text("utf-8"))
    text = json.dumps(document, ensure_ascii=False, default=lambda value: value.isoformat())
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def files_of(story: dict[str, Any]) -> list[str]:
    """Every file the story names (assets, then subtitles), once each, in order."""
    names: list[str] = []
    for asset in story["assets"]:
        for name in (asset["file"], asset.get("subtitles")):
            if name and name not in names:
                names.append(name)
    return names


# uploads ---------------------------------------------------------------------------------------

def upload(base_url: str, headers: dict[str, str], story_id: str, name: str, path: Path,
           url: str | None = None) -> Sha256Uploader:
    """Upload ``path`` as the story's file ``name`` with tuspy (4 MiB chunks, each checksummed);
    with ``url``, resume that upload from the offset the server reports."""
    client = TusClient(f"{base_url}/v1/uploads", headers=dict(headers))
    with path.open("rb") as stream:
        uploader = Sha256Uploader(file_stream=stream, client=client, url=url, chunk_size=4 << 20,
                                  metadata={"story": story_id, "file": name}, upload_checksum=True,
                                  retries=3, retry_delay=1)
        uploader.upload()
    return uploader


def drop_mid_patch(upload_url: str, headers: dict[str, str], path: Path, send: int) -> None:
    """A PATCH that declares the whole file but sends only its first ``send`` bytes, then the
    connection is reset (a producer's train going into a tunnel)."""
    parts = urlsplit(upload_url)
    data = path.read_bytes()[:send]
    lines = [f"PATCH {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Tus-Resumable: 1.0.0",
             "Content-Type: application/offset+octet-stream", "Upload-Offset: 0",
             f"Content-Length: {path.stat().st_size}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        sock.sendall(data)
        time.sleep(1.0)     # the server has read what was sent
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # RST, not FIN


def settled_offset(http: httpx.Client, upload_url: str, timeout: float = 30) -> int:
    """``Upload-Offset`` once the server has finished with the dropped request (the same twice)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        head = http.head(upload_url, headers={"Tus-Resumable": "1.0.0"})
        if head.status_code == 200:
            offset = int(head.headers["upload-offset"])
            if offset == last and offset > 0:
                return offset
            last = offset
        time.sleep(0.5)
    raise AssertionError(f"the upload's offset did not settle (last {last}, HEAD {head.status_code})")


def upload_story_files(base_url: str, headers: dict[str, str], story_id: str, root: Path,
                       names: list[str], interrupted: str) -> int:
    """Every file uploaded; ``interrupted`` is cut off mid-way, then resumed. Returns the offset
    the resumed upload started from."""
    resumed_from = -1
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        for name in names:
            path = root / name
            if name != interrupted:
                upload(base_url, headers, story_id, name, path)
                continue
            client = TusClient(f"{base_url}/v1/uploads", headers=dict(headers))
            with path.open("rb") as stream:
                first = Sha256Uploader(file_stream=stream, client=client,
                                       metadata={"story": story_id, "file": name})
                upload_url = first.create_url()
            size = path.stat().st_size
            drop_mid_patch(upload_url, headers, path, size // 2)
            offset = settled_offset(http, upload_url)
            assert 0 < offset <= size // 2, f"kept {offset} of the {size // 2} bytes sent"
            resumed = upload(base_url, headers, story_id, name, path, url=upload_url)
            resumed_from = offset
            assert resumed.offset == size
    return resumed_from


# events ----------------------------------------------------------------------------------------

@dataclass
class Followed:
    """What the event stream said: every ``job`` event's data, and the comments seen."""

    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        return self.events[-1]

    def job_states(self) -> list[str]:
        states: list[str] = []
        for event in self.events:
            if not states or states[-1] != event["state"]:
                states.append(event["state"])
        return states

    def asset_states(self, order: int) -> list[str]:
        states: list[str] = []
        for event in self.events:
            state = next(a["state"] for a in event["assets"] if a["order"] == order)
            if not states or states[-1] != state:
                states.append(state)
        return states


def sse_messages(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) of each message of a ``text/event-stream`` (comments skipped)."""
    event, data = "message", list[str]()
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def follow(base_url: str, headers: dict[str, str], job_id: str, timeout: float = FLOW_TIMEOUT) -> Followed:
    """Read the job's events until the stream ends after the final state."""
    followed = Followed()
    deadline = time.monotonic() + timeout
    with (httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(30, read=60)) as http,
          http.stream("GET", f"/v1/jobs/{job_id}/events") as response):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event, data in sse_messages(response.iter_lines()):
            assert time.monotonic() < deadline, f"no final state after {timeout:.0f} s"
            assert event == "job"
            followed.events.append(json.loads(data))
    assert followed.events, "the stream ended without an event"
    return followed


# manifests -------------------------------------------------------------------------------------

def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what differs between two runs of the same story: its job, time and
    version, and a clip's encoded bytes (x264's rate control with threads depends on timing, the
    XDCAM MXF's UMID is random per render): for clips, everything but checksums and sizes."""
    document = json.loads(json.dumps(document))
    for key in VOLATILE:
        document.pop(key)
    document["summary"].pop("bytes")
    for asset in document["assets"]:
        if asset["kind"] != "video":
            continue
        for rendition in asset["renditions"]:
            for key in ("sha256", "bytes", "bitrate"):
                rendition.pop(key, None)
            for part in [*rendition.get("segments", []), *rendition.get("playlists", [])]:
                part.pop("sha256")
                part.pop("bytes")
    return document


def differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """Paths where two JSON documents differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from differences(a.get(key), b.get(key), f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from differences(x, y, f"{path}[{index}]")
    elif a != b:
        yield f"{path}: {a!r} != {b!r}"[:300]


def expected_manifest(out: Path) -> dict[str, Any]:
    """The manifest ``storymedia run`` wrote for the sample story."""
    (local,) = (out / "stories").glob("*/manifest.json")
    loaded: dict[str, Any] = json.loads(local.read_text("utf-8"))
    return loaded


# the flow --------------------------------------------------------------------------------------

@dataclass
class Published:
    manifest: dict[str, Any]
    """The manifest as the service serves it."""
    urls: list[str]
    """Its presigned rendition URLs."""


def sample_story_over_http(base_url: str, service: Service, root: Path) -> Published:
    """The sample story from creation to a downloaded rendition, every step checked."""
    story = sample_story_json(root / "story.toml")
    story_id = story["story"]["id"]
    names = files_of(story)
    producer = service.auth("producer")
    with httpx.Client(base_url=base_url, headers=producer, timeout=60) as http:
        created = http.post("/v1/stories", json=story)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == f"/v1/stories/{story_id}"
        assert [(f["file"], f["uploaded"]) for f in created.json()["files"]] == [(n, False) for n in names]

        clip = next(name for name in names if name.endswith(".mp4"))
        resumed_from = upload_story_files(base_url, producer, story_id, root, names, interrupted=clip)
        assert resumed_from > 0, "the cut-off upload was resumed, not started again"

        shown = http.get(f"/v1/stories/{story_id}").json()
        assert [(f["file"], f["uploaded"], f["sha256"], f["bytes"]) for f in shown["files"]] == [
            (name, True, sha256_of(root / name), (root / name).stat().st_size) for name in names]

        submitted = http.post(f"/v1/stories/{story_id}/jobs", headers={"Idempotency-Key": "flow-1"})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert submitted.json()["events"] == f"/v1/jobs/{job_id}/events"
        again = http.post(f"/v1/stories/{story_id}/jobs", headers={"Idempotency-Key": "flow-1"})
        assert again.status_code == 200 and again.json()["id"] == job_id, again.text

        followed = follow(base_url, producer, job_id)
        states = followed.job_states()
        assert states[-1] == "complete", (states, followed.final)
        assert all(state in JOB_STATES for state in states), states
        assert len(followed.events) > 1, "the stream told the job's progress, not only its end"
        assert followed.final["final"] is True and followed.final["manifest_version"] == 1
        assert [a["state"] for a in followed.final["assets"]] == ["done"] * len(story["assets"])
        for asset in followed.final["assets"]:
            seen = followed.asset_states(asset["order"])
            assert all(state in ASSET_STATES for state in seen), seen
            assert seen[-1] == "done"
        status = http.get(f"/v1/jobs/{job_id}").json()
        assert status["state"] == "complete" and status["final"] is True

        plain = http.get(f"/v1/stories/{story_id}/manifest")
        assert plain.status_code == 200, plain.text
        assert plain.headers["etag"] == '"' + hashlib.sha256(plain.content).hexdigest() + '"'
        assert http.get(f"/v1/stories/{story_id}/manifest",
                        headers={"If-None-Match": plain.headers["etag"]}).status_code == 304
        document: dict[str, Any] = plain.json()

        editor = service.auth("editor")
        signed = http.get(f"/v1/stories/{story_id}/manifest", params={"presign": 1, "expires": 600},
                          headers=editor)
        assert signed.status_code == 200, signed.text
    presigned = signed.json()
    renditions = [r for a in presigned["assets"] for r in a["renditions"]]
    assert all(r["url"] != r["key"] and r["url"].startswith("http") for r in renditions)
    picked = next(r for r in renditions if r["mime"] == "image/webp")
    fetched = httpx.get(picked["url"], timeout=60)     # no token: the URL is the permission
    assert fetched.status_code == 200, fetched.text
    assert hashlib.sha256(fetched.content).hexdigest() == picked["sha256"]
    assert len(fetched.content) == picked["bytes"]
    return Published(document, [r["url"] for r in renditions])


def test_the_sample_story_over_http_equals_storymedia_run(
        service: Service, live: LiveServer, sample_run: tuple[Path, Path, Any]) -> None:
    root, out, embedded = sample_run
    assert embedded.returncode == 0, embedded.stdout + embedded.stderr
    published = sample_story_over_http(live.url, service, root)
    document = published.manifest
    assert all(url.startswith(f"{live.url}/v1/files/renditions/") and "signature=" in url
               for url in published.urls)
    assert list(differences(comparable(document), comparable(expected_manifest(out)))) == []
    public = service.config.public_dir
    assert not list(public.rglob("raw")), "the originals stay in the private area"
    stored = {p.relative_to(public).as_posix() for p in (public / "renditions").rglob("*") if p.is_file()}
    named = {r["key"] for a in document["assets"] for r in a["renditions"]}
    assert named <= stored
