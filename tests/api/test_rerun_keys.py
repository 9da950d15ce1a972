"""A re-run never writes over an object that a manifest version names: on the embedded service, the
re-run asset's renditions land on keys of their own, every manifest version still checks out
(every object it names is stored with its SHA-256), and a later job reuses the newest renditions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from pipeline.model import manifest
from pipeline.run import jobs
from pipeline.storage import LocalStorage
from tests.api.harness import Service
from tests.api.test_operations import (
    CLIP,
    PHOTOS,
    STORY,
    areas,
    media,
    nothing_half_stored,
    submit,
    wait_final,
)


def version(public: LocalStorage, number: int) -> dict[str, Any]:
    return manifest.read(public, f"stories/{STORY}/manifest.v{number}.json")


def keys_by_order(document: dict[str, Any]) -> dict[int, set[str]]:
    """Every object key each asset's entry names (main files, segments, playlists, sheets)."""
    return {int(a["order"]): {o.key for o in manifest.objects([a])} for a in document["assets"]}


def checks_out(public: LocalStorage, document: dict[str, Any]) -> None:
    """Every object the manifest names is stored and its bytes hash to the SHA-256 it publishes."""
    named = manifest.objects(document["assets"])
    assert named, "the manifest names objects"
    for stored in named:
        data = public.get_bytes(stored.key)
        assert hashlib.sha256(data).hexdigest() == stored.sha256, (
            f"v{document['version']}: {stored.key} does not match its published SHA-256")


def rerun(client: TestClient, service: Service, job: str, order: int, preset: str | None = None) -> None:
    body = {"preset": preset} if preset else None
    accepted = client.post(f"/v1/jobs/{job}/assets/{order}/rerun", json=body, headers=service.auth("operator"))
    assert accepted.status_code == 202, accepted.text


def test_a_rerun_renders_on_new_keys_and_every_manifest_version_still_checks_out(
        client: TestClient, service: Service, tmp_path: Path) -> None:
    root = media(tmp_path / "story", clip_seconds=2)
    job = submit(client, service, root, [*PHOTOS, CLIP])
    assert wait_final(client, service, job)["state"] == "complete"
    public, private = areas(service)
    first = version(public, 1)

    rerun(client, service, job, 3)                                 # the clip, all of its presets
    state = wait_final(client, service, job)
    assert (state["state"], state["manifest_version"]) == ("complete", 2)
    second = version(public, 2)
    for document in (first, second):
        checks_out(public, document)
    v1, v2 = keys_by_order(first), keys_by_order(second)
    assert v1[3].isdisjoint(v2[3]), "the re-run clip's objects are new ones"
    assert (v2[1], v2[2]) == (v1[1], v1[2]), "the other assets keep their keys"
    clip = jobs.read_asset_result(private, STORY, job, 3)
    assert clip is not None and clip.reused == 0 and clip.rendered == len(clip.entry["renditions"])

    # a later job of the story reuses the newest renditions (the re-run's) and renders nothing
    later = submit(client, service, root, [*PHOTOS, CLIP])
    assert wait_final(client, service, later)["state"] == "complete"
    results = jobs.read_asset_results(private, STORY, later)
    assert [(r.rendered, r.reused > 0) for _, r in sorted(results.items())] == [(0, True)] * 3
    assert {r.order: {o.key for o in manifest.objects([r.entry])} for r in results.values()} == v2
    current = json.loads(public.get_bytes(f"stories/{STORY}/manifest.json"))
    assert keys_by_order(current) == v2

    # a re-run of one preset of a photo, on the later job: new keys for it, the clip's kept
    rerun(client, service, later, 1, preset="web")
    state = wait_final(client, service, later)
    assert state["state"] == "complete"
    third = json.loads(public.get_bytes(f"stories/{STORY}/manifest.json"))
    assert third["version"] == manifest.versions(public, STORY)[-1] > 2
    v3 = keys_by_order(third)
    assert v3[1].isdisjoint(v1[1] | v2[1]) and (v3[2], v3[3]) == (v2[2], v2[3])
    for number in manifest.versions(public, STORY):
        checks_out(public, version(public, number))
    nothing_half_stored(service.config.data, public, private)
