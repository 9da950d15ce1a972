"""Decode and render one photo in a child process with a wall-clock limit and a memory ceiling.

Pillow's decoders run in C and cannot be interrupted from Python: a hostile file that decodes for
minutes, or that asks for gigabytes, would hold a worker (an embedded pool process or a Celery
child) for as long as it likes. So :func:`render_image_isolated` runs :func:`pipeline.image.render_image`
in a fresh interpreter whose address space is capped (``RLIMIT_AS``: an allocation past the ceiling
fails, it is not swapped), killed when the time limit passes, and which dies with its parent. Each
rendition streams back over a pipe as it is finished, so the caller stores it (and reports
progress) while the next one is being made, as it did in process.

Why a new interpreter (``posix_spawn`` of ``sys.executable``) and not ``fork``: the embedded pool
workers run a progress-queue thread and Celery children may hold threads of their own; forking a
threaded process can deadlock the child (Python 3.12 warns about it). The stdlib ``spawn`` and
``forkserver`` methods would also do, but ``spawn`` re-imports the parent's ``__main__`` (the CLI,
Celery or pytest) in every child, and a ``forkserver`` is not the caller's child, so its memory
would vanish from the caller's resource usage. A plain child process costs one interpreter start
and the imports of the image stack, about 0.3 s a photo.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NamedTuple

from pipeline.errors import LimitExceeded, PipelineError
from pipeline.image import Rendered
from pipeline.plan import ImagePlan
from pipeline.probe import ImageInfo, Limits

_BOOT = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "inbox = Connection(int(sys.argv[1]), writable=False)\n"
    "sys.path[:0] = inbox.recv()\n"
    "from pipeline.isolated import serve\n"
    "serve(inbox, Connection(int(sys.argv[2]), readable=False))\n")
"""The child's first lines: take the parent's import path (a plain list), then serve one render."""

_CHILD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
"""Keep address space for pictures: numpy's BLAS threads and glibc's per-thread malloc arenas
reserve hundreds of MB of it (400 MB with four encoder threads, 230 MB with these)."""

_GRACE = 5
"""Seconds past the time limit after which the child kills itself (SIGALRM), parent or not."""

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Linux: ask for SIGKILL when the parent dies (a Celery child killed at its hard time limit
    must not leave a render running). Elsewhere the alarm is the only backstop."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:   # the parent died before the request took effect
        os._exit(1)


def _peaks() -> tuple[int, int]:
    """This process's peak resident set and peak address space, in bytes."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    address_space = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmPeak:"):
                address_space = int(line.split()[1]) * 1024
    return rss, address_space


def _out_of_memory(exc: BaseException | None) -> bool:
    """Whether an allocation failed: a MemoryError anywhere in the chain, or a decoder's own words
    for it (Pillow: "can't allocate picture frame"; libheif: "Memory allocation error"). A decoder
    that only says it failed (libwebp: "could not create decoder object") reads as corrupt data."""
    while exc is not None:
        words = str(exc).lower()
        if isinstance(exc, MemoryError) or "memory" in words or "alloc" in words:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def serve(inbox: Connection, outbox: Connection) -> None:
    """The child: one render, every message to ``outbox``; runs in the process :func:`run_isolated`
    started, never in a worker.

    Messages: ``("done", Rendered)`` per rendition, then ``("end", (peak rss, peak address
    space))``; or, when the render fails, ``("memory", detail)`` for an allocation refused under the
    ceiling, ``("error", exc)`` for a :class:`PipelineError` and ``("raise", exc)`` for anything else
    (a bug: the caller sees it as it would in process).
    """
    parent, path, info, plans, scratch, seconds, ceiling, max_pixels = inbox.recv()
    inbox.close()
    _die_with_parent(parent)
    signal.alarm(math.ceil(seconds) + _GRACE)   # default action: the process ends
    from PIL import Image

    from pipeline.image import render_image

    Image.MAX_IMAGE_PIXELS = max_pixels
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    try:
        render_image(path, info, plans, scratch, on_done=lambda made: outbox.send(("done", made)))
    except Exception as exc:
        if _out_of_memory(exc):
            outbox.send(("memory", str(exc) or type(exc).__name__))
        elif isinstance(exc, PipelineError):
            outbox.send(("error", exc))
        else:
            try:
                outbox.send(("raise", exc))
            except Exception:   # not picklable: keep its words
                outbox.send(("raise", RuntimeError(f"{type(exc).__name__}: {exc}")))
    else:
        outbox.send(("end", _peaks()))
    outbox.close()


class Peaks(NamedTuple):
    """What the child used at most, in bytes: resident memory and address space (the ceiling's
    measure; it runs above the resident figure by the libraries' and threads' reservations)."""

    rss: int = 0
    address_space: int = 0


