"""The cluster under faults: real Redis, real SeaweedFS, real `storymedia worker` processes.

Every scenario ends the same way: the story is complete (or ``partial`` only for a poison asset),
every object the manifest names is downloaded and matches its SHA-256, the store holds no
rendition the manifest does not name, no multipart upload is left open, and the number of times
each asset was rendered is what the fault explains.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client

from tests.cluster.harness import STORYMEDIA, Cluster, Worker, wait_for
from tests.cluster.stories import small_story
from tests.servers import RedisServer

pytestmark = pytest.mark.cluster


def job_of(result: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"Job (\S+) for story", result.stdout)
    assert found, result.stdout + result.stderr
    return found.group(1)


def objects(document: dict[str, Any]) -> dict[str, str]:
    """Every key the manifest names (renditions, HLS segments, sprite sheets) -> SHA-256."""
    found = {}
    for asset in document["assets"]:
        for rendition in asset["renditions"]:
            found[rendition["key"]] = rendition["sha256"]
            for part in [*rendition.get("segments", []), *rendition.get("playlists", []),
                         *rendition.get("sheets", [])]:
                found[part["key"]] = part["sha256"]
    return found


def verify_store(cluster: Cluster, story_id: str, status: str = "complete") -> dict[str, Any]:
    """The manifest's promises, checked against the store byte for byte."""
    storage = cluster.storage()
    document = json.loads(storage.get_bytes(f"stories/{story_id}/manifest.json"))
    assert document["status"] == status, json.dumps(document["summary"])
    named = objects(document)
    for key, sha in named.items():
        assert hashlib.sha256(storage.get_bytes(key)).hexdigest() == sha, key
    assert list(storage.list("raw/")) == [], "raw originals stay in the private area"
    assert [k for k in storage.list("stories/") if "/jobs/" in k] == [], "so do job records"
    stored = set(storage.list("renditions/"))
    assert stored == {k for k in named if k.startswith("renditions/")}, "orphan or missing renditions"
    assert storage.incomplete_uploads() == []
    versions = [k for k in storage.list(f"stories/{story_id}/") if re.search(r"manifest\.v\d+\.json$", k)]
    assert versions == [f"stories/{story_id}/manifest.v1.json"], versions
    return document


def attempts(cluster: Cluster, job: str) -> dict[str, int]:
    state = cluster.status(job)
    return {Path(row["file"]).name: row["attempts"] for row in state["assets"]}


def wait_rendering_clip(cluster: Cluster, timeout: float = 60) -> Any:
    """Wait until some worker's pool process is running ffmpeg for the clip; return (worker, child)."""
    def found() -> Any:
        for worker in cluster.workers:
            child = worker.rendering_child()
            if child is not None:
                return worker, child
        return None
    return wait_for(found, timeout, "a pool process running ffmpeg", every=0.1)


def rendering(cluster: Cluster, tmp_path: Path, clip_seconds: float = 6.0,
              **settings: str) -> tuple[Worker, str, Any]:
    """A worker, the small story submitted, and the moment its clip is being rendered:
    (worker, job, the pool process running ffmpeg)."""
    story = small_story(tmp_path / "story", clip_seconds=clip_seconds)
    worker = cluster.worker(concurrency=2, **settings).wait_ready()
    job = job_of(cluster.cli("submit", str(story)))
    _, child = wait_rendering_clip(cluster)
    return worker, job, child


def recorded_without_manifest(cluster: Cluster, tmp_path: Path) -> tuple[str, Any]:
    """The small story submitted to a worker that serves every queue but ``manifest``, once every
    asset is recorded: (job, storage). The manifest message waits on its queue."""
    from pipeline.run import jobs

    story = small_story(tmp_path / "story")
    cluster.worker(queues="probe,image,video,io", concurrency=2).wait_ready()
    job = job_of(cluster.cli("submit", str(story)))
    storage = cluster.storage(private=True)
    wait_for(lambda: len(jobs.recorded_orders(storage, "cluster-test", job)) == 3, 120,
             "every asset to be recorded")
    return job, storage


