"""The storage contract, for every backend that runs without a server."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import StorageError
from pipeline.storage import (
    BucketSetup,
    LocalStorage,
    Locking,
    MemoryStorage,
    Presigning,
    Storage,
    StorageOptions,
    UploadCleanup,
    open_storage,
    register,
)
from pipeline.storage.registry import unregister
from pipeline.storage.s3 import S3Storage
from tests.fixtures import photo


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


def test_download_failures_are_storage_errors(storage, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="raw/ab/missing is not in the store"):
        storage.download("raw/ab/missing", tmp_path / "copy")
    storage.put_bytes("raw/ab/abc", b"raw", content_type="image/jpeg")
    with pytest.raises(StorageError, match="raw/ab/abc"):
        storage.download("raw/ab/abc", tmp_path / "no-such-folder" / "copy")


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


def test_a_registered_scheme_opens_its_backend_and_unknown_ones_list_the_examples(tmp_path: Path) -> None:
    seen: list[tuple[str, StorageOptions]] = []

    def open_cache(url: str, options: StorageOptions) -> Storage:
        seen.append((url, options))
        return LocalStorage(tmp_path, options.public_base)

    register("cache", open_cache, example="cache://name")
    try:
        store = open_storage("cache://photos", "https://cdn.example/", presign_expiry=60)
        assert isinstance(store, LocalStorage) and store.root == tmp_path.resolve()
        assert seen == [("cache://photos", StorageOptions(public_base="https://cdn.example/",
                                                          presign_expiry=60))]
    finally:
        unregister("cache")
    with pytest.raises(StorageError) as unknown:
        open_storage("ftp://example/bucket")
    assert unknown.value.reason == ("unknown storage URL scheme 'ftp' in 'ftp://example/bucket'"
                                    " (use file:///path, memory:// or s3://bucket/prefix)")


def test_capabilities_are_declared_by_the_backends_that_have_them(tmp_path: Path) -> None:
    s3 = open_storage("s3://media/p", endpoint_url="http://127.0.0.1:9")
    local, memory = LocalStorage(tmp_path), MemoryStorage()
    for store in (s3, local, memory):
        assert isinstance(store, Storage)
    assert [isinstance(s3, c) for c in (Presigning, UploadCleanup, BucketSetup, Locking)] == \
        [True, True, True, False]
    assert [isinstance(local, c) for c in (Presigning, UploadCleanup, BucketSetup, Locking)] == \
        [False, False, False, True]
    assert not any(isinstance(memory, c) for c in (Presigning, UploadCleanup, BucketSetup, Locking))


LOCAL_RUN = """
import runpy, sys
from pathlib import Path
from pipeline.storage import open_storage
root = Path(sys.argv[1])
store = open_storage((root / "store").as_uri())
store.put_bytes("raw/ab/abc", b"raw", content_type="image/jpeg")
assert store.get_bytes("raw/ab/abc") == b"raw"
sys.argv = ["storymedia", "run", str(root / "story.toml"), "--out", str(root / "out"), "--quiet"]
try:
    runpy.run_module("storymedia", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    assert not exit.code, exit.code
print(sorted(name for name in ("boto3", "botocore", "s3transfer", "pipeline.storage.s3")
             if name in sys.modules))
"""


def test_a_local_run_never_imports_boto3(tmp_path: Path) -> None:
    photo((320, 240)).save(tmp_path / "a.jpg", quality=90)
    (tmp_path / "story.toml").write_text(
        '[story]\nid = "local-2023"\ntitle = "Local"\nbyline = "Đình Hà"\n'
        'published = 2023-09-12T21:15:00+07:00\n\n[[assets]]\nfile = "a.jpg"\ncaption = "Ảnh"\n',
        encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", LOCAL_RUN, str(tmp_path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "public" / "stories" / "local-2023" / "manifest.json").is_file()


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
    with pytest.raises(StorageError) as bad:
        open_storage("s3://media/p", endpoint_url="not a url")
    assert bad.value.reason == "cannot set up the S3 client for s3://media/p: Invalid endpoint: not a url"
    assert isinstance(bad.value.__cause__, ValueError)


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
