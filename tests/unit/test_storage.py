"""The storage contract, for every backend that runs without a server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.errors import StorageError
from pipeline.storage import LocalStorage, MemoryStorage, S3Storage, open_storage


@pytest.fixture(params=["local", "memory"])
def storage(request, tmp_path: Path):
    return LocalStorage(tmp_path / "store") if request.param == "local" else MemoryStorage()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_head_get_and_skip_when_same(storage, tmp_path: Path) -> None:
    source = tmp_path / "a.jpg"
    source.write_bytes(b"jpeg bytes")
    assert storage.put_file("renditions/x/web@1/a.jpg", source, sha256=sha(b"jpeg bytes"),
                            content_type="image/jpeg") is True
    assert storage.put_file("renditions/x/web@1/a.jpg", source, sha256=sha(b"jpeg bytes"),
                            content_type="image/jpeg") is False, "same bytes: skipped"
    info = storage.head("renditions/x/web@1/a.jpg")
    assert (info.bytes, info.sha256) == (10, sha(b"jpeg bytes"))
    assert storage.exists("renditions/x/web@1/a.jpg", sha(b"jpeg bytes"))
    assert not storage.exists("renditions/x/web@1/a.jpg", sha(b"other"))
    assert storage.get_bytes("renditions/x/web@1/a.jpg") == b"jpeg bytes"
    assert storage.head("renditions/missing") is None
    with pytest.raises(StorageError):
        storage.get_bytes("renditions/missing")


def test_different_bytes_replace_and_list_is_sorted(storage) -> None:
    storage.put_bytes("stories/s/b.json", b"1", content_type="application/json")
    storage.put_bytes("stories/s/a.json", b"1", content_type="application/json")
    assert storage.put_bytes("stories/s/a.json", b"2", content_type="application/json") is True
    assert storage.get_bytes("stories/s/a.json") == b"2"
    storage.replace("stories/s/manifest.json", b"{}", content_type="application/json")
    assert list(storage.list("stories/s/")) == ["stories/s/a.json", "stories/s/b.json",
                                                "stories/s/manifest.json"]
    assert list(storage.list("raw/")) == []


def test_download(storage, tmp_path: Path) -> None:
    storage.put_bytes("raw/ab/abc", b"raw", content_type="image/jpeg")
    storage.download("raw/ab/abc", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"raw"


def test_delete_and_missing_key_is_not_an_error(storage) -> None:
    storage.put_bytes("raw/ab/abc", b"raw", content_type="image/jpeg")
    storage.delete("raw/ab/abc")
    storage.delete("raw/ab/abc")
    assert storage.head("raw/ab/abc") is None
    assert list(storage.list()) == []


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", ""])
def test_local_refuses_keys_leaving_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        LocalStorage(tmp_path).put_bytes(key, b"x", content_type="text/plain")


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.replace("stories/s/manifest.json", b"{}", content_type="application/json")
    assert [p.name for p in (tmp_path / "stories" / "s").iterdir()] == ["manifest.json"]


def test_open_storage_by_scheme(tmp_path: Path) -> None:
    assert isinstance(open_storage(tmp_path.as_uri()), LocalStorage)
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert isinstance(open_storage("memory://"), MemoryStorage)
    with pytest.raises(StorageError, match="unknown storage URL scheme 'ftp'"):
        open_storage("ftp://example/bucket")


def test_open_storage_s3_needs_no_server_to_open() -> None:
    store = open_storage("s3://media/news/prod/", "https://cdn.example/", endpoint_url="http://127.0.0.1:9",
                         region="eu-west-1", presign_expiry=600, multipart_bytes=8 << 20)
    assert isinstance(store, S3Storage)
    assert store.presign_expiry == 600
    assert (store.transfer_config.multipart_threshold, store.transfer_config.multipart_chunksize) == (8 << 20, 8 << 20)
    assert (store.bucket, store.prefix, store.url) == ("media", "news/prod", "s3://media/news/prod")
    assert store.public_url("renditions/a.jpg") == "https://cdn.example/renditions/a.jpg"
    assert open_storage("s3://media").url == "s3://media"
    with pytest.raises(StorageError, match="no bucket"):
        open_storage("s3:///prefix")


def test_public_url(tmp_path: Path) -> None:
    assert LocalStorage(tmp_path).public_url("renditions/a.jpg") == "renditions/a.jpg"
    store = LocalStorage(tmp_path, "https://cdn.example/media/")
    assert store.public_url("renditions/a.jpg") == "https://cdn.example/media/renditions/a.jpg"


@pytest.mark.parametrize("make", [LocalStorage, lambda _path: MemoryStorage()])
def test_create_writes_only_when_absent(tmp_path: Path, make) -> None:
    store = make(tmp_path)
    assert store.create("stories/s/manifest.v1.json", b"first", content_type="application/json")
    assert not store.create("stories/s/manifest.v1.json", b"second", content_type="application/json")
    assert store.get_bytes("stories/s/manifest.v1.json") == b"first"


def test_local_create_has_one_winner_among_racing_processes(tmp_path: Path) -> None:
    import concurrent.futures

    with concurrent.futures.ProcessPoolExecutor(4) as pool:
        won = list(pool.map(_create, [tmp_path] * 8, [f"writer {n}".encode() for n in range(8)]))
    assert sum(won) == 1
    assert LocalStorage(tmp_path).get_bytes("k/v.json") == f"writer {won.index(True)}".encode()
    assert [p.name for p in (tmp_path / "k").iterdir()] == ["v.json"], "no temporary file left"


def _create(root: Path, data: bytes) -> bool:
    return LocalStorage(root).create("k/v.json", data, content_type="application/json")


def test_local_exclusive_lock_waits_then_times_out(tmp_path: Path) -> None:
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from pipeline.storage import LocalStorage\n"
        f"with LocalStorage(Path({str(tmp_path)!r})).exclusive('story-s'):\n"
        "    print('held', flush=True); time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StorageError, match="another run holds story-s"), \
                LocalStorage(tmp_path).exclusive("story-s", timeout=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with LocalStorage(tmp_path).exclusive("story-s", timeout=5):
        pass   # released when its holder died, however it died
