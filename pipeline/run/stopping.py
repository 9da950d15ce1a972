"""Stopping an asset's work when its job is canceled, in the process that runs it.

Both executors run one asset at a time in a process of their own (an embedded pool process, a
Celery prefork child), on that process's main thread. :func:`watch` runs the asset inside a
*stoppable* block and starts a thread that asks whether the job was canceled every ``every``
seconds; once it was, the thread sends this process :data:`STOP_SIGNAL`, and the handler raises
:class:`AssetCanceled` on the main thread wherever the asset's work is. The work then unwinds as
from any error, and every clean-up already there runs: :func:`pipeline.render.av.runner.run_ffmpeg`
kills ffmpeg's process group, the photo render server is dropped (its child dies with it), the
scratch folder is removed, a local write's temporary file is unlinked (objects are moved into place
whole or not at all) and s3transfer aborts a multipart upload it was sending (the Celery task then
aborts any of its own left, ``abort_own_uploads``).

The signal does nothing outside a stoppable block, and each block is stopped at most once.
``SIGUSR1`` is billiard's soft time limit in Celery's children, so this is ``SIGUSR2``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNAL = signal.SIGUSR2
POLL_SECONDS = 0.5
"""How often :func:`watch` asks whether the job was canceled, by default."""


class AssetCanceled(BaseException):
    """The asset's job was canceled while the asset ran: its work stopped where it was.

    A ``BaseException``, like ``KeyboardInterrupt``: ``except Exception`` in the render stack
    (which turns a library's failure into a failed asset) lets it through."""


_stoppable = threading.Event()


def _stop(signum: int, frame: FrameType | None) -> None:
    if _stoppable.is_set():
        _stoppable.clear()   # once: a second signal must not interrupt the unwinding
        raise AssetCanceled()


def install() -> bool:
    """Make :data:`STOP_SIGNAL` stop a running stoppable block of this process. Only the main
    thread may install a handler: elsewhere this returns False and nothing can be stopped."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(STOP_SIGNAL) is not _stop:
        signal.signal(STOP_SIGNAL, _stop)
    return True


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """A block :data:`STOP_SIGNAL` may stop (raising :class:`AssetCanceled` in it)."""
    _stoppable.set()
    try:
        yield
    finally:
        _stoppable.clear()


@contextlib.contextmanager
def watch(canceled: Callable[[], bool], every: float = POLL_SECONDS) -> Iterator[None]:
    """Run the block stoppable, and stop it once ``canceled()`` says so (asked every ``every``
    seconds from a thread; an error while asking counts as "not yet": a store that hiccups must
    not stop a render). Raises :class:`AssetCanceled` out of the block when it was stopped."""
    if not install():
        log.warning("not on the main thread: this asset cannot be stopped when its job is canceled")
        yield
        return
    done = threading.Event()

    def poll() -> None:
        while not done.wait(every):
            try:
                if not canceled():
                    continue
            except Exception as exc:  # the store is away: ask again next time
                log.debug("could not tell whether the job was canceled: %s", exc)
                continue
            if _stoppable.is_set():
                os.kill(os.getpid(), STOP_SIGNAL)
            return

    watcher = threading.Thread(target=poll, name="storymedia-cancel-watch", daemon=True)
    with stoppable():
        watcher.start()
        try:
            yield
        finally:
            done.set()
    watcher.join(timeout=every + 5)