class Isolated:
    """One child process running one render; use as a context manager (the child is always gone
    when the block ends, killed if need be)."""

    def __init__(self, path: Path, info: ImageInfo, plans: list[ImagePlan], scratch: Path,
                 limits: Limits) -> None:
        self.limits = limits
        self.peaks = Peaks()
        """What the child used at most, known when it finished."""
        self.log = scratch / f"render-{os.getpid()}-{time.monotonic_ns()}.log"
        request_r, request_w = os.pipe()
        result_r, result_w = os.pipe()
        env = {**os.environ, **_CHILD_ENV}
        try:
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", _BOOT, str(request_r), str(result_w)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    pass_fds=(request_r, result_w), close_fds=True)
        finally:
            os.close(request_r)
            os.close(result_w)
        self.results = Connection(result_r, writable=False)
        self.started = time.monotonic()
        with Connection(request_w, readable=False) as request:
            request.send(list(sys.path))
            request.send((os.getpid(), path, info, plans, scratch, limits.image_time_limit,
                          limits.image_memory_ceiling, limits.max_image_pixels))

    def __enter__(self) -> Isolated:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the child if it still runs, reap it, close the pipe, drop its log."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.results.close()
        self.log.unlink(missing_ok=True)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text("utf-8", errors="replace")[-2000:].strip()
        except OSError:
            return ""

    def messages(self) -> Iterator[Rendered]:
        """Yield ``Rendered`` results as the child sends them; raise when it fails or runs out of
        time (then the child is killed at once)."""
        seconds = self.limits.image_time_limit
        ceiling = self.limits.image_memory_ceiling
        while True:
            left = self.started + seconds - time.monotonic()
            if left <= 0 or not self.results.poll(left):
                self.process.kill()
                raise LimitExceeded(
                    f"decoding and rendering this photo took longer than the {seconds:g} s limit"
                    " and was stopped; run it again on a less busy machine, or upload the photo"
                    " smaller", code="time-limit")
            try:
                kind, value = self.results.recv()
            except (EOFError, OSError):
                kind, value = "died", None
            if kind == "done":
                yield value
            elif kind == "end":
                self.peaks = Peaks(*value)
                return
            elif kind in ("error", "raise"):
                raise value
            elif kind == "memory":
                raise LimitExceeded(
                    f"rendering this photo needed more than the {ceiling / 2**20:.0f} MB memory"
                    f" ceiling ({value}); upload it with fewer pixels", code="out-of-memory")
            else:
                status = self.process.wait()
                how = f"signal {-status}" if status < 0 else f"exit status {status}"
                if status == -signal.SIGALRM:
                    raise LimitExceeded(
                        f"decoding and rendering this photo took longer than the {seconds:g} s"
                        " limit and was stopped", code="time-limit")
                tail = self._log_tail()
                raise LimitExceeded(
                    f"the process rendering this photo stopped unexpectedly ({how}), perhaps out of"
                    f" memory; run the story again to retry{': ' + tail.splitlines()[-1] if tail else ''}",
                    code="render-crashed")


def run_isolated(path: Path, info: ImageInfo, plans: list[ImagePlan], scratch: Path,
                 on_done: Callable[[Rendered], None] | None = None, *,
                 limits: Limits | None = None) -> tuple[list[Rendered], Peaks]:
    """:func:`render_image_isolated`, also returning what the child used at most."""
    limits = limits or Limits()
    out: list[Rendered] = []
    if not plans:
        return out, Peaks()
    with Isolated(path, info, plans, scratch, limits) as child:
        for made in child.messages():
            out.append(made)
            if on_done is not None:
                on_done(made)
        return out, child.peaks


def render_image_isolated(path: Path, info: ImageInfo, plans: list[ImagePlan], scratch: Path,
                          on_done: Callable[[Rendered], None] | None = None, *,
                          limits: Limits | None = None) -> list[Rendered]:
    """Drop-in for :func:`pipeline.image.render_image` that runs it in a child process.

    Files land in ``scratch``; ``on_done`` runs here, in the caller, for each rendition as soon as
    the child has written it (in plan order). Raises :class:`LimitExceeded` (retryable) with code
    ``time-limit`` past ``limits.image_time_limit`` seconds, ``out-of-memory`` when an allocation
    fails under ``limits.image_memory_ceiling``, ``render-crashed`` when the child dies otherwise;
    and the child's own :class:`~pipeline.errors.PipelineError` (corrupt data, an encoder failure)
    as it was raised. The child never outlives the call.
    """
    return run_isolated(path, info, plans, scratch, on_done, limits=limits)[0]

