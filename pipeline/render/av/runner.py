"""Running ffmpeg and ffprobe: local files only, progress on a pipe, a time limit, clean errors.

Every ffmpeg run goes through :func:`run_ffmpeg`: it starts ffmpeg in its own process group,
reads ``-progress pipe:1`` for the progress bar, keeps the tail of stderr for the error report,
and kills the whole group when the time limit passes or the caller is interrupted.
The build is Debian 12's ffmpeg 5.1 (libx264, libass, MXF, HLS); ``STORYMEDIA_FFMPEG`` and
``STORYMEDIA_FFPROBE`` point elsewhere.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import ProbeError, RenderError

Progress = Callable[[float], None]
"""Called with the fraction done (0..1)."""

GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-loglevel", "error", "-y")
"""Before every input: no banner, never read the terminal, errors only, overwrite scratch files."""


def binary(name: str) -> str:
    """Path of ``ffmpeg`` or ``ffprobe`` (environment override, else PATH)."""
    override = os.environ.get(f"STORYMEDIA_{name.upper()}")
    found = override or shutil.which(name)
    if not found:
        raise RenderError(f"{name} is not installed (Debian/Ubuntu: apt-get install ffmpeg)",
                          code="ffmpeg-missing")
    return found


DEMUXER_OPTIONS: dict[str, dict[str, str]] = {
    "mov": {"enable_drefs": "0"},
    "concat": {"safe": "0"},
}
"""Options of one demuxer, given every time it opens a file.

``mov`` (MP4, MOV, fragmented MP4): never follow the external data references a MOV may name
(``dref`` entries point at other files, e.g. ``/etc/passwd`` or a file next to the upload). Off by
default in ffmpeg today; said here so that a build or a release that turns it on cannot.
``concat`` reads only the graphics track scripts we write (our own PNGs, each with ``option
framerate``, which safe mode refuses); a producer's file is never opened with it (it is not in
:data:`pipeline.ingest.avprobe.DEMUXERS`)."""


def input_options(demuxer: str) -> dict[str, str]:
    """The options before ``-i`` for every file ffmpeg or ffprobe opens: local files only
    (``-protocol_whitelist file``, which nested opens inherit), the demuxer we chose from the
    content (never ffmpeg's guess), and that demuxer's own options (:data:`DEMUXER_OPTIONS`)."""
    return {"protocol_whitelist": "file", "f": demuxer, **DEMUXER_OPTIONS.get(demuxer, {})}


def input_args(demuxer: str, path: Path) -> list[str]:
    """:func:`input_options` as command-line words, then ``-i file:<path>``."""
    words = [word for key, value in input_options(demuxer).items() for word in (f"-{key}", value)]
    return [*words, "-i", "file:" + str(path)]


def ffprobe_json(path: Path, demuxer: str, extra: tuple[str, ...] = (),
                 timeout: float = 60) -> dict[str, Any]:
    """ffprobe's JSON description of a local file, read with the demuxer chosen from its content."""
    argv = ffprobe_argv(path, demuxer, extra)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProbeError("reading the file took too long; it may be damaged", code="probe-timeout") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no detail"])[-1]
        raise ProbeError(f"the file cannot be read as {demuxer}: it is corrupt or truncated ({detail})",
                         code="corrupt")
    try:
        data: dict[str, Any] = json.loads(done.stdout)
    except ValueError as exc:
        raise ProbeError("the file cannot be read: ffprobe gave no description", code="corrupt") from exc
    return data


def ffprobe_argv(path: Path, demuxer: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [binary("ffprobe"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
            *extra, *input_args(demuxer, path)]


def run_capture(argv: list[str], timeout: float) -> str:
    """Run a short ffmpeg analysis (loudness, idet) and return its stderr."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"ffmpeg took longer than its {timeout:.1f} s limit and was stopped",
                          code="timeout", command=argv) from exc
    if done.returncode != 0:
        raise RenderError(_failure_reason(done.stderr), command=argv, log_tail=done.stderr[-4000:])
    return done.stderr


def _failure_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return "ffmpeg failed: " + (lines[-1] if lines else "no message")


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the parent dies (Linux). A worker killed hard
    (a Celery hard time limit, the OOM killer, ``kill -9``) then leaves no ffmpeg behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_ffmpeg(argv: list[str], *, duration: float, time_limit: float,
               on_progress: Progress | None = None) -> None:
    """Run one ffmpeg command to the end.

    ``argv`` must contain ``-progress pipe:1``. Raises :class:`RenderError` (with the command and
    the stderr tail) on failure or when ``time_limit`` seconds pass; the whole process group is
    killed in both cases and on KeyboardInterrupt.
    """
    tail: collections.deque[str] = collections.deque(maxlen=60)
    timed_out = threading.Event()
    started = time.monotonic()
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True,
                          preexec_fn=_die_with_parent if sys.platform == "linux" else None) as process:

        def read_stderr() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                tail.append(line)

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

        def expire() -> None:
            timed_out.set()
            kill()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        timer = threading.Timer(time_limit, expire)
        timer.daemon = True
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                key, _, value = line.strip().partition("=")
                if key == "out_time_us" and on_progress and duration > 0 and value.lstrip("-").isdigit():
                    on_progress(min(1.0, max(0.0, int(value) / 1e6 / duration)))
            code = process.wait()
        except BaseException:
            kill()
            process.wait()
            raise
        finally:
            timer.cancel()
            reader.join(timeout=5)
    log = "".join(tail)
    if timed_out.is_set():
        raise RenderError(f"rendering took longer than the {time_limit:.0f} s limit and was stopped"
                          f" after {time.monotonic() - started:.0f} s", code="timeout",
                          command=argv, log_tail=log)
    if code != 0:
        raise RenderError(_failure_reason(log), command=argv, log_tail=log)
    if on_progress:
        on_progress(1.0)
