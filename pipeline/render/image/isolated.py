"""Decode and render one photo in a child process with a wall-clock limit and a memory ceiling.

Pillow's decoders run in C and cannot be interrupted from Python: a hostile file that decodes for
minutes, or that asks for gigabytes, would hold a worker (an embedded pool process or a Celery
child) for as long as it likes. So :func:`render_image_isolated` runs
:func:`pipeline.render.image.ladder.render_image` in a child process whose address space is capped
(``RLIMIT_AS``: an allocation past the ceiling fails, nothing is swapped), which a timer kills at
the time limit, and which dies with its parent. Each rendition streams back over a pipe as it is
finished, so the caller stores it (and reports progress) while the next one is being made.

Processes. Each worker process keeps one **render server**: a fresh interpreter (started with
``posix_spawn``, never forked from the worker) that imports the image stack once, stays
single-threaded and forks one child per photo. So every photo gets a clean process in a few
milliseconds instead of an interpreter start and 0.4 s of imports, and ``fork`` is safe: it
happens in a process without threads (the worker itself may have some: the embedded pool's
progress queue, Celery's; Python 3.12 warns when a threaded process forks). The stdlib
``forkserver`` does the same but is not the worker's child, so the memory of its renders would
vanish from the worker's resource usage; ``spawn`` pays the interpreter start for every photo and
re-imports the worker's ``__main__`` (the CLI, Celery or pytest) each time.

The chain dies together: the render child asks for SIGKILL when the server dies, the server when
the worker dies. Past the time limit the child's own timer kills it (the server lives on); when
anything else goes wrong the worker kills the server, and the next photo starts a new one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.errors import LimitExceeded, PipelineError
from pipeline.ingest.info import ImageInfo
from pipeline.ingest.limits import Limits
from pipeline.plan.image import ImagePlan
from pipeline.render.image.ladder import Rendered

_BOOT = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "control = Connection(int(sys.argv[1]))\n"
    "sys.path[:0] = control.recv()\n"
    "from pipeline.render.image.isolated import serve_renders\n"
    "serve_renders(control)\n")
"""The server's first lines: take the worker's import path (a plain list), then serve renders."""

_SERVER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
"""Keep address space for pictures: numpy's BLAS threads and glibc's per-thread malloc arenas
reserve hundreds of MB of it (400 MB with four encoder threads, 230 MB with these)."""

_GRACE = 2.0
"""Seconds past the time limit the worker waits for the child's own timer before it kills the
server (a child stuck where a signal cannot reach it)."""

_PR_SET_PDEATHSIG = 1


class Peaks(NamedTuple):
    """What a render child used at most, in bytes: resident memory and address space (the ceiling's
    measure; it runs above the resident figure by the libraries' and threads' reservations)."""

    rss: int = 0
    address_space: int = 0


def _die_with_parent(parent: int) -> None:
    """Linux: ask for SIGKILL when the parent dies, so nothing outlives a killed worker (a Celery
    child killed at its hard time limit). Elsewhere the child's timer is the only backstop."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:   # the parent died before the request took effect
        os._exit(1)


