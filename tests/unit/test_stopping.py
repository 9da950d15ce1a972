"""Stopping an asset's work from a watcher thread: the real signal, a real child process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.run import stopping


def test_the_watch_stops_the_block_once_canceled_and_its_clean_up_runs(tmp_path: Path) -> None:
    canceled = threading.Event()
    threading.Timer(0.3, canceled.set).start()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    def work() -> None:
        with stopping.watch(canceled.is_set, every=0.05):
            try:
                child.wait(timeout=30)          # blocked in waitpid, as run_ffmpeg is
            finally:
                child.kill()
                child.wait()
                scratch.rmdir()

    started = time.monotonic()
    with pytest.raises(stopping.AssetCanceled):
        work()
    assert time.monotonic() - started < 5
    assert child.returncode is not None and not scratch.exists()


def test_a_block_that_ends_first_is_not_stopped_and_the_signal_is_harmless_afterwards() -> None:
    calls = []

    def canceled() -> bool:
        calls.append(1)
        return False

    with stopping.watch(canceled, every=0.02):
        time.sleep(0.2)
    assert calls, "the watcher asked"
    stopping.install()
    os.kill(os.getpid(), stopping.STOP_SIGNAL)   # outside a block: nothing happens
    time.sleep(0.05)


def test_a_store_that_fails_while_asked_is_not_a_cancel() -> None:
    answers = iter([OSError("the store is away"), OSError("still away"), True])

    def canceled() -> bool:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(stopping.AssetCanceled), stopping.watch(canceled, every=0.05):
        time.sleep(10)
