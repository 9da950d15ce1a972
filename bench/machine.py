"""What the benchmarks share: the machine they run on and a folder to work in."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def machine_busy() -> float:
    """CPU-seconds the whole machine has been busy (all processes, steal included): /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


@contextlib.contextmanager
def work_folder(keep: str | None, name: str) -> Iterator[Path]:
    """``keep`` (created if need be, left in place) or a temporary folder removed afterwards."""
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix=f"storymedia-bench-{name}-") as folder:
            yield Path(folder)
