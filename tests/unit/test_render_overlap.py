"""Two attempts of one asset overlap when the broker lost its state and ``reconcile`` sent the job
again while the first attempt still rendered: the second must not write over the objects the first
recorded (and a manifest may already name). Pure logic on a memory store; the overlap itself is
``tests/cluster/test_faults.py::test_redis_state_lost_then_reconcile_completes``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.run import jobs
from pipeline.storage import MemoryStorage
from workers.tasks import RecordedElsewhere, _GuardedStore


def guarded(tmp_path: Path) -> tuple[_GuardedStore, MemoryStorage, MemoryStorage, Path]:
    public, private = MemoryStorage(), MemoryStorage()
    ctx = SimpleNamespace(storage=public, private=private)
    job = SimpleNamespace(story_id="tin-thu-nghiem", id="20261203-120000-abcdef")
    store = _GuardedStore(ctx, job, 3)   # type: ignore[arg-type]
    store.LOOK_EVERY = 0.0
    made = tmp_path / "made.mp4"
    made.write_bytes(b"second attempt's bytes")
    return store, public, private, made


def test_an_attempt_stores_while_no_other_recorded_the_asset(tmp_path: Path) -> None:
    store, public, _, made = guarded(tmp_path)
    assert store.put_file("renditions/a/web@1/mp4.mp4", made, sha256="ab" * 32, content_type="video/mp4")
    assert public.exists("renditions/a/web@1/mp4.mp4")
    assert not store.recorded_elsewhere()
    assert store.exists("renditions/a/web@1/mp4.mp4"), "everything else goes to the store as it is"


def test_an_attempt_stops_before_writing_once_another_recorded_the_asset(tmp_path: Path) -> None:
    store, public, private, made = guarded(tmp_path)
    public.put_bytes("renditions/a/web@1/mp4.mp4", b"first attempt's bytes", content_type="video/mp4")
    jobs.write_asset_result(private, "tin-thu-nghiem", "20261203-120000-abcdef",
                            jobs.AssetResult(order=3, entry={"status": "done", "renditions": []}))
    with pytest.raises(RecordedElsewhere):
        store.put_file("renditions/a/web@1/mp4.mp4", made, sha256="cd" * 32, content_type="video/mp4")
    assert public.get_bytes("renditions/a/web@1/mp4.mp4") == b"first attempt's bytes"
    assert store.recorded_elsewhere()