def finish(cluster: Cluster, job: str, timeout: float = 180) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        state = cluster.status(job)
        return state if state["done"] else None
    return wait_for(finished, timeout, f"job {job} to finish", every=1)


def test_kill_9_of_a_pool_child_mid_render_reruns_it_once(cluster: Cluster, tmp_path: Path) -> None:
    worker, job, child = rendering(cluster, tmp_path)
    child.kill()                              # the OOM killer, or a segfault in a decoder
    state = finish(cluster, job)
    assert state["state"] == "complete"
    verify_store(cluster, "cluster-test")
    assert attempts(cluster, job) == {"anh-01.jpg": 1, "anh-02.jpg": 1, "clip.mp4": 2}
    assert "WorkerLostError" in worker.text() or "Process" in worker.text()


def test_kill_9_of_the_whole_worker_then_a_restart_completes(cluster: Cluster, tmp_path: Path) -> None:
    # limits short enough for the redelivery to come soon, long enough for a 3 s clip on a busy
    # host (20 s was passed twice there, with the suite's other half rendering beside it)
    fast = {"STORYMEDIA_TIME_LIMIT": "45", "STORYMEDIA_SOFT_TIME_LIMIT": "40",
            "STORYMEDIA_VISIBILITY_TIMEOUT": "50"}
    worker, job, _ = rendering(cluster, tmp_path, clip_seconds=3, **fast)
    worker.kill_all()                          # the machine lost power
    started = time.monotonic()
    cluster.worker(concurrency=2, **fast).wait_ready()
    state = finish(cluster, job, timeout=180)
    assert state["state"] == "complete"
    verify_store(cluster, "cluster-test")
    assert attempts(cluster, job)["clip.mp4"] == 2
    # The unacked message comes back once the visibility timeout has passed, not hours later.
    assert time.monotonic() - started < 50 + 60


def test_sigterm_requeues_the_running_task_at_once(cluster: Cluster, tmp_path: Path,
                                                   redis_server: RedisServer) -> None:
    worker, job, _ = rendering(cluster, tmp_path, clip_seconds=10)
    stopped = time.monotonic()
    worker.terminate()                          # docker stop, a deploy, a scale-down
    worker.process.wait(timeout=30)
    took = time.monotonic() - stopped
    broker = redis_client.Redis.from_url(redis_server.url)
    assert broker.llen("video") == 1, "the running render is back on its queue"
    assert took < 15, f"the worker took {took:.1f} s to hand its work back"
    cluster.worker(concurrency=2).wait_ready()
    state = finish(cluster, job)
    assert state["state"] == "complete"
    verify_store(cluster, "cluster-test")
    assert attempts(cluster, job)["clip.mp4"] == 2
    assert "Initiating Soft Shutdown" in worker.text() or "Cold shutdown" in worker.text()


def test_redis_killed_and_restarted_with_aof_completes(cluster: Cluster, tmp_path: Path,
                                                       redis_server: RedisServer) -> None:
    # A clip long enough to be still rendering after the outage and the wait below: a 6 s one
    # could finish meanwhile on an idle machine, and its job then ends without reconcile.
    _, job, _ = rendering(cluster, tmp_path, clip_seconds=15)
    redis_server.kill()
    time.sleep(6)                                # long enough for tasks to finish while it is down
    redis_server.start()                         # same port, same AOF
    state = finish(cluster, job)
    assert state["state"] == "complete"
    verify_store(cluster, "cluster-test")
    assert attempts(cluster, job) == {"anh-01.jpg": 1, "anh-02.jpg": 1, "clip.mp4": 1}