def _peaks() -> Peaks:
    """This process's own peaks. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a
    render server spawned by a large worker or service would report its parent's peak."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    address_space = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmPeak:"):
                address_space = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                rss = int(line.split()[1]) * 1024
    return Peaks(rss, address_space)


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


def _render_child(request: tuple[Any, ...], outbox: Connection, server: int) -> None:
    """The render child (forked by the server): one render, every message to ``outbox``.

    Messages: ``("done", Rendered)`` per rendition, then ``("end", Peaks)``; or, when the render
    fails, ``("memory", detail)`` for an allocation refused under the ceiling, ``("error", exc)`` for
    a :class:`PipelineError` and ``("raise", exc)`` for anything else (a bug: the worker sees it as
    it would in process).
    """
    path, info, plans, scratch, seconds, ceiling, max_pixels, log = request
    _die_with_parent(server)
    signal.setitimer(signal.ITIMER_REAL, seconds)   # SIGALRM's default action ends the process
    with contextlib.suppress(OSError):
        written = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(written, 1)
        os.dup2(written, 2)
        os.close(written)
    from PIL import Image

    from pipeline.render.image.ladder import render_image

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


def serve_renders(control: Connection) -> None:
    """The render server's loop; runs in the process :class:`_Server` started, never in a worker.

    For each request: fork a child to render it, hand the worker the read end of the child's result
    pipe, wait for the child and report how it ended (``("exit", code)``, negative for a signal).
    Returns (the process ends) when the worker closes the connection.
    """
    worker = control.recv()
    _die_with_parent(worker)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the worker's to handle
    from PIL import Image

    import pipeline.render.image.ladder  # noqa: F401  (imported once here, inherited by every render child)

    Image.init()
    me = os.getpid()
    while True:
        try:
            request = control.recv()
        except (EOFError, OSError):
            os._exit(0)
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            code = 1
            try:
                control.close()
                os.close(read_end)
                _render_child(request, Connection(write_end, readable=False), me)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        reduction.send_handle(control, read_end, None)
        os.close(read_end)
        _pid, status = os.waitpid(child, 0)
        control.send(("exit", os.waitstatus_to_exitcode(status)))


class _Server:
    """The worker's end of its render server."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, **_SERVER_ENV}, close_fds=True)
        finally:
            theirs.close()
        self.control = Connection(ours.detach())
        self.owner = os.getpid()
        self.control.send(list(sys.path))
        self.control.send(self.owner)

    def usable(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def close(self) -> None:
        """Let the server end (it exits when its connection closes), and reap it."""
        self.control.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the server: a render child it has running dies with it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        with contextlib.suppress(OSError):
            self.control.close()

    def start(self, request: tuple[Any, ...]) -> Connection:
        """Ask for one render; the connection its results arrive on."""
        self.control.send(request)
        if not self.control.poll(30):
            raise OSError("the render server did not answer")
        return Connection(reduction.recv_handle(self.control), writable=False)

    def exit_code(self, wait: float) -> int | None:
        """How the last render child ended, as the server reports it after reaping it."""
        if not self.control.poll(wait):
            return None
        kind, code = self.control.recv()
        return int(code) if kind == "exit" else None


_lock = threading.Lock()
_server: _Server | None = None


def _reset_after_fork() -> None:
    """A forked process (a Celery child of a parent that rendered) starts without a server."""
    global _lock, _server
    _lock = threading.Lock()
    _server = None


os.register_at_fork(after_in_child=_reset_after_fork)


def _server_for_this_process() -> _Server:
    global _server
    if _server is None or not _server.usable():
        if _server is not None and _server.owner == os.getpid():
            _server.kill()
        _server = _Server()
    return _server


def _drop_server() -> None:
    global _server
    if _server is not None:
        _server.kill()
        _server = None


@atexit.register
def shutdown() -> None:
    """End this process's render server, if it has one (at exit; also for tests). Reaping it
    counts its renders' memory in this process's resource usage."""
    global _server
    if _server is not None and _server.owner == os.getpid():
        _server.close()
    _server = None


def render_processes() -> set[int]:
    """Process ids of the render children running now (for tests and operators)."""
    server = _server
    if server is None or not server.usable():
        return set()
    try:
        with open(f"/proc/{server.process.pid}/task/{server.process.pid}/children") as handle:
            return {int(pid) for pid in handle.read().split()}
    except OSError:
        return set()


class _Render:
    """One render on this process's server: its results as they come, how it ended."""

    def __init__(self, request: tuple[Any, ...], limits: Limits, log: Path) -> None:
        self.limits = limits
        self.log = log
        self.peaks = Peaks()
        self.in_step = False
        """Whether the server's connection is ready for the next render (this one's exit read)."""
        self.server = _server_for_this_process()
        self.started = time.monotonic()
        try:
            self.results = self.server.start(request)
        except (OSError, EOFError):   # the server died since the last photo: once more, anew
            _drop_server()
            self.server = _server_for_this_process()
            self.started = time.monotonic()
            self.results = self.server.start(request)

    def renditions(self) -> Iterator[Rendered]:
        """Yield each rendition as the child sends it; raise when it fails or runs out of time."""
        seconds = self.limits.image_time_limit
        too_long = LimitExceeded(
            f"decoding and rendering this photo took longer than the {seconds:g} s limit and was"
            " stopped; run it again on a less busy machine, or upload the photo smaller",
            code="time-limit")
        while True:
            left = self.started + seconds + _GRACE - time.monotonic()
            if left <= 0 or not self.results.poll(left):
                raise too_long   # the child's own timer did not end it: the caller kills the server
            try:
                kind, value = self.results.recv()
            except (EOFError, OSError):
                kind, value = "died", None
            if kind == "done":
                yield value
                continue
            code = self.server.exit_code(10)
            self.in_step = code is not None
            if kind == "end":
                self.peaks = value
                return
            if kind in ("error", "raise"):
                raise value
            if kind == "memory":
                raise LimitExceeded(
                    f"rendering this photo needed more than the"
                    f" {self.limits.image_memory_ceiling / 2**20:.0f} MB memory ceiling ({value});"
                    " upload it with fewer pixels", code="out-of-memory")
            if code == -signal.SIGALRM:
                raise too_long
            raise LimitExceeded(
                f"the process rendering this photo stopped unexpectedly ({self._how(code)}), perhaps"
                f" out of memory; run the story again to retry{self._last_words()}",
                code="render-crashed")

    @staticmethod
    def _how(code: int | None) -> str:
        if code is None:
            return "its server stopped answering"
        return f"signal {-code}" if code < 0 else f"exit status {code}"

    def _last_words(self) -> str:
        try:
            lines = self.log.read_text("utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {lines[-1]}" if lines else ""


def run_isolated(path: Path, info: ImageInfo, plans: list[ImagePlan], scratch: Path,
                 on_done: Callable[[Rendered], None] | None = None, *,
                 limits: Limits | None = None) -> tuple[list[Rendered], Peaks]:
    """:func:`render_image_isolated`, also returning what the render child used at most."""
    limits = limits or Limits()
    out: list[Rendered] = []
    if not plans:
        return out, Peaks()
    log = scratch / f"render-{os.getpid()}-{time.monotonic_ns()}.log"
    request = (path, info, plans, scratch, limits.image_time_limit, limits.image_memory_ceiling,
               limits.max_image_pixels, str(log))
    with _lock:
        render: _Render | None = None
        try:
            render = _Render(request, limits, log)
            with render.results:
                for made in render.renditions():
                    out.append(made)
                    if on_done is not None:
                        on_done(made)
        finally:
            if render is None or not render.in_step:
                _drop_server()   # timed out, interrupted (a store failed, a soft time limit), lost
            log.unlink(missing_ok=True)
    return out, render.peaks


def render_image_isolated(path: Path, info: ImageInfo, plans: list[ImagePlan], scratch: Path,
                          on_done: Callable[[Rendered], None] | None = None, *,
                          limits: Limits | None = None) -> list[Rendered]:
    """Drop-in for :func:`pipeline.render.image.ladder.render_image` that runs it in a child process.

    Files land in ``scratch``; ``on_done`` runs here, in the caller, for each rendition as soon as
    the child has written it (in plan order). Raises :class:`LimitExceeded` (retryable) with code
    ``time-limit`` past ``limits.image_time_limit`` seconds, ``out-of-memory`` when an allocation
    fails under ``limits.image_memory_ceiling``, ``render-crashed`` when the child dies otherwise;
    and the child's own :class:`~pipeline.errors.PipelineError` (corrupt data, an encoder failure)
    as it was raised. No render child outlives the call. One render at a time per process (a second
    thread waits): both executors run one asset per process.
    """
    return run_isolated(path, info, plans, scratch, on_done, limits=limits)[0]
