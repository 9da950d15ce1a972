"""``pull --dest``: a manifest read back is hostile until checked; nothing lands outside DEST."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.errors import StorageError
from pipeline.model import manifest
from pipeline.model.story import parse_story
from pipeline.storage import LocalStorage
from workers import client

STORY = parse_story({
    "story": {"id": "s-2023", "title": "Thành phố Thanh Hóa", "published": "2023-09-12T21:15:00+07:00"},
    "assets": [{"file": "a.jpg"}]})


def stored(tmp_path: Path, key: str) -> SimpleNamespace:
    """A store holding one rendition and a manifest that names it under ``key``."""
    storage = LocalStorage(tmp_path / "store")
    data = b"rendition bytes"
    storage.put_bytes("renditions/aaaaaaaaaaaaaaaa/web@1/w320-00000001.jpg", data, content_type="image/jpeg")
    rendition = {"preset": "web@1", "name": "w320", "key": key, "url": key, "mime": "image/jpeg",
                 "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "width": 320, "height": 200}
    entry = {"id": "a" * 16, "kind": "image", "order": 1, "filename": "a.jpg",
             "source": {"sha256": "1" * 64, "bytes": 5}, "caption": "", "credit": "", "copyright": "",
             "status": "done", "renditions": [rendition]}
    document = manifest.build(STORY, [entry], "job1", 1)
    storage.replace("stories/s-2023/manifest.json", json.dumps(document).encode(), content_type="application/json")
    return SimpleNamespace(storage=storage)


def test_pull_downloads_and_checks_a_good_manifest(tmp_path: Path) -> None:
    ctx = stored(tmp_path, "renditions/aaaaaaaaaaaaaaaa/web@1/w320-00000001.jpg")
    saved = client.pull(ctx, "s-2023", "web", tmp_path / "dest")  # type: ignore[arg-type]
    assert [p.relative_to(tmp_path / "dest").as_posix() for p in saved] == [
        "renditions/aaaaaaaaaaaaaaaa/web@1/w320-00000001.jpg"]


@pytest.mark.parametrize("key", ["../../outside/x.jpg", "/tmp/abs.jpg", "renditions/../../../outside.jpg",
                                 "raw/ab/" + "a" * 64])
def test_pull_refuses_a_manifest_whose_keys_leave_dest(tmp_path: Path, key: str) -> None:
    ctx = stored(tmp_path, key)
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(StorageError, match="not a valid manifest"):
        client.pull(ctx, "s-2023", "web", dest)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"], "no folder made outside (or inside) DEST"