def test_redis_state_lost_then_reconcile_completes(cluster: Cluster, tmp_path: Path,
                                                   redis_server: RedisServer) -> None:
    # A clip long enough to be still rendering after the outage and the wait below: a 6 s one
    # could finish meanwhile on an idle machine, and its job then ends without reconcile.
    _, job, _ = rendering(cluster, tmp_path, clip_seconds=15)
    redis_server.kill()
    redis_server.wipe()                          # the disk went with it: queues, progress
    redis_server.start()
    time.sleep(5)
    storage = cluster.storage(private=True)
    assert not storage.exists(f"stories/cluster-test/jobs/{job}/done.json"), "nothing can finish it"
    dry = cluster.cli("reconcile", "--dry-run")
    assert dry.returncode == 0 and f"would re-enqueue cluster-test job {job}" in dry.stdout, dry.stdout
    done = cluster.cli("reconcile")
    assert done.returncode == 0 and "1 job(s) re-enqueued" in done.stdout, done.stdout + done.stderr
    state = finish(cluster, job)
    assert state["state"] == "complete"
    verify_store(cluster, "cluster-test")
    # The photos finished before the loss and are not redone; the clip ran once or twice (its
    # attempt counter went with Redis, the store's record of its result did not).
    runs = attempts(cluster, job)
    assert runs["anh-01.jpg"] == runs["anh-02.jpg"] == 1 and runs["clip.mp4"] in (1, 2)


def test_a_lost_manifest_message_is_requeued_by_reconcile_without_rerendering(
        cluster: Cluster, tmp_path: Path, redis_server: RedisServer) -> None:
    """Every asset is recorded but the message that should write the manifest is gone (say Redis
    restarted without its AOF at that moment): reconcile sees a job with nothing left to render and
    queues its manifest well before the stale-job threshold, without rendering anything again."""
    job, _ = recorded_without_manifest(cluster, tmp_path)
    broker = redis_client.Redis.from_url(redis_server.url)
    wait_for(lambda: broker.llen("manifest") >= 1, 10, "the manifest message")
    broker.delete("manifest")                    # the message is lost
    time.sleep(3)
    dry = cluster.cli("reconcile", "--dry-run", "--stale-after", "3")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "every asset is recorded but no manifest came" in dry.stdout, dry.stdout
    assert cluster.cli("reconcile", "--stale-after", "3").returncode == 0
    cluster.worker(queues="manifest,io", concurrency=1, name="m").wait_ready()
    state = finish(cluster, job, timeout=60)
    assert state["state"] == "complete"
    verify_store(cluster, "cluster-test")
    assert attempts(cluster, job) == {"anh-01.jpg": 1, "anh-02.jpg": 1, "clip.mp4": 1}


def test_an_object_lost_before_the_manifest_is_rendered_again_first(
        cluster: Cluster, tmp_path: Path, redis_server: RedisServer) -> None:
    """Between a photo's render and the manifest, one of its renditions disappears from the store
    (a lifecycle rule, an operator's mistake): write_manifest checks every object, finds it,
    renders that photo again, and only then writes the manifest."""
    from pipeline.run import jobs

    job, storage = recorded_without_manifest(cluster, tmp_path)
    photo = jobs.read_asset_result(storage, "cluster-test", job, 1)
    assert photo is not None
    lost = photo.entry["renditions"][0]["key"]
    cluster.storage().delete(lost)
    cluster.worker(queues="manifest", concurrency=1, name="m").wait_ready()
    state = finish(cluster, job, timeout=120)
    assert state["state"] == "complete"
    document = verify_store(cluster, "cluster-test")
    assert lost in objects(document)
    assert attempts(cluster, job) == {"anh-01.jpg": 2, "anh-02.jpg": 1, "clip.mp4": 1}
    manifest_log = cluster.workers[-1].text()
    assert "rerun" in manifest_log and "[1]" in manifest_log, manifest_log[-2000:]


def test_s3_down_while_a_clip_is_stored_is_retried_and_leaves_nothing_half_written(
        cluster: Cluster, tmp_path: Path, s3_server: Any) -> None:
    """The store goes away during the render: every put fails through boto3's retries, the task
    retries with backoff, and once the store is back the asset is redone and checked. (A server
    killed in the middle of one multipart upload: tests/cluster/test_s3_storage.py.)"""
    worker, job, _ = rendering(cluster, tmp_path)
    s3_server.stop()
    # down until the clip, rendered, fails to store its files through boto3's own retries and
    # its task is retried with backoff
    failed = f"asset 3 of job {job}: cannot reach the object store"
    wait_for(lambda: failed in worker.text(), 180, "the clip's upload to fail", every=0.5)
    s3_server.start()
    state = finish(cluster, job, timeout=240)
    assert state["state"] == "complete"
    verify_store(cluster, "cluster-test")
    assert attempts(cluster, job)["clip.mp4"] >= 2
    assert "Retry in" in worker.text()


def test_the_same_story_submitted_twice_at_once_runs_once(cluster: Cluster, tmp_path: Path) -> None:
    story = small_story(tmp_path / "story")
    cluster.worker(concurrency=2).wait_ready()
    both = [subprocess.Popen([STORYMEDIA, "submit", str(story)], env=cluster.env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [subprocess.CompletedProcess(p.args, p.wait(120), *p.communicate()) for p in both]
    jobs = {job_of(r) for r in results}
    assert len(jobs) == 1, [r.stdout for r in results]
    assert any("already running" in r.stdout for r in results)
    (job,) = jobs
    state = finish(cluster, job)
    assert state["state"] == "complete"
    verify_store(cluster, "cluster-test")
    storage = cluster.storage(private=True)
    records = [k for k in storage.list("stories/cluster-test/jobs/") if k.count("/") == 3]
    assert records == [f"stories/cluster-test/jobs/{job}.json"]
    assert attempts(cluster, job) == {"anh-01.jpg": 1, "anh-02.jpg": 1, "clip.mp4": 1}


def test_a_poison_file_is_set_aside_after_bounded_attempts(cluster: Cluster, tmp_path: Path) -> None:
    """A clip that always runs past the time limit, and a truncated photo: the rest completes."""
    story = small_story(tmp_path / "story", clip_seconds=30, clip_size="1920x1080", truncated=True)
    # a 30 s 1080p clip never renders in 10 s on 2 vCPUs; a small photo always does (3 s was
    # passed by one on a busy host: a second attempt)
    limits = {"STORYMEDIA_SOFT_TIME_LIMIT": "10", "STORYMEDIA_TIME_LIMIT": "15",
              "STORYMEDIA_VISIBILITY_TIMEOUT": "20", "STORYMEDIA_MAX_ATTEMPTS": "2"}
    worker = cluster.worker(concurrency=2, **limits).wait_ready()
    result = cluster.cli("submit", str(story), "--wait", "--quiet", timeout=180)
    assert result.returncode == 2, result.stdout + result.stderr
    job = job_of(result)
    assert "Status: partial" in result.stdout
    document = verify_store(cluster, "cluster-test", status="partial")
    by_file = {a["filename"]: a for a in document["assets"]}
    assert by_file["clip.mp4"]["status"] == "failed"
    assert by_file["clip.mp4"]["error"]["code"] == "time-limit"
    assert "time limit 2 times" in by_file["clip.mp4"]["error"]["reason"]
    assert by_file["hong.jpg"]["status"] == "failed"
    assert by_file["hong.jpg"]["error"]["code"] in ("truncated", "corrupt", "unreadable")
    assert by_file["anh-01.jpg"]["status"] == by_file["anh-02.jpg"]["status"] == "done"
    assert attempts(cluster, job) == {"anh-01.jpg": 1, "anh-02.jpg": 1, "clip.mp4": 2, "hong.jpg": 1}
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-f", f"scratch-w.*{tmp_path.name}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "" or worker.rendering_child() is None
